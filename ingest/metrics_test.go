package ingest

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestHealthMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	h := &staticHealth{h: Health{
		Camera: "cam7", Facility: "f47", State: StateOnline, VideoCodec: CodecH265, AudioCodec: CodecPCMA,
		Width: 1920, Height: 1080, FPS: 25, Bitrate: 4e6, KeyframeInterval: 2 * time.Second, HasBFrames: true,
		LastFrame: time.Now(), LastFrameAge: 40 * time.Millisecond, ClockOffset: -1500 * time.Millisecond, ClockOffsetKnown: true,
		PacketsReceived: 1000, PacketsLost: 3, Reconnects: 2, Discontinuities: 1, OversizeUnits: 4, DecodeErrors: 5, QueueDrops: 6, Frames: 900,
	}}
	m.health.add(h)
	cam := map[string]string{"camera": "cam7", "facility": "f47"}
	with := func(k, v string) map[string]string {
		l := map[string]string{k: v}
		for a, b := range cam {
			l[a] = b
		}
		return l
	}
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"kuzet_ingest_camera_state", with("state", "online"), 1},
		{"kuzet_ingest_camera_state", with("state", "offline"), 0},
		{"kuzet_ingest_camera_frames_per_second", cam, 25},
		{"kuzet_ingest_camera_bitrate_bits_per_second", cam, 4e6},
		{"kuzet_ingest_camera_keyframe_interval_seconds", cam, 2},
		{"kuzet_ingest_camera_width_pixels", cam, 1920},
		{"kuzet_ingest_camera_height_pixels", cam, 1080},
		{"kuzet_ingest_camera_codec_info", with("codec", "H265"), 1},
		{"kuzet_ingest_camera_codec_info", with("codec", "PCMA"), 1},
		{"kuzet_ingest_camera_rtp_packets_lost_total", cam, 3},
		{"kuzet_ingest_camera_rtp_packets_received_total", cam, 1000},
		{"kuzet_ingest_camera_reconnects_total", cam, 2},
		{"kuzet_ingest_camera_last_frame_age_seconds", cam, 0.04},
		{"kuzet_ingest_camera_clock_offset_seconds", cam, -1.5},
		{"kuzet_ingest_camera_queue_dropped_units_total", cam, 6},
		{"kuzet_ingest_camera_bframes", cam, 1},
		{"kuzet_ingest_camera_oversize_units_total", cam, 4},
		{"kuzet_ingest_camera_discontinuities_total", cam, 1},
		{"kuzet_ingest_camera_decode_errors_total", cam, 5},
		{"kuzet_ingest_camera_frames_total", cam, 900},
	} {
		if got := gathered(t, reg, tc.name, tc.labels); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	// A camera without sender reports has no clock offset series.
	h.h.ClockOffsetKnown = false
	if got := gathered(t, reg, "kuzet_ingest_camera_clock_offset_seconds", cam); got != -1 {
		t.Errorf("clock offset without sender reports: %v", got)
	}
	m.health.remove(h)
	if got := gathered(t, reg, "kuzet_ingest_camera_state", cam); got != -1 {
		t.Error("series left after the camera went")
	}
}
