package camsim

import (
	"context"
	"encoding/json"
	"os/exec"
	"testing"
	"time"

	"github.com/kuzet/kuzet/internal/testenv"
)

// TestFFprobe checks with an independent RTSP client that each camera
// serves what its clip holds.
func TestFFprobe(t *testing.T) {
	t.Parallel()
	ffprobe := testenv.FFprobe(t)
	s := startServer(t, Config{
		Cameras: 3,
		CameraClips: map[int]string{
			2: clipPath(t, "h265_640x360.ts"),
			3: clipPath(t, "h264_aac_640x360.ts"),
		},
	})
	for _, tc := range []struct {
		camera int
		codecs []string // per stream
	}{
		{1, []string{"h264"}},
		{2, []string{"hevc"}},
		{3, []string{"h264", "aac"}},
	} {
		t.Run(tc.codecs[len(tc.codecs)-1], func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, ffprobe, "-v", "error", "-rtsp_transport", "tcp",
				"-show_entries", "stream=codec_name,width,height,sample_rate,profile",
				"-of", "json", s.URL(tc.camera)).Output()
			if err != nil {
				if ee, ok := err.(*exec.ExitError); ok {
					t.Fatalf("ffprobe: %v: %s", err, ee.Stderr)
				}
				t.Fatalf("ffprobe: %v", err)
			}
			var probe struct {
				Streams []struct {
					CodecName  string `json:"codec_name"`
					Width      int    `json:"width"`
					Height     int    `json:"height"`
					SampleRate string `json:"sample_rate"`
				} `json:"streams"`
			}
			if err := json.Unmarshal(out, &probe); err != nil {
				t.Fatalf("ffprobe output %q: %v", out, err)
			}
			if len(probe.Streams) != len(tc.codecs) {
				t.Fatalf("%d streams, want %d: %s", len(probe.Streams), len(tc.codecs), out)
			}
			for i, st := range probe.Streams {
				if st.CodecName != tc.codecs[i] {
					t.Errorf("stream %d: codec %q, want %q", i, st.CodecName, tc.codecs[i])
				}
				if st.CodecName == "aac" {
					if st.SampleRate != "48000" {
						t.Errorf("AAC sample rate %s, want 48000", st.SampleRate)
					}
					continue
				}
				if st.Width != 640 || st.Height != 360 {
					t.Errorf("stream %d: %dx%d, want 640x360", i, st.Width, st.Height)
				}
			}
		})
	}
}
