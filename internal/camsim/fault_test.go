package camsim

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

var faultCases = []struct {
	spec string
	want Fault
	err  string // substring of the error; empty for success
}{
	{spec: "drop", want: Fault{Kind: FaultDrop}},
	{spec: "drop cams=2,5-7 at=30s every=1m for=10s", want: Fault{Kind: FaultDrop, Cameras: []int{2, 5, 6, 7}, At: 30 * time.Second, Every: time.Minute, For: 10 * time.Second}},
	{spec: "  stall   cams=3 at=1.5s for=2s ", want: Fault{Kind: FaultStall, Cameras: []int{3}, At: 1500 * time.Millisecond, For: 2 * time.Second}},
	{spec: "ssrc cams=all at=15s", want: Fault{Kind: FaultSSRC, At: 15 * time.Second}},
	{spec: "tsjump cams=7 ticks=900", want: Fault{Kind: FaultTimestampJump, Cameras: []int{7}, Ticks: 900}},
	{spec: "tsjump", want: Fault{Kind: FaultTimestampJump, Ticks: 900000}},
	{spec: "garbage cams=1,1,3 every=30s count=20", want: Fault{Kind: FaultGarbage, Cameras: []int{1, 3}, Every: 30 * time.Second, Count: 20}},
	{spec: "garbage", want: Fault{Kind: FaultGarbage, Count: 10}},
	{spec: "loss cams=4 at=2s every=10s count=3", want: Fault{Kind: FaultLoss, Cameras: []int{4}, At: 2 * time.Second, Every: 10 * time.Second, Count: 3}},
	{spec: "loss", want: Fault{Kind: FaultLoss, Count: 10}},
	{spec: "skew cams=2 offset=5s", want: Fault{Kind: FaultClockSkew, Cameras: []int{2}, Offset: 5 * time.Second}},
	{spec: "skew at=1m every=5m for=2m offset=-1h30m", want: Fault{Kind: FaultClockSkew, At: time.Minute, Every: 5 * time.Minute, For: 2 * time.Minute, Offset: -90 * time.Minute}},
	{spec: "skew offset=-490000h", want: Fault{Kind: FaultClockSkew, Offset: -490000 * time.Hour}},

	{spec: "", err: "empty"},
	{spec: "explode cams=1", err: "unknown kind"},
	{spec: "drop cams", err: "key=value"},
	{spec: "drop cams=", err: "key=value"},
	{spec: "drop at=1s at=2s", err: "twice"},
	{spec: "drop color=red", err: "unknown key"},
	{spec: "drop cams=0", err: "bad camera"},
	{spec: "drop cams=5-3", err: "bad range"},
	{spec: "drop cams=1-1000000", err: "bad range"},
	{spec: "drop cams=x", err: "bad camera"},
	{spec: "drop at=-1s", err: "negative"},
	{spec: "drop at=soon", err: "invalid duration"},
	{spec: "stall cams=1", err: "for="},
	{spec: "stall for=2s every=1s", err: "shorter than every"},
	{spec: "ssrc for=2s", err: "for applies"},
	{spec: "drop every=1ms", err: "at least"},
	{spec: "drop ticks=5", err: "tsjump only"},
	{spec: "tsjump ticks=0", err: "positive"},
	{spec: "tsjump ticks=99999999999", err: "ticks"},
	{spec: "garbage count=0", err: "1..10000"},
	{spec: "stall count=3 for=1s", err: "garbage and loss only"},
	{spec: "skew cams=1", err: "offset="},
	{spec: "skew offset=0s", err: "zero"},
	{spec: "skew offset=5", err: "missing unit"},
	{spec: "skew offset=900000h", err: "beyond"},
	{spec: "drop offset=5s", err: "skew only"},
	{spec: "skew offset=1s for=1m every=1m", err: "shorter than every"},
}

func TestParseFault(t *testing.T) {
	for _, tc := range faultCases {
		t.Run(tc.spec, func(t *testing.T) {
			got, err := ParseFault(tc.spec)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %+v, %v; want an error with %q", got, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			again, err := ParseFault(got.String())
			if err != nil || !reflect.DeepEqual(again, got) {
				t.Errorf("String %q parses to %+v, %v", got.String(), again, err)
			}
		})
	}
}

func TestParseCameraList(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []int
		ok   bool
	}{
		{"3", []int{3}, true},
		{"1,4-6", []int{1, 4, 5, 6}, true},
		{"6-4", nil, false},
		{"all", nil, true},
		{"2,1,2", []int{1, 2}, true},
		{"", nil, false},
		{"1,", nil, false},
		{"-3", nil, false},
		{"1-", nil, false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseCameraList(tc.in)
			if (err == nil) != tc.ok || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v, %v; want %v, ok=%v", got, err, tc.want, tc.ok)
			}
		})
	}
}

// FuzzParseFault: fault specifications come from the command line.
func FuzzParseFault(f *testing.F) {
	for _, tc := range faultCases {
		f.Add(tc.spec)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		got, err := ParseFault(spec)
		if err != nil {
			return
		}
		again, err := ParseFault(got.String())
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Fatalf("%q: String %q parses to %+v, %v", spec, got.String(), again, err)
		}
	})
}
