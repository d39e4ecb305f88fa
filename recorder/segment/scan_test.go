package segment

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/kuzet/kuzet/recorder/internal/synth"
)

// sampleSegment returns a closed 3 s segment with audio.
func sampleSegment(t testing.TB) ([]byte, *Info) {
	t.Helper()
	clip := loadClip(t)
	cam := synth.NewCamera(clip, t0, true)
	sink := &memSink{}
	sg, err := NewSegmenter(Config{SegmentDuration: time.Hour, FragmentDuration: 500 * time.Millisecond}, cam.Tracks, 1, time.Time{}, sink)
	if err != nil {
		t.Fatal(err)
	}
	for cam.Frame() < 3*synth.FPS {
		if err := sg.Push(cam.Next()); err != nil {
			t.Fatal(err)
		}
	}
	if err := sg.Close(); err != nil {
		t.Fatal(err)
	}
	return sink.files[0].buf.Bytes(), sink.files[0].info
}

func TestScanCutsAtLastCompleteFragment(t *testing.T) {
	b, info := sampleSegment(t)
	ends := map[int64]int{} // fragment end offset -> fragments complete up to it
	for i, f := range info.Fragments {
		ends[f.Offset+f.Size] = i + 1
	}
	cuts := []int64{}
	for c := int64(0); c <= int64(len(b)); c += 61 {
		cuts = append(cuts, c)
	}
	for end := range ends {
		cuts = append(cuts, end-1, end, end+1)
	}
	cuts = append(cuts, int64(info.InitSize)-1, int64(info.InitSize))
	for _, cut := range cuts {
		if cut < 0 || cut > int64(len(b)) {
			continue
		}
		res, err := Scan(bytes.NewReader(b[:cut]), cut)
		if cut < int64(info.InitSize) {
			if !errors.Is(err, ErrNotSegment) {
				t.Fatalf("cut %d inside the init section: err %v", cut, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("cut %d: %v", cut, err)
		}
		// The valid prefix ends at the last fragment end ≤ cut.
		want, wantN := int64(info.InitSize), 0
		for end, n := range ends {
			if end <= cut && end > want {
				want, wantN = end, n
			}
		}
		if res.Size != want || len(res.Fragments) != wantN {
			t.Fatalf("cut %d: valid prefix %d with %d fragments, want %d with %d", cut, res.Size, len(res.Fragments), want, wantN)
		}
		if (res.Stop == "") != (cut == want) {
			t.Fatalf("cut %d: stop %q", cut, res.Stop)
		}
		var dur int64
		for _, f := range info.Fragments[:wantN] {
			dur += f.Duration
		}
		if res.MediaDuration != dur {
			t.Fatalf("cut %d: duration %d, want %d", cut, res.MediaDuration, dur)
		}
	}
}

func TestScanRejectsDamage(t *testing.T) {
	b, info := sampleSegment(t)
	second := info.Fragments[1]
	for _, tc := range []struct {
		name   string
		mutate func([]byte)
		frags  int // complete fragments still accepted
	}{
		{"mdat shorter than samples", func(b []byte) {
			mdat := second.Offset + second.Size - 0
			_ = mdat
			// Shrink the second fragment's mdat by 100 bytes in its header.
			moofSize := int64(binary.BigEndian.Uint32(b[second.Offset:]))
			p := second.Offset + moofSize
			binary.BigEndian.PutUint32(b[p:], binary.BigEndian.Uint32(b[p:])-100)
		}, 1},
		{"unknown box after first fragment", func(b []byte) { copy(b[second.Offset+4:], "junk") }, 1},
		{"zero-size moof", func(b []byte) { binary.BigEndian.PutUint32(b[second.Offset:], 0) }, 1},
		{"trun sample count huge", func(b []byte) {
			i := bytes.Index(b[second.Offset:], []byte("trun"))
			binary.BigEndian.PutUint32(b[second.Offset+int64(i)+8:], 1<<30)
		}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := bytes.Clone(b)
			tc.mutate(c)
			res, err := Scan(bytes.NewReader(c), int64(len(c)))
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Fragments) != tc.frags || res.Stop == "" {
				t.Fatalf("%d fragments accepted (stop %q), want %d", len(res.Fragments), res.Stop, tc.frags)
			}
		})
	}
	if _, err := Scan(bytes.NewReader([]byte("not a segment at all")), 20); !errors.Is(err, ErrNotSegment) {
		t.Fatalf("garbage: %v", err)
	}
}

