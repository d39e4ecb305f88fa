package alerts

import (
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kuzet/kuzet/ingest"
	"github.com/kuzet/kuzet/internal/camsim"
	"github.com/kuzet/kuzet/internal/testenv"
	"github.com/kuzet/kuzet/registry"
)

// End to end over the camera simulator: real RTSP sessions, real clips and
// fault injection, ingest's Manager, and the engine's detectors (alerts in
// memory; the database path is tested on its own). These run in real time:
// they are parallel and kept short; the exact time windows of every
// detector are shown in the synctest tests.

// clipSegment is one part of a generated clip: an ffmpeg lavfi source
// (320x180) for some seconds.
type clipSegment struct {
	source  string // e.g. "testsrc2=size=320x180:rate=25"
	seconds int
}

// makeClip writes an H.264 MPEG-TS clip of the segments one after the
// other (no B-frames, keyframes every gop seconds) and returns its path and
// frame count.
func makeClip(t *testing.T, name string, gop float64, segs ...clipSegment) (string, int) {
	t.Helper()
	ffmpeg := testenv.FFmpeg(t)
	out := filepath.Join(t.TempDir(), name+".ts")
	args := []string{"-hide_banner", "-loglevel", "error", "-y"}
	var in strings.Builder
	for i, s := range segs {
		args = append(args, "-f", "lavfi", "-t", strconv.Itoa(s.seconds), "-i", s.source)
		fmt.Fprintf(&in, "[%d:v]", i)
	}
	args = append(args, "-filter_complex", fmt.Sprintf("%sconcat=n=%d:v=1,format=yuv420p[v]", in.String(), len(segs)),
		"-map", "[v]", "-fps_mode", "passthrough", "-c:v", "libx264", "-preset", "veryfast", "-bf", "0",
		"-force_key_frames", fmt.Sprintf("expr:gte(t,n_forced*%g)", gop), "-g", strconv.Itoa(int(gop*25)), "-sc_threshold", "0",
		"-an", "-f", "mpegts", out)
	if b, err := exec.Command(ffmpeg, args...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, b)
	}
	b, err := exec.Command(testenv.FFprobe(t), "-v", "error", "-select_streams", "v", "-count_packets",
		"-show_entries", "stream=nb_read_packets", "-of", "csv=p=0", out).Output()
	if err != nil {
		t.Fatalf("ffprobe: %v", err)
	}
	n, err := strconv.Atoi(strings.Fields(string(b) + " x")[0])
	if err != nil || n == 0 {
		t.Fatalf("ffprobe frames %q", b)
	}
	return out, n
}

// e2e is camsim → ingest.Manager → engine.
type e2e struct {
	sim *camsim.Server
	mgr *ingest.Manager
	*testEngine
	mu      sync.Mutex
	streams []*ingest.Stream
	// phases: receive times of clip frames at watched indexes.
	marks map[string]map[int][]time.Time
}

