package ingest

import (
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kuzet/kuzet/internal/camsim"
	"github.com/kuzet/kuzet/internal/testenv"
)

// Tests against the camera simulator: a real RTSP server with real clips,
// the same one `kuzet camsim` and the demo run.

func startCamsim(t *testing.T, cfg camsim.Config) *camsim.Server {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	srv, err := camsim.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv
}

// marks reads video units for d and returns their simulator marks, failing
// on any event unless allowEvents.
func (h *harness) marks(t *testing.T, codec Codec, d time.Duration) []camsim.Mark {
	t.Helper()
	var out []camsim.Mark
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		it, err := h.next(time.Until(deadline))
		if err != nil {
			break
		}
		if it.Event != nil {
			t.Fatalf("unexpected event %+v after %d frames", it.Event, len(out))
		}
		if !it.Unit.Track.Codec.IsVideo() {
			continue
		}
		m, ok := camsim.FindMark(string(codec), it.Unit.NALUs)
		if !ok {
			t.Fatalf("unit %d without a simulator mark", len(out))
		}
		out = append(out, m)
	}
	return out
}

func consecutive(t *testing.T, ms []camsim.Mark) {
	t.Helper()
	for i := 1; i < len(ms); i++ {
		if ms[i].Frame != ms[i-1].Frame+1 {
			t.Fatalf("frame %d follows frame %d", ms[i].Frame, ms[i-1].Frame)
		}
	}
}

func TestCamsimFramesConsecutive30s(t *testing.T) {
	t.Parallel()
	sim := startCamsim(t, camsim.Config{Cameras: 2})
	h := runSource(t, SourceConfig{URL: sim.URL(2)})
	checkSessionStartSize(t, h, CodecH264, 640, 360)
	start := time.Now()
	ms := h.marks(t, CodecH264, 30*time.Second)
	consecutive(t, ms)
	for _, m := range ms {
		if m.Camera != 2 {
			t.Fatalf("mark of camera %d", m.Camera)
		}
	}
	// 25 fps for 30 s.
	if len(ms) < 700 {
		t.Fatalf("%d frames in 30 s", len(ms))
	}
	hl := h.src.Health()
	t.Logf("%d consecutive frames in %v (frames %d..%d), fps %.1f, bitrate %.0f kbit/s, keyframe interval %v, lost %d, clock offset %v (known %v)",
		len(ms), time.Since(start).Round(time.Millisecond), ms[0].Frame, ms[len(ms)-1].Frame, hl.FPS, hl.Bitrate/1000,
		hl.KeyframeInterval, hl.PacketsLost, hl.ClockOffset, hl.ClockOffsetKnown)
	if hl.PacketsLost != 0 || hl.Discontinuities != 0 || hl.Reconnects != 0 {
		t.Fatalf("health %+v", hl)
	}
	if !hl.ClockOffsetKnown || hl.ClockOffset > 100*time.Millisecond || hl.ClockOffset < -100*time.Millisecond {
		t.Fatalf("clock offset %v (known %v) from the simulator's sender reports, want about 0", hl.ClockOffset, hl.ClockOffsetKnown)
	}
}

// checkSessionStartSize is checkSessionStart for other picture sizes.
func checkSessionStartSize(t *testing.T, h *harness, codec Codec, w, hgt int) *Tracks {
	t.Helper()
	e := h.event(10 * time.Second)
	if e.Reason != ReasonDiscontinuity || e.Tracks == nil || e.Tracks.Video == nil {
		t.Fatalf("first event %+v", e)
	}
	if v := e.Tracks.Video; v.Codec != codec || v.Width != w || v.Height != hgt {
		t.Fatalf("video track %s, want %s %dx%d", v, codec, w, hgt)
	}
	return e.Tracks
}