func TestDecodeIndex(t *testing.T) {
	frags := []Fragment{
		{Offset: 700, Size: 300, Time: 0, Duration: 9000, Key: true},
		{Offset: 1000, Size: 500, Time: 9000, Duration: 9000},
		{Offset: 1500, Size: 100, Time: 18000, Duration: 3600, Key: true},
	}
	enc := EncodeIndex(frags)
	for _, tc := range []struct {
		name     string
		b        []byte
		size     int64
		duration int64
		ok       bool
	}{
		{"round trip", enc, 1600, 21600, true},
		{"empty list", []byte{indexVersion}, 1600, 21600, true},
		{"nil", nil, 1600, 21600, false},
		{"bad version", append([]byte{9}, enc[1:]...), 1600, 21600, false},
		{"truncated", enc[:len(enc)-1], 1600, 21600, false},
		{"offset beyond object", enc, 1500, 21600, false},
		{"time beyond duration", enc, 1600, 17000, false},
		{"not increasing", EncodeIndex([]Fragment{{Offset: 700}, {Offset: 700, Time: 10}}), 1600, 100, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeIndex(tc.b, tc.size, tc.duration)
			if (err == nil) != tc.ok {
				t.Fatalf("err %v, want ok=%v", err, tc.ok)
			}
			if tc.name == "round trip" {
				for i := range frags {
					if got[i] != frags[i] {
						t.Fatalf("entry %d: %+v want %+v", i, got[i], frags[i])
					}
				}
			}
		})
	}
	for _, tc := range []struct {
		t    int64
		want int64
	}{{0, 700}, {9500, 700}, {18000, 1500}, {99999, 1500}} {
		if f, ok := Seek(frags, tc.t); !ok || f.Offset != tc.want {
			t.Errorf("Seek(%d) = %d, want %d", tc.t, f.Offset, tc.want)
		}
	}
}

// FuzzScan feeds damaged segment files to the recovery scanner: it must
// never panic, and what it accepts must lie within the input.
func FuzzScan(f *testing.F) {
	// The corpus in testdata/fuzz/FuzzScan holds real segments: whole, cut
	// short, and with damaged boxes.
	f.Fuzz(func(t *testing.T, b []byte) {
		res, err := Scan(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		if res.Size > int64(len(b)) || res.InitSize > res.Size {
			t.Fatalf("valid prefix %d (init %d) beyond input %d", res.Size, res.InitSize, len(b))
		}
		prev := res.InitSize
		for _, fr := range res.Fragments {
			if fr.Offset < prev || fr.Offset+fr.Size > res.Size || fr.Size <= 0 {
				t.Fatalf("fragment %+v out of order or out of bounds", fr)
			}
			prev = fr.Offset + fr.Size
		}
		// The valid prefix scans again to the same result.
		again, err := Scan(bytes.NewReader(b[:res.Size]), res.Size)
		if err != nil || again.Size != res.Size || len(again.Fragments) != len(res.Fragments) || again.Stop != "" {
			t.Fatalf("rescan of the valid prefix: %+v %v", again, err)
		}
	})
}

// FuzzDecodeIndex: index bytes come from the database and may be damaged.
func FuzzDecodeIndex(f *testing.F) {
	f.Add(EncodeIndex([]Fragment{{Offset: 700, Key: true}, {Offset: 1000, Time: 9000}}), int64(2000), int64(18000))
	f.Add([]byte{1, 0xff, 0xff, 0xff}, int64(10), int64(10))
	f.Fuzz(func(t *testing.T, b []byte, size, dur int64) {
		frags, err := DecodeIndex(b, size, dur)
		if err != nil {
			return
		}
		for _, fr := range frags {
			if fr.Offset < 0 || fr.Size <= 0 || fr.Offset+fr.Size > size || fr.Time < 0 || fr.Duration < 0 || fr.Time+fr.Duration > dur {
				t.Fatalf("entry %+v outside the segment (%d bytes, %d ticks)", fr, size, dur)
			}
		}
	})
}
