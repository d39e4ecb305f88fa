package camsim

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph265"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/kuzet/kuzet/internal/testenv"
	"github.com/pion/rtp"
)

// clipCases are the committed clips and what they must hold.
var clipCases = []struct {
	name          string
	file          string
	codec         string
	width, height int
	frames        int
	loop          time.Duration
	audioUnits    int
	minKbps       int64
}{
	{"h264 360p", "h264_640x360.ts", CodecH264, 640, 360, 250, 10 * time.Second, 0, 300},
	{"h264 1080p", "h264_1920x1080.ts", CodecH264, 1920, 1080, 250, 10 * time.Second, 0, 3000},
	{"h265 360p", "h265_640x360.ts", CodecH265, 640, 360, 250, 10 * time.Second, 0, 200},
	{"h264 aac", "h264_aac_640x360.ts", CodecH264, 640, 360, 240, 9600 * time.Millisecond, 450, 300},
}

func clipPath(t testing.TB, file string) string {
	return filepath.Join(testenv.RepoRoot(t), "testdata", "clips", file)
}

func TestLoadClip(t *testing.T) {
	for _, tc := range clipCases {
		t.Run(tc.name, func(t *testing.T) {
			cl, err := loadClip(clipPath(t, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if cl.codec != tc.codec || cl.width != tc.width || cl.height != tc.height {
				t.Errorf("codec %s %dx%d, want %s %dx%d", cl.codec, cl.width, cl.height, tc.codec, tc.width, tc.height)
			}
			if len(cl.frames) != tc.frames {
				t.Errorf("%d frames, want %d", len(cl.frames), tc.frames)
			}
			if got := duration(cl.loopTicks, videoClockRate); got != tc.loop {
				t.Errorf("loop %v, want %v", got, tc.loop)
			}
			if kbps := cl.bytes * 8 * videoClockRate / cl.loopTicks / 1000; kbps < tc.minKbps {
				t.Errorf("%d kbit/s, want at least %d", kbps, tc.minKbps)
			}
			if !cl.frames[0].key {
				t.Error("first frame is not a key frame")
			}
			keys := 0
			for i, fr := range cl.frames {
				if i > 0 && fr.offset-cl.frames[i-1].offset != 3600 {
					t.Fatalf("frame %d: %d ticks after the previous, want 3600 (25 fps)", i, fr.offset-cl.frames[i-1].offset)
				}
				if fr.key != (i%50 == 0) {
					t.Errorf("frame %d: key %v, want a key frame every 50 frames", i, fr.key)
				}
				if !fr.key {
					if len(fr.params) != 0 {
						t.Errorf("frame %d: parameter sets outside a key frame", i)
					}
					continue
				}
				keys++
				nalus := depacketize(t, cl.codec, append(append([][]byte{}, fr.params...), fr.vcl...))
				checkKeyFrameNALUs(t, cl, nalus)
			}
			if keys == 0 {
				t.Error("no key frames")
			}

			if tc.audioUnits == 0 {
				if cl.audio != nil {
					t.Error("unexpected audio")
				}
				return
			}
			if cl.audio == nil {
				t.Fatal("no audio")
			}
			a := cl.audio
			if a.clockRate != 48000 || len(a.units) != tc.audioUnits {
				t.Errorf("audio %d Hz, %d units; want 48000 Hz, %d units", a.clockRate, len(a.units), tc.audioUnits)
			}
			for i, u := range a.units {
				if u.offset != int64(i)*1024 {
					t.Fatalf("audio unit %d at %d ticks, want %d", i, u.offset, i*1024)
				}
			}
			if a.loopTicks != int64(len(a.units))*1024 {
				t.Errorf("audio loop %d ticks, want %d", a.loopTicks, len(a.units)*1024)
			}
		})
	}
}

// checkKeyFrameNALUs checks that a key frame starts with every parameter
// set, as found in the SDP.
func checkKeyFrameNALUs(t *testing.T, cl *clip, nalus [][]byte) {
	t.Helper()
	want := cl.paramSets()
	if len(nalus) <= len(want) {
		t.Fatalf("key frame has %d NAL units", len(nalus))
	}
	for i, p := range want {
		if !bytes.Equal(nalus[i], p) {
			t.Fatalf("key frame NAL unit %d is not parameter set %d", i, i)
		}
	}
	if cl.codec == CodecH264 && h264.NALUType(nalus[len(want)][0]&0x1f) != h264.NALUTypeIDR {
		t.Fatalf("H.264 key frame: NAL unit after the parameter sets has type %d", nalus[len(want)][0]&0x1f)
	}
	if cl.codec == CodecH265 && !h265.IsRandomAccess(nalus[len(want):]) {
		t.Fatal("H.265 key frame: no IRAP picture after the parameter sets")
	}
}

// depacketize turns RTP payloads of one access unit back into NAL units.
func depacketize(t *testing.T, codec string, payloads [][]byte) [][]byte {
	t.Helper()
	var decode func(*rtp.Packet) ([][]byte, error)
	if codec == CodecH264 {
		d := &rtph264.Decoder{PacketizationMode: 1}
		if err := d.Init(); err != nil {
			t.Fatal(err)
		}
		decode = d.Decode
	} else {
		d := &rtph265.Decoder{}
		if err := d.Init(); err != nil {
			t.Fatal(err)
		}
		decode = d.Decode
	}
	for i, pl := range payloads {
		pkt := &rtp.Packet{
			Header:  rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: uint16(i), Marker: i == len(payloads)-1},
			Payload: pl,
		}
		nalus, err := decode(pkt)
		if i < len(payloads)-1 {
			continue
		}
		if err != nil {
			t.Fatalf("depacketize: %v", err)
		}
		return nalus
	}
	return nil
}

func TestReadClipRejects(t *testing.T) {
	ts, err := os.ReadFile(clipPath(t, "h264_640x360.ts"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"not MPEG-TS", bytes.Repeat([]byte("kuzet"), 1000)},
		{"first packets only", ts[:188*4]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := readClip(bytes.NewReader(tc.data)); err == nil {
				t.Error("readClip accepted it")
			}
		})
	}
	if _, err := loadClip(filepath.Join(t.TempDir(), "missing.ts")); err == nil {
		t.Error("loadClip accepted a missing file")
	}
}

// FuzzReadClip feeds arbitrary bytes to the clip reader, which reads files
// an operator names on the command line: it must fail cleanly, not panic.
func FuzzReadClip(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		cl, err := readClip(bytes.NewReader(data))
		if err != nil {
			return
		}
		if len(cl.frames) < 2 || cl.loopTicks <= 0 || !cl.frames[0].key {
			t.Fatalf("accepted clip with %d frames, loop %d", len(cl.frames), cl.loopTicks)
		}
	})
}
