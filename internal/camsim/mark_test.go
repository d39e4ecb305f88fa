package camsim

import (
	"bytes"
	"testing"
	"time"
)

var markCases = []struct {
	name  string
	codec string
	mark  Mark
}{
	{"h264 first frame", CodecH264, Mark{Camera: 1, Frame: 0, Capture: time.Unix(0, 0)}},
	{"h264 zeros need escaping", CodecH264, Mark{Camera: 0, Frame: 0, Capture: time.Unix(0, 3)}},
	{"h264 typical", CodecH264, Mark{Camera: 16, Frame: 123456, Capture: time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC)}},
	{"h264 max", CodecH264, Mark{Camera: 1<<32 - 1, Frame: 1<<64 - 1, Capture: time.Unix(0, 1<<63-1)}},
	{"h265 first frame", CodecH265, Mark{Camera: 1, Frame: 0, Capture: time.Unix(0, 0)}},
	{"h265 typical", CodecH265, Mark{Camera: 300, Frame: 1 << 40, Capture: time.Date(2031, 12, 31, 23, 59, 59, 999999999, time.UTC)}},
	{"h265 bytes 0..3", CodecH265, Mark{Camera: 0x00000003, Frame: 0x0000000100000002, Capture: time.Unix(0, 0x0000000300000000)}},
}

func TestMarkRoundTrip(t *testing.T) {
	for _, tc := range markCases {
		t.Run(tc.name, func(t *testing.T) {
			nalu := AppendMarkSEI(nil, tc.codec, tc.mark)
			if len(nalu) > markSEIMaxLen {
				t.Errorf("len %d > markSEIMaxLen %d", len(nalu), markSEIMaxLen)
			}
			// No start-code emulation anywhere in the NAL unit.
			for i := 0; i+2 < len(nalu); i++ {
				if nalu[i] == 0 && nalu[i+1] == 0 && nalu[i+2] <= 2 {
					t.Fatalf("start code emulation at %d: % x", i, nalu)
				}
			}
			got, ok := ParseMarkSEI(tc.codec, nalu)
			if !ok {
				t.Fatalf("ParseMarkSEI(% x) failed", nalu)
			}
			if got.Camera != tc.mark.Camera || got.Frame != tc.mark.Frame || !got.Capture.Equal(tc.mark.Capture) {
				t.Errorf("got %+v, want %+v", got, tc.mark)
			}
			other := CodecH265
			if tc.codec == CodecH265 {
				other = CodecH264
			}
			if _, ok := ParseMarkSEI(other, nalu); ok {
				t.Errorf("parsed as %s too", other)
			}
			aud := []byte{0x09, 0xf0}
			if tc.codec == CodecH265 {
				aud = []byte{35 << 1, 0x01, 0x50}
			}
			m, ok := FindMark(tc.codec, [][]byte{aud, nalu, {0x65, 0x88}})
			if !ok || m.Frame != tc.mark.Frame {
				t.Errorf("FindMark = %+v, %v", m, ok)
			}
		})
	}
}

func TestParseMarkSEIRejects(t *testing.T) {
	good := AppendMarkSEI(nil, CodecH264, Mark{Camera: 7, Frame: 9, Capture: time.Unix(1700000000, 0)})
	otherUUID := bytes.Clone(good)
	otherUUID[3] ^= 0xff
	truncated := good[:len(good)-8]
	for _, tc := range []struct {
		name  string
		codec string
		nalu  []byte
	}{
		{"empty", CodecH264, nil},
		{"unknown codec", "VP8", good},
		{"slice", CodecH264, []byte{0x65, 0x88, 0x84}},
		{"other uuid", CodecH264, otherUUID},
		{"truncated", CodecH264, truncated},
		{"header only", CodecH264, []byte{0x06}},
		{"h265 header only", CodecH265, []byte{39 << 1}},
		{"size beyond data", CodecH264, []byte{0x06, 0x05, 0xff, 0xff, 0x10, 0x00}},
		{"only 0xff", CodecH264, []byte{0x06, 0xff, 0xff, 0xff}},
		{"short user data", CodecH264, []byte{0x06, 0x05, 0x04, 1, 2, 3, 4, 0x80}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if m, ok := ParseMarkSEI(tc.codec, tc.nalu); ok {
				t.Errorf("ParseMarkSEI accepted % x as %+v", tc.nalu, m)
			}
		})
	}
}

// An encoder's own SEI message may precede the mark in the same NAL unit.
func TestParseMarkSEIAfterOtherMessage(t *testing.T) {
	want := Mark{Camera: 2, Frame: 5, Capture: time.Unix(1700000000, 5)}
	mark := AppendMarkSEI(nil, CodecH264, want)
	// recovery point SEI (type 6, size 1), then the mark's message
	nalu := append([]byte{0x06, 0x06, 0x01, 0x84}, mark[1:]...)
	got, ok := ParseMarkSEI(CodecH264, nalu)
	if !ok || got.Frame != want.Frame || got.Camera != want.Camera {
		t.Fatalf("got %+v, %v", got, ok)
	}
}

func TestAppendMarkSEIDoesNotAllocate(t *testing.T) {
	var buf [64]byte
	m := Mark{Camera: 1, Frame: 1, Capture: time.Now()}
	allocs := testing.AllocsPerRun(100, func() {
		_ = AppendMarkSEI(buf[:0], CodecH264, m)
		_, _ = ParseMarkSEI(CodecH264, buf[:])
	})
	if allocs != 0 {
		t.Errorf("%v allocations per run", allocs)
	}
}

func FuzzParseMarkSEI(f *testing.F) {
	for _, tc := range markCases {
		f.Add(tc.codec, AppendMarkSEI(nil, tc.codec, tc.mark))
	}
	f.Fuzz(func(t *testing.T, codec string, nalu []byte) {
		m, ok := ParseMarkSEI(codec, nalu)
		if !ok {
			return
		}
		// Whatever parsed must survive a round trip.
		again, ok := ParseMarkSEI(codec, AppendMarkSEI(nil, codec, m))
		if !ok || again.Camera != m.Camera || again.Frame != m.Frame || !again.Capture.Equal(m.Capture) {
			t.Fatalf("round trip of %+v gave %+v, %v", m, again, ok)
		}
	})
}

func BenchmarkAppendMarkSEI(b *testing.B) {
	var buf [64]byte
	m := Mark{Camera: 1, Frame: 1, Capture: time.Now()}
	b.ReportAllocs()
	for b.Loop() {
		m.Frame++
		_ = AppendMarkSEI(buf[:0], CodecH264, m)
	}
}
