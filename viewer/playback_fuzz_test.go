package viewer

import (
	"bytes"
	"errors"
	"os"
	"testing"
)

// fuzzSegment is a small synthetic segment with audio: its init section
// and its first fragment, as seeds.
func fuzzSegment(f *testing.F) (init, frag []byte) {
	b, seg := buildSegment(f, segSpec{camera: "c1", run: 1, first: 0, frames: 30, gop: 10, fragFrames: 10, audio: true, size: 40})
	fr := seg.Fragments[0]
	return b[:seg.InitSize], b[fr.Offset : fr.Offset+fr.Size]
}

// FuzzParseFragment: the fragment reader never panics on stored bytes;
// what it accepts lies within its input, can be patched, and rebuilds
// into a fragment it accepts again with the same samples.
func FuzzParseFragment(f *testing.F) {
	_, frag := fuzzSegment(f)
	f.Add(frag)
	f.Add(frag[:len(frag)/2])
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := parseFragment(b, int64(len(b)))
		if err != nil {
			if !errors.Is(err, errFMP4) {
				t.Fatalf("error %v", err)
			}
			return
		}
		n := 0
		for _, tr := range fr.trafs {
			for _, s := range tr.samples {
				if s.off < fr.dataStart || s.off+int64(s.size) > fr.dataEnd || fr.dataEnd > int64(len(b)) {
					t.Fatalf("sample [%d, %d) outside the mdat [%d, %d)", s.off, s.off+int64(s.size), fr.dataStart, fr.dataEnd)
				}
				n++
			}
		}
		c := bytes.Clone(b)
		_ = patchFragment(c, fr, 7, func(uint32) int64 { return 1000 })
		hdr, ranges, err := buildFragment(fr, 9, func(uint32) int64 { return 0 }, func(uint32, mp4Sample) bool { return true })
		if err != nil {
			return
		}
		out := bytes.Clone(hdr)
		for _, r := range ranges {
			out = append(out, b[r[0]:r[1]]...)
		}
		again, err := parseFragment(out, int64(len(out)))
		if err != nil {
			t.Fatalf("rebuilt fragment refused: %v", err)
		}
		m := 0
		for _, tr := range again.trafs {
			m += len(tr.samples)
		}
		if m != n {
			t.Fatalf("rebuilt fragment has %d samples, had %d", m, n)
		}
	})
}

func FuzzParseInit(f *testing.F) {
	init, _ := fuzzSegment(f)
	f.Add(init)
	f.Add(init[:len(init)-3])
	f.Fuzz(func(t *testing.T, b []byte) {
		in, err := parseInit(b)
		if err != nil {
			if !errors.Is(err, errFMP4) {
				t.Fatalf("error %v", err)
			}
			return
		}
		if in.codec != "H264" && in.codec != "H265" || in.timescales[in.videoID] != 90000 {
			t.Fatalf("accepted %+v", in)
		}
	})
}

// FuzzPlaybackOffer: the offer of a playback session is refused with an
// offer error, never a panic.
func FuzzPlaybackOffer(f *testing.F) {
	if b, err := os.ReadFile("testdata/chrome_offer.sdp"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=recvonly\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		secs, err := playbackOfferSections(b)
		if err != nil {
			var oe *whepOfferError
			if !errors.As(err, &oe) {
				t.Fatalf("error %T %v", err, err)
			}
			return
		}
		if len(secs) == 0 {
			t.Fatal("accepted an offer without a video section")
		}
	})
}