func TestCamsimRestart(t *testing.T) {
	t.Parallel()
	sim := startCamsim(t, camsim.Config{})
	h := runSource(t, SourceConfig{URL: sim.URL(1)})
	checkSessionStartSize(t, h, CodecH264, 640, 360)
	h.units(10, 5*time.Second)
	keyint := h.waitHealth(5*time.Second, func(h Health) bool { return h.KeyframeInterval > 0 }).KeyframeInterval
	addr := sim.Addr()
	sim.Close()
	e := h.eventReason(ReasonCameraOffline, 5*time.Second)
	t.Logf("offline: %s", e.Detail)
	time.Sleep(500 * time.Millisecond)
	restarted := time.Now()
	sim2 := startCamsim(t, camsim.Config{Listen: addr})
	checkSessionStartSize(t, h, CodecH264, 640, 360)
	us := h.units(1, keyint+10*time.Second)
	took := time.Since(restarted)
	t.Logf("frames resumed %v after the simulator restarted (keyframe interval %v)", took, keyint)
	if took > keyint+5*time.Second {
		t.Fatalf("frames resumed after %v, want within keyframe interval + 5 s", took)
	}
	if m, ok := camsim.FindMark("H264", us[0].NALUs); !ok || !us[0].Key {
		t.Fatalf("first unit after restart: key %v mark %v", us[0].Key, m)
	}
	if sim2.Camera(1).Sessions() != 1 {
		t.Fatalf("%d sessions on the restarted simulator", sim2.Camera(1).Sessions())
	}
}

func TestCamsimDropSessions(t *testing.T) {
	t.Parallel()
	sim := startCamsim(t, camsim.Config{})
	h := runSource(t, SourceConfig{URL: sim.URL(1)})
	checkSessionStartSize(t, h, CodecH264, 640, 360)
	h.units(10, 5*time.Second)
	sim.Camera(1).DropSessions()
	h.eventReason(ReasonCameraOffline, 5*time.Second)
	e := h.event(10 * time.Second)
	if e.Tracks == nil || e.Detail != DetailSessionStarted {
		t.Fatalf("event %+v", e)
	}
	h.units(5, 10*time.Second)
}

func TestCamsimStall(t *testing.T) {
	t.Parallel()
	sim := startCamsim(t, camsim.Config{})
	h := runSource(t, SourceConfig{URL: sim.URL(1), ReadTimeout: 5 * time.Second})
	checkSessionStartSize(t, h, CodecH264, 640, 360)
	h.units(10, 5*time.Second)
	stalled := time.Now()
	sim.Camera(1).Stall(30 * time.Second)
	e := h.eventReason(ReasonCameraOffline, 12*time.Second)
	took := time.Since(stalled)
	t.Logf("stalled camera offline after %v (read timeout 5s): %s", took, e.Detail)
	if took > 10*time.Second || !strings.HasPrefix(e.Detail, "timeout") {
		t.Fatalf("offline after %v with %q", took, e.Detail)
	}
	if hl := h.src.Health(); hl.State == StateOnline {
		t.Fatalf("state %s", hl.State)
	}
}

func TestCamsimAuth(t *testing.T) {
	t.Parallel()
	sim := startCamsim(t, camsim.Config{Username: "viewer", Password: "Corr3ct-horse"})
	good := runSource(t, SourceConfig{Camera: "good", URL: sim.URL(1), Username: "viewer", Password: "Corr3ct-horse"})
	bad := runSource(t, SourceConfig{Camera: "bad", URL: sim.URL(1), Username: "viewer", Password: "Wr0ng-horse"})
	checkSessionStartSize(t, good, CodecH264, 640, 360)
	hl := bad.waitHealth(10*time.Second, func(h Health) bool { return h.State == StateOffline })
	if hl.Reason != OfflineAuthFailed {
		t.Fatalf("reason %q (%s)", hl.Reason, hl.Detail)
	}
	bad.stop()
	if logs := bad.logs.String(); strings.Contains(logs, "Wr0ng-horse") {
		t.Fatalf("password in logs: %s", logs)
	}
}

