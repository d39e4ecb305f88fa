package ingest

import (
	"testing"
	"time"
)

// checkSessionStart reads the first event of a session and checks its
// tracks.
func checkSessionStart(t *testing.T, h *harness, codec Codec) *Tracks {
	t.Helper()
	e := h.event(10 * time.Second)
	if e.Reason != ReasonDiscontinuity || e.Detail != DetailSessionStarted || e.Tracks == nil {
		t.Fatalf("first event = %+v, want a session start with tracks", e)
	}
	v := e.Tracks.Video
	if v == nil || v.Codec != codec || v.Width != 320 || v.Height != 240 || v.SPS == nil || v.PPS == nil || v.ClockRate != 90000 {
		t.Fatalf("video track = %+v", v)
	}
	if codec == CodecH265 && v.VPS == nil {
		t.Fatal("H265 track without VPS")
	}
	return e.Tracks
}

// checkUnits checks that units are consecutive marked frames with rising
// times, the first a keyframe with its parameter sets in front.
func checkUnits(t *testing.T, us []*Unit, codec Codec) {
	t.Helper()
	if !us[0].Key {
		t.Fatal("first unit is not a keyframe")
	}
	a := newVideoAssembler(codec, nil, nil, nil)
	if !paramsFirst(a, us[0].NALUs) {
		t.Fatal("keyframe without its parameter sets before the picture")
	}
	prev, _ := findMark(codec, us[0].NALUs)
	for i, u := range us {
		for _, n := range u.NALUs {
			if _, _, aud, _ := a.kind(a.nalType(n)); aud {
				t.Fatal("AUD not dropped")
			}
		}
		if i == 0 {
			continue
		}
		m, ok := findMark(codec, u.NALUs)
		if !ok || m != prev+1 {
			t.Fatalf("unit %d: mark %d (found %v), want %d", i, m, ok, prev+1)
		}
		prev = m
		if d := u.PTS - us[i-1].PTS; d != 3600 {
			t.Fatalf("unit %d: PTS step %d, want 3600", i, d)
		}
		if u.Key && !paramsFirst(a, u.NALUs) {
			t.Fatalf("keyframe %d without its parameter sets before the picture", i)
		}
		if !u.Received.After(us[i-1].Received) && !u.Received.Equal(us[i-1].Received) {
			t.Fatalf("unit %d received before unit %d", i, i-1)
		}
	}
}

// paramsFirst reports whether all parameter sets of the codec come before
// the first VCL NAL unit.
func paramsFirst(a *videoAssembler, nalus [][]byte) bool {
	var have uint8
	for _, n := range nalus {
		vcl, _, _, param := a.kind(a.nalType(n))
		if param {
			have |= a.paramBit(a.nalType(n))
		}
		if vcl {
			break
		}
	}
	if a.codec == CodecH265 {
		return have == 7
	}
	return have == 6
}

func TestSourceH264(t *testing.T) {
	t.Parallel()
	cam := startCam(t, camOptions{})
	h := runSource(t, SourceConfig{URL: cam.URL()})
	checkSessionStart(t, h, CodecH264)
	us := h.units(60, 10*time.Second)
	checkUnits(t, us, CodecH264)
	if us[0].PTS != 0 {
		t.Errorf("first PTS = %d, want 0 (run start)", us[0].PTS)
	}
	hl := h.waitHealth(5*time.Second, func(h Health) bool { return h.FPS > 0 })
	if hl.State != StateOnline || hl.VideoCodec != CodecH264 || hl.Width != 320 || hl.Transport != "tcp" {
		t.Errorf("health = %+v", hl)
	}
	if hl.FPS < 20 || hl.FPS > 30 {
		t.Errorf("fps = %.1f, want about 25", hl.FPS)
	}
	if hl.KeyframeInterval != time.Second {
		t.Errorf("keyframe interval = %v, want 1s", hl.KeyframeInterval)
	}
	if hl.HasBFrames {
		t.Error("B-frames reported for a stream without them")
	}
	t.Logf("health: %+v", hl)
}