// startE2E serves n cameras ("cam1".."camN" in facility f16), clips by
// camera number, pulls them, and runs the engine with cfg.
func startE2E(t *testing.T, cfg Config, n int, clips map[int]string) *e2e {
	t.Helper()
	sim, err := camsim.New(camsim.Config{Listen: "127.0.0.1:0", Cameras: n, CameraClips: clips,
		Clip: func() string {
			if c, ok := clips[1]; ok {
				return c
			}
			return ""
		}()}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	if err := cfg.setDefaults(); err != nil {
		t.Fatal(err)
	}
	x := &e2e{sim: sim, marks: map[string]map[int][]time.Time{}}
	x.mgr, err = ingest.NewManager(ingest.ManagerConfig{BackoffMin: 100 * time.Millisecond, BackoffMax: 500 * time.Millisecond,
		OnStream: func(_ ingest.CameraConfig, s *ingest.Stream) {
			x.mu.Lock()
			x.streams = append(x.streams, s)
			x.mu.Unlock()
		}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := &fakeDirectory{facs: []registry.Facility{{ID: "f16", Timezone: "UTC"}}}
	var cams []ingest.CameraConfig
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("cam%d", i)
		cams = append(cams, ingest.CameraConfig{ID: id, Facility: "f16", URL: sim.URL(i), Enabled: true})
		dir.cams = append(dir.cams, registry.Camera{ID: id, Facility: "f16", Zone: "block-a"})
	}
	x.testEngine = &testEngine{mem: &memStore{}, log: &eventLog{}}
	x.engine = newEngine(cfg, x.mem, x.mgr, nil, dir, newHistory(cfg.HistoryPoints), nil, slog.New(slog.DiscardHandler), x.log.publish)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	if err := x.mgr.Apply(ctx, cams); err != nil {
		t.Fatal(err)
	}
	for _, s := range x.streams {
		if r := x.attach(s); r != nil {
			wg.Go(func() { x.readMedia(ctx, s.Camera(), r) })
		}
	}
	wg.Go(func() { _ = x.mgr.Run(ctx) })
	wg.Go(func() { x.run(ctx) })
	return x
}

// watch records when frames with clip index in idx arrive on camera, the
// clip having frames frames.
func (x *e2e) watch(t *testing.T, camera string, frames int, idx ...int) {
	t.Helper()
	var st *ingest.Stream
	for _, s := range x.streams {
		if s.Camera() == camera {
			st = s
		}
	}
	r, err := st.AddReader(ingest.ReaderConfig{Kind: ingest.ReaderDetector, Capacity: 1024})
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]bool{}
	x.mu.Lock()
	x.marks[camera] = map[int][]time.Time{}
	x.mu.Unlock()
	for _, i := range idx {
		want[i] = true
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer r.Close()
		for {
			it, err := r.Read(ctx)
			if err != nil {
				return
			}
			if it.Unit == nil || !it.Unit.Track.Codec.IsVideo() {
				continue
			}
			m, ok := camsim.FindMark(string(it.Unit.Track.Codec), it.Unit.NALUs)
			if !ok {
				continue
			}
			if i := int(m.Frame % uint64(frames)); want[i] {
				x.mu.Lock()
				x.marks[camera][i] = append(x.marks[camera][i], it.Unit.Received)
				x.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

// lastMark is the latest arrival of clip frame idx on camera before t.
func (x *e2e) lastMark(camera string, idx int, before time.Time) (time.Time, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	var best time.Time
	for _, at := range x.marks[camera][idx] {
		if at.Before(before) && at.After(best) {
			best = at
		}
	}
	return best, !best.IsZero()
}

// waitEvent waits up to d for an event of type typ for kind on subject
// (after skipping n earlier ones) and returns when it came.
func (x *e2e) waitEvent(t *testing.T, typ EventType, kind Kind, subject string, n int, d time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		x.log.mu.Lock()
		k := 0
		for i, e := range x.log.evs {
			if e.Type == typ && e.Alert.Kind == kind && e.Alert.Subject == subject {
				if k == n {
					at := x.log.at[i]
					x.log.mu.Unlock()
					return at
				}
				k++
			}
		}
		x.log.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no %s event #%d for %s on %s within %s; events:\n%s", typ, n+1, kind, subject, d, x.log)
	return time.Time{}
}

func TestCamsimOffline(t *testing.T) {
	t.Parallel()
	x := startE2E(t, Config{}, 2, nil)
	time.Sleep(3 * time.Second)
	fault := time.Now()
	x.sim.Camera(1).Offline(18 * time.Second)
	at := x.waitEvent(t, EventOpened, KindCameraOffline, "cam1", 0, 15*time.Second)
	d := at.Sub(fault)
	t.Logf("offline alert %s after the camera went away", d.Round(time.Millisecond))
	if d > 12*time.Second || d < 9*time.Second {
		t.Errorf("offline alert after %s, want 10-12 s", d)
	}
	back := fault.Add(18 * time.Second)
	at = x.waitEvent(t, EventResolved, KindCameraOffline, "cam1", 0, 20*time.Second)
	t.Logf("offline resolved %s after the camera came back", at.Sub(back).Round(time.Millisecond))
	// Reconnection (backoff up to 0.5 s), ClearFor (3 s), the evaluation.
	if at.Sub(back) > 8*time.Second {
		t.Errorf("resolved %s after the camera came back", at.Sub(back))
	}
	if n := len(x.mem.all(KindCameraOffline, "cam2")); n != 0 {
		t.Errorf("camera 2 alerted offline %d times", n)
	}
}

func TestCamsimStall(t *testing.T) {
	t.Parallel()
	x := startE2E(t, Config{}, 1, nil)
	time.Sleep(3 * time.Second)
	fault := time.Now()
	x.sim.Camera(1).Stall(16 * time.Second)
	at := x.waitEvent(t, EventOpened, KindCameraOffline, "cam1", 0, 15*time.Second)
	t.Logf("stalled camera offline after %s", at.Sub(fault).Round(time.Millisecond))
	if d := at.Sub(fault); d > 12*time.Second || d < 9*time.Second {
		t.Errorf("offline alert after %s, want 10-12 s", d)
	}
	x.waitEvent(t, EventResolved, KindCameraOffline, "cam1", 0, 20*time.Second)
}

func TestCamsimFlapping(t *testing.T) {
	t.Parallel()
	x := startE2E(t, Config{FlapWindow: 15 * time.Second}, 1, nil)
	time.Sleep(3 * time.Second)
	var third time.Time
	for range 3 {
		x.sim.Camera(1).DropSessions()
		third = time.Now()
		time.Sleep(1500 * time.Millisecond)
	}
	at := x.waitEvent(t, EventOpened, KindCameraFlapping, "cam1", 0, 5*time.Second)
	t.Logf("flapping alert %s after the third drop", at.Sub(third).Round(time.Millisecond))
	if at.Sub(third) > 3*time.Second {
		t.Errorf("flapping after %s", at.Sub(third))
	}
	// Quiet for the window: resolved.
	x.waitEvent(t, EventResolved, KindCameraFlapping, "cam1", 0, 20*time.Second)
}

// TestCamsimLowFPS: a camera whose clip drops from 25 to 5 fps for 15 s
// and back, looped. LowFPSFor is 4 s here (30 s by default, shown in the
// synctest test).
func TestCamsimLowFPS(t *testing.T) {
	t.Parallel()
	clip, frames := makeClip(t, "lowfps", 1,
		clipSegment{"testsrc2=size=320x180:rate=25", 14}, clipSegment{"testsrc2=size=320x180:rate=5", 12})
	lowStart, fastStart := 14*25, 0
	x := startE2E(t, Config{LowFPSFor: 4 * time.Second}, 1, map[int]string{1: clip})
	x.watch(t, "cam1", frames, lowStart, fastStart)
	at := x.waitEvent(t, EventOpened, KindCameraLowFPS, "cam1", 0, 60*time.Second)
	drop, ok := x.lastMark("cam1", lowStart, at)
	if !ok {
		t.Fatal("alert before the clip's slow part")
	}
	t.Logf("low fps alert %s after the rate dropped", at.Sub(drop).Round(time.Millisecond))
	// Ingest measures the rate over 1 s windows, so it shows the drop up
	// to 2 s late; the evaluation adds up to 1 s at each end.
	if d := at.Sub(drop); d > 4*time.Second+4*time.Second || d < 4*time.Second {
		t.Errorf("low fps alert %s after the drop, want LowFPSFor (4 s) + at most 4 s", d)
	}
	res := x.waitEvent(t, EventResolved, KindCameraLowFPS, "cam1", 0, 20*time.Second)
	up, _ := x.lastMark("cam1", fastStart, res)
	t.Logf("low fps resolved %s after the rate came back", res.Sub(up).Round(time.Millisecond))
	// Up to 2 s for ingest's 1 s rate windows to show the recovery, ClearFor
	// (3 s), up to 1 s for the evaluation tick, and 1 s of scheduling slack
	// on a loaded machine.
	if d := res.Sub(up); d > 7*time.Second || d < 0 {
		t.Errorf("resolved %s after the rate came back, want at most 7 s", d)
	}
}

// TestCamsimCoveredAndFrozen: cameras whose clips turn black (covered
// lens) or to a still picture (frozen feed) for 10 s out of every 22.
func TestCamsimCoveredAndFrozen(t *testing.T) {
	t.Parallel()
	moving := clipSegment{"testsrc2=size=320x180:rate=25", 12}
	black, n1 := makeClip(t, "black", 1, moving, clipSegment{"color=c=black:size=320x180:rate=25", 10})
	still, n2 := makeClip(t, "still", 1, moving, clipSegment{"smptebars=size=320x180:rate=25", 10})
	x := startE2E(t, Config{}, 2, map[int]string{1: black, 2: still})
	faultAt := 12 * 25
	x.watch(t, "cam1", n1, faultAt, 0)
	x.watch(t, "cam2", n2, faultAt, 0)
	for _, c := range []struct {
		cam, what string
		frames    int
	}{{"cam1", "covered", n1}, {"cam2", "frozen", n2}} {
		t.Run(c.what, func(t *testing.T) {
			at := x.waitEvent(t, EventOpened, KindCameraTamper, c.cam, 0, 50*time.Second)
			start, ok := x.lastMark(c.cam, faultAt, at)
			if !ok {
				t.Fatal("tamper alert before the clip's fault")
			}
			t.Logf("%s: tamper alert %s after the picture changed", c.what, at.Sub(start).Round(time.Millisecond))
			if d := at.Sub(start); d < 4500*time.Millisecond || d > 8*time.Second {
				t.Errorf("tamper alert %s after the fault, want TamperFor (5 s) + at most 3 s", d)
			}
			res := x.waitEvent(t, EventResolved, KindCameraTamper, c.cam, 0, 20*time.Second)
			back, _ := x.lastMark(c.cam, 0, res)
			t.Logf("%s: resolved %s after the picture came back", c.what, res.Sub(back).Round(time.Millisecond))
			if d := res.Sub(back); d < 0 || d > 6*time.Second {
				t.Errorf("resolved %s after the picture came back", d)
			}
		})
	}
	if n := len(x.mem.all(KindCameraSceneChange, "cam1")) + len(x.mem.all(KindCameraSceneChange, "cam2")); n > 0 {
		t.Errorf("%d scene-change alerts when the picture came back", n)
	}
}

// TestCamsimKeyframesMissing: a clip with one keyframe per 30 s loop.
func TestCamsimKeyframesMissing(t *testing.T) {
	t.Parallel()
	clip, frames := makeClip(t, "longgop", 1000, clipSegment{"testsrc2=size=320x180:rate=25", 30})
	x := startE2E(t, Config{}, 1, map[int]string{1: clip})
	x.watch(t, "cam1", frames, 0)
	// The first loop's keyframe may come before the watcher: judge from
	// the first keyframe the watcher sees.
	var key time.Time
	deadline := time.Now().Add(45 * time.Second)
	for {
		if k, ok := x.lastMark("cam1", 0, time.Now()); ok {
			key = k
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no keyframe within 45 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	at := x.waitEventAfter(t, EventOpened, KindKeyframesMissing, "cam1", key, 20*time.Second)
	t.Logf("keyframes missing %s after the last keyframe", at.Sub(key).Round(time.Millisecond))
	if d := at.Sub(key); d < 10*time.Second || d > 12*time.Second {
		t.Errorf("alert %s after the last keyframe, want 10-12 s", d)
	}
	res := x.waitEventAfter(t, EventResolved, KindKeyframesMissing, "cam1", at, 30*time.Second)
	next, ok := x.lastMark("cam1", 0, res)
	if !ok || !next.After(key) {
		t.Fatal("resolved without a new keyframe")
	}
	t.Logf("keyframes missing resolved %s after the next keyframe", res.Sub(next).Round(time.Millisecond))
	if d := res.Sub(next); d < 0 || d > 6*time.Second {
		t.Errorf("resolved %s after the keyframe", d)
	}
}

// waitEventAfter waits up to d for the first event of type typ for kind on
// subject that came after `after`.
func (x *e2e) waitEventAfter(t *testing.T, typ EventType, kind Kind, subject string, after time.Time, d time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		x.log.mu.Lock()
		for i, e := range x.log.evs {
			if e.Type == typ && e.Alert.Kind == kind && e.Alert.Subject == subject && x.log.at[i].After(after) {
				at := x.log.at[i]
				x.log.mu.Unlock()
				return at
			}
		}
		x.log.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no %s event for %s on %s after %s within %s; events:\n%s", typ, kind, subject, after.Format("15:04:05.000"), d, x.log)
	return time.Time{}
}

// TestCamsimActivity: a still scene with a moving object at known
// intervals, through RTSP, under a rule that asks for activity alerts.
func TestCamsimActivity(t *testing.T) {
	t.Parallel()
	ffmpeg := testenv.FFmpeg(t)
	clip := filepath.Join(t.TempDir(), "activity.ts")
	// Still for 12 s, the object moves for 6 s, still for 12 s.
	active := "between(t,12,17.999)"
	filter := "[0:v]noise=alls=6:allf=t[bg];[1:v]trim=end_frame=1,loop=loop=-1:size=1:start=0,setpts=N/25/TB[obj];" +
		"[bg][obj]overlay=x='120+" + active + "*80*sin(2.3*t)':y='50+" + active + "*40*cos(3.1*t)':shortest=1,format=yuv420p"
	if b, err := exec.Command(ffmpeg, "-hide_banner", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", "smptebars=size=320x180:rate=25", "-f", "lavfi", "-i", "mandelbrot=size=80x80:rate=25",
		"-filter_complex", filter, "-t", "30", "-c:v", "libx264", "-preset", "veryfast", "-bf", "0", "-g", "50",
		"-an", "-f", "mpegts", clip).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, b)
	}
	x := startE2E(t, Config{ActivityQuiet: 5 * time.Second}, 1, map[int]string{1: clip})
	r, err := ParseRule([]byte(`{"name":"always","kinds":["camera_activity"],"severity":"high"}`))
	if err != nil {
		t.Fatal(err)
	}
	x.mem.mu.Lock()
	x.mem.rs = []Rule{r}
	x.mem.mu.Unlock()
	x.refresh()
	x.watch(t, "cam1", 750, 12*25, 18*25)
	for i := range 2 {
		at := x.waitEvent(t, EventOpened, KindCameraActivity, "cam1", i, 45*time.Second)
		moved, ok := x.lastMark("cam1", 12*25, at)
		if !ok {
			t.Fatalf("activity alert %d before any motion", i)
		}
		t.Logf("activity alert %s after motion started", at.Sub(moved).Round(time.Millisecond))
		if d := at.Sub(moved); d < 0 || d > 4*time.Second {
			t.Errorf("activity alert %s after the motion started", d)
		}
		res := x.waitEvent(t, EventResolved, KindCameraActivity, "cam1", i, 20*time.Second)
		stopped, _ := x.lastMark("cam1", 18*25, res)
		t.Logf("activity resolved %s after motion stopped", res.Sub(stopped).Round(time.Millisecond))
		if d := res.Sub(stopped); d < 5*time.Second || d > 11*time.Second {
			t.Errorf("activity resolved %s after the motion stopped, want ActivityQuiet (5 s) + at most 6 s", d)
		}
	}
}

// cameraHealth is camera's current health from ingest.
func (x *e2e) cameraHealth(t *testing.T, camera string) ingest.Health {
	t.Helper()
	for _, h := range x.mgr.Health() {
		if h.Camera == camera {
			return h
		}
	}
	t.Fatalf("no health of %s", camera)
	return ingest.Health{}
}

// TestCamsimClockOffset: a camera whose clock, as its RTCP sender reports
// show it, runs 5 s ahead, then is set right. Ingest maps RTP time to the
// camera's wall clock through the reports it parses and derives the offset
// from them; ClockOffsetFor keeps its default (10 s).
func TestCamsimClockOffset(t *testing.T) {
	t.Parallel()
	x := startE2E(t, Config{}, 2, nil)
	deadline := time.Now().Add(20 * time.Second)
	for {
		h1, h2 := x.cameraHealth(t, "cam1"), x.cameraHealth(t, "cam2")
		if h1.ClockOffsetKnown && h2.ClockOffsetKnown && h1.State == ingest.StateOnline {
			if h1.ClockOffset.Abs() > 200*time.Millisecond || h2.ClockOffset.Abs() > 200*time.Millisecond {
				t.Fatalf("clock offsets %v and %v before the fault, want about 0", h1.ClockOffset, h2.ClockOffset)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("clock offsets not known within 20 s: %+v", h1)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second)
	skewed := time.Now()
	x.sim.Camera(1).SkewClock(5 * time.Second)
	// Ingest smooths the offset over a few dozen frames: it passes
	// ClockOffsetMax (2 s) within half a second and settles at 5 s.
	var crossed time.Time
	for {
		h := x.cameraHealth(t, "cam1")
		if crossed.IsZero() && h.ClockOffset > 2*time.Second {
			crossed = time.Now()
		}
		if (h.ClockOffset - 5*time.Second).Abs() < 200*time.Millisecond {
			t.Logf("ingest: camera clock over 2 s off %s after the skew, %v off after %s",
				crossed.Sub(skewed).Round(time.Millisecond), h.ClockOffset.Round(time.Millisecond), time.Since(skewed).Round(time.Millisecond))
			break
		}
		if time.Since(skewed) > 5*time.Second {
			t.Fatalf("clock offset %v (known %v) 5 s after a 5 s skew", h.ClockOffset, h.ClockOffsetKnown)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if d := crossed.Sub(skewed); d > time.Second {
		t.Errorf("offset over 2 s only %s after the skew", d)
	}
	at := x.waitEvent(t, EventOpened, KindCameraClockOffset, "cam1", 0, 20*time.Second)
	_, ev, _ := x.log.first(EventOpened, KindCameraClockOffset, "cam1")
	t.Logf("clock offset alert %s after the skew, %s after the offset passed 2 s: %s",
		at.Sub(skewed).Round(time.Millisecond), at.Sub(crossed).Round(time.Millisecond), ev.Alert.Detail)
	// The condition holds from the first evaluation that sees the offset
	// (up to 1 s after it crossed) and must last ClockOffsetFor measured
	// between evaluation ticks: one tick delayed by a millisecond more than
	// a later one costs a whole Interval (1 s) more.
	if d := at.Sub(crossed); d < 10*time.Second || d > 12500*time.Millisecond {
		t.Errorf("clock offset alert %s after the offset passed 2 s, want ClockOffsetFor (10 s) + at most 2.5 s", d)
	}
	if !strings.Contains(ev.Alert.Detail, "camera clock 5") && !strings.Contains(ev.Alert.Detail, "camera clock 4.9") {
		t.Errorf("alert detail %q does not show the 5 s offset", ev.Alert.Detail)
	}

	fixed := time.Now()
	x.sim.Camera(1).SkewClock(0)
	res := x.waitEvent(t, EventResolved, KindCameraClockOffset, "cam1", 0, 20*time.Second)
	t.Logf("clock offset resolved %s after the clock was set right", res.Sub(fixed).Round(time.Millisecond))
	// The smoothed offset falls under ClockOffsetMax within a second,
	// then ClearFor (3 s) between evaluation ticks (up to 2 s more, as
	// above), and slack.
	if d := res.Sub(fixed); d < 3*time.Second || d > 6500*time.Millisecond {
		t.Errorf("resolved %s after the clock was set right, want ClearFor (3 s) + at most 3.5 s", d)
	}
	if h := x.cameraHealth(t, "cam1"); h.ClockOffset.Abs() > 200*time.Millisecond {
		t.Errorf("clock offset %v after the clock was set right", h.ClockOffset)
	}
	if n := len(x.mem.all(KindCameraClockOffset, "cam2")); n != 0 {
		t.Errorf("camera 2 alerted clock offset %d times", n)
	}
}