func TestCamsimSSRCChangeAndTimestampJump(t *testing.T) {
	t.Parallel()
	sim := startCamsim(t, camsim.Config{Clip: clipPath(t, "h264_aac_640x360.ts")})
	h := runSource(t, SourceConfig{URL: sim.URL(1)})
	tr := checkSessionStartSize(t, h, CodecH264, 640, 360)
	if tr.Audio == nil || tr.Audio.Codec != CodecAAC {
		t.Fatalf("audio track %v", tr.Audio)
	}
	before := h.marks(t, CodecH264, 2*time.Second)
	consecutive(t, before)

	cam := sim.Camera(1)
	changed := time.Now()
	cam.ChangeSSRC()
	e := h.event(10 * time.Second)
	if e.Reason != ReasonDiscontinuity || e.Detail != DetailSSRCChanged || e.Tracks == nil {
		t.Fatalf("event after SSRC change %+v", e)
	}
	after := h.marks(t, CodecH264, 4*time.Second) // fails on a second event
	consecutive(t, after)
	if len(after) > 0 {
		t.Logf("SSRC change: new run %v after the change, frames %d..%d skipped (the session restart and the wait for a keyframe)",
			e.At.Sub(changed).Round(time.Millisecond), before[len(before)-1].Frame+1, after[0].Frame-1)
	}
	if len(after) < 50 {
		t.Fatalf("%d frames in the 4 s after the SSRC change", len(after))
	}

	cam.JumpTimestamp(90000 * 600)
	e = h.event(10 * time.Second)
	if e.Reason != ReasonDiscontinuity || e.Detail != DetailTimestampJump {
		t.Fatalf("event after timestamp jump %+v", e)
	}
	var first *Unit
	n := 0
	deadline := time.Now().Add(4 * time.Second)
	for time.Now().Before(deadline) {
		it, err := h.next(time.Until(deadline))
		if err != nil {
			break
		}
		if it.Event != nil {
			t.Fatalf("second event after the jump: %+v", it.Event)
		}
		if it.Unit.Track.Codec.IsVideo() {
			if first == nil {
				first = it.Unit
			}
			n++
		}
	}
	if first == nil || !first.Key || first.PTS != 0 || n < 40 {
		t.Fatalf("after the jump: first %+v, %d frames", first, n)
	}
	hl := h.src.Health()
	if hl.Discontinuities != 2 || hl.State != StateOnline {
		t.Fatalf("health %+v", hl)
	}
}

func TestCamsimH265AndAudio(t *testing.T) {
	t.Parallel()
	sim := startCamsim(t, camsim.Config{Cameras: 2, CameraClips: map[int]string{
		1: clipPath(t, "h265_640x360.ts"),
		2: clipPath(t, "h264_aac_640x360.ts"),
	}})
	hevc := runSource(t, SourceConfig{Camera: "hevc", URL: sim.URL(1)})
	aac := runSource(t, SourceConfig{Camera: "aac", URL: sim.URL(2)})
	checkSessionStartSize(t, hevc, CodecH265, 640, 360)
	consecutive(t, hevc.marks(t, CodecH265, 3*time.Second))

	tr := checkSessionStartSize(t, aac, CodecH264, 640, 360)
	if tr.Audio == nil || tr.Audio.Codec != CodecAAC || tr.Audio.SampleRate != 48000 {
		t.Fatalf("audio %+v", tr.Audio)
	}
	var audio []*Unit
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		it, err := aac.next(time.Until(deadline))
		if err != nil {
			break
		}
		if it.Unit != nil && it.Unit.Track == tr.Audio {
			audio = append(audio, it.Unit)
		}
	}
	if len(audio) < 100 { // 46.9 units/s
		t.Fatalf("%d AAC units in 3 s", len(audio))
	}
	for i := 1; i < len(audio); i++ {
		if audio[i].PTS-audio[i-1].PTS != 1024 {
			t.Fatalf("AAC PTS step %d", audio[i].PTS-audio[i-1].PTS)
		}
	}
}

func TestCamsimGarbage(t *testing.T) {
	t.Parallel()
	sim := startCamsim(t, camsim.Config{})
	h := runSource(t, SourceConfig{URL: sim.URL(1)})
	checkSessionStartSize(t, h, CodecH264, 640, 360)
	h.units(5, 5*time.Second)
	sim.Camera(1).SendGarbage(200)
	ms := h.marks(t, CodecH264, 3*time.Second)
	consecutive(t, ms)
	hl := h.src.Health()
	t.Logf("after 200 garbage packets: %d frames, %d decode errors", len(ms), hl.DecodeErrors)
	if hl.DecodeErrors == 0 || hl.State != StateOnline {
		t.Fatalf("health %+v", hl)
	}
}

func clipPath(t *testing.T, name string) string {
	t.Helper()
	return filepath.Join(testenv.RepoRoot(t), "testdata", "clips", name)
}
