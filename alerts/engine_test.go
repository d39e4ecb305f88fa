package alerts

import (
	"context"
	"math/rand/v2"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kuzet/kuzet/ingest"
)

// The time-window logic of every detector, in synctest bubbles: the clock
// is fake, so minutes pass in milliseconds and the bounds are exact.

// within checks that the event came between lo and hi after ref.
func within(t *testing.T, what string, ref, at time.Time, lo, hi time.Duration) {
	t.Helper()
	d := at.Sub(ref)
	t.Logf("%s after %s", what, d)
	if d < lo || d > hi {
		t.Errorf("%s after %s, want between %s and %s", what, d, lo, hi)
	}
}

func (te *testEngine) mustFirst(t *testing.T, typ EventType, kind Kind, subject string) (time.Time, Event) {
	t.Helper()
	at, e, ok := te.log.first(typ, kind, subject)
	if !ok {
		t.Fatalf("no %s event for %s %s; events:\n%s", typ, kind, subject, te.log)
	}
	return at, e
}

func TestOfflineFiresWithin12sAndResolves(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		te := newTestEngine(t, Config{})
		te.health.set("c1", nil)
		te.start(t)
		time.Sleep(20 * time.Second)
		if _, ok := te.mem.active(KindCameraOffline, "c1"); ok {
			t.Fatal("offline while media flows")
		}
		stop := time.Now()
		te.health.set("c1", func(c *fakeCam) { c.flowing = false })
		time.Sleep(5 * time.Second)
		te.health.set("c1", func(c *fakeCam) { c.state = ingest.StateOffline })
		time.Sleep(20 * time.Second)
		at, e := te.mustFirst(t, EventOpened, KindCameraOffline, "c1")
		within(t, "offline alert", stop, at, 10*time.Second, 12*time.Second)
		if e.Alert.Facility != "f16" || e.Alert.Zone != "block-a" || e.Alert.Severity != SeverityHigh {
			t.Errorf("alert %+v: want facility f16, zone block-a, severity high", e.Alert)
		}
		if !e.Alert.Since.Equal(stop) {
			t.Errorf("since %s, want the last frame %s", e.Alert.Since, stop)
		}
		back := time.Now()
		te.health.set("c1", func(c *fakeCam) { c.flowing, c.state = true, ingest.StateOnline })
		time.Sleep(10 * time.Second)
		at, _ = te.mustFirst(t, EventResolved, KindCameraOffline, "c1")
		within(t, "offline resolved", back, at, 0, 5*time.Second)
		if n := len(te.mem.all(KindCameraOffline, "c1")); n != 1 {
			t.Errorf("%d offline alerts, want 1", n)
		}
	})
}

func TestFlapping(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		te := newTestEngine(t, Config{})
		te.health.set("c1", nil)
		te.start(t)
		time.Sleep(5 * time.Second)
		for i := range 3 {
			time.Sleep(40 * time.Second)
			te.health.set("c1", func(c *fakeCam) { c.reconnects++ })
			synctest.Wait()
			time.Sleep(2 * time.Second)
			if _, ok := te.mem.active(KindCameraFlapping, "c1"); ok != (i == 2) {
				t.Fatalf("after %d reconnects flapping is %v", i+1, ok)
			}
		}
		third := time.Now().Add(-2 * time.Second)
		at, _ := te.mustFirst(t, EventOpened, KindCameraFlapping, "c1")
		within(t, "flapping", third, at, 0, 2*time.Second)
		// Five minutes after the first reconnect the window holds two.
		time.Sleep(5 * time.Minute)
		if _, ok := te.mem.active(KindCameraFlapping, "c1"); ok {
			t.Fatal("still flapping five minutes later")
		}
	})
}

func TestLowFPS(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		te := newTestEngine(t, Config{})
		te.health.set("c1", nil)
		te.start(t)
		time.Sleep(time.Minute)
		// A dip shorter than LowFPSFor is not alerted.
		te.health.set("c1", func(c *fakeCam) { c.fps = 8 })
		time.Sleep(20 * time.Second)
		te.health.set("c1", func(c *fakeCam) { c.fps = 25 })
		time.Sleep(10 * time.Second)
		if n := len(te.mem.all(KindCameraLowFPS, "c1")); n != 0 {
			t.Fatalf("a 20 s dip raised %d alerts", n)
		}
		drop := time.Now()
		te.health.set("c1", func(c *fakeCam) { c.fps = 10 })
		time.Sleep(45 * time.Second)
		at, e := te.mustFirst(t, EventOpened, KindCameraLowFPS, "c1")
		within(t, "low fps", drop, at, 30*time.Second, 32*time.Second)
		t.Logf("detail: %s", e.Alert.Detail)
		// Half the nominal rate is not low.
		back := time.Now()
		te.health.set("c1", func(c *fakeCam) { c.fps = 13 })
		time.Sleep(10 * time.Second)
		at, _ = te.mustFirst(t, EventResolved, KindCameraLowFPS, "c1")
		within(t, "low fps resolved", back, at, 0, 5*time.Second)
	})
}

func TestClockOffset(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		te := newTestEngine(t, Config{})
		te.health.set("c1", func(c *fakeCam) { c.offset, c.offsetOK = 1500*time.Millisecond, true })
		te.start(t)
		time.Sleep(time.Minute)
		if n := len(te.mem.all(KindCameraClockOffset, "c1")); n != 0 {
			t.Fatal("1.5 s offset alerted")
		}
		off := time.Now()
		te.health.set("c1", func(c *fakeCam) { c.offset = -3 * time.Second })
		time.Sleep(30 * time.Second)
		at, e := te.mustFirst(t, EventOpened, KindCameraClockOffset, "c1")
		within(t, "clock offset", off, at, 10*time.Second, 12*time.Second)
		if e.Alert.Severity != SeverityLow {
			t.Errorf("severity %s, want low", e.Alert.Severity)
		}
		fixed := time.Now()
		te.health.set("c1", func(c *fakeCam) { c.offset = 100 * time.Millisecond })
		time.Sleep(10 * time.Second)
		at, _ = te.mustFirst(t, EventResolved, KindCameraClockOffset, "c1")
		within(t, "clock offset resolved", fixed, at, 0, 5*time.Second)
	})
}

func TestSpoolFillingLevels(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		te := newTestEngine(t, Config{})
		te.start(t)
		subject := "local/spool"
		steps := []struct {
			used int64
			want Severity // "" for no alert
		}{{400, ""}, {500, SeverityMedium}, {700, SeverityMedium}, {820, SeverityHigh}, {960, SeverityCritical}, {600, SeverityCritical}, {470, ""}}
		for _, s := range steps {
			te.storage.set(func(h *StorageHealth) { h.SpoolUsed = s.used })
			time.Sleep(5 * time.Second)
			a, ok := te.mem.active(KindSpoolFilling, subject)
			if s.want == "" && ok || s.want != "" && (!ok || a.Severity != s.want) {
				t.Fatalf("spool %d/1000: alert %v %s, want %q", s.used, ok, a.Severity, s.want)
			}
		}
		if n := len(te.mem.all(KindSpoolFilling, subject)); n != 1 {
			t.Errorf("%d spool alerts, want one raised twice", n)
		}
		if n := te.log.count(EventUpdated, KindSpoolFilling, subject); n != 2 {
			t.Errorf("%d updates, want 2 (high, critical)", n)
		}
	})
}

func TestStoreDatabaseLagUploads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		te := newTestEngine(t, Config{})
		te.start(t)
		time.Sleep(3 * time.Second)
		down := time.Now()
		te.storage.set(func(h *StorageHealth) { h.StoreUp, h.StoreError = false, "dial tcp: connection refused" })
		time.Sleep(20 * time.Second)
		at, e := te.mustFirst(t, EventOpened, KindStoreUnreachable, "local/store")
		within(t, "store unreachable", down, at, 10*time.Second, 12*time.Second)
		if e.Alert.Facility != "" {
			t.Errorf("system alert with facility %q", e.Alert.Facility)
		}
		up := time.Now()
		te.storage.set(func(h *StorageHealth) { h.StoreUp = true })
		time.Sleep(10 * time.Second)
		at, _ = te.mustFirst(t, EventResolved, KindStoreUnreachable, "local/store")
		within(t, "store back", up, at, 0, 5*time.Second)

		te.storage.set(func(h *StorageHealth) { h.RecordingLag = 3 * time.Minute })
		time.Sleep(3 * time.Second)
		te.mustFirst(t, EventOpened, KindRecordingLag, "local/recording")
		te.storage.set(func(h *StorageHealth) { h.RecordingLag = 0 })

		for range 2 {
			te.storage.set(func(h *StorageHealth) { h.UploadFailures++ })
			time.Sleep(30 * time.Second)
		}
		if _, ok := te.mem.active(KindUploadFailures, "local/upload"); ok {
			t.Fatal("two upload failures alerted")
		}
		te.storage.set(func(h *StorageHealth) { h.UploadFailures++ })
		time.Sleep(2 * time.Second)
		te.mustFirst(t, EventOpened, KindUploadFailures, "local/upload")

		// The recorder cannot write the index: PostgreSQL is down for it
		// even though the alert service's own queries work.
		te.storage.set(func(h *StorageHealth) { h.DatabaseUp, h.DatabaseError = false, "timeout" })
		time.Sleep(15 * time.Second)
		te.mustFirst(t, EventOpened, KindDatabaseUnreachable, "local/database")
	})
}

// TestDatabaseOutage: while the alert service cannot reach PostgreSQL the
// outage is notified once without an id, and stored when it returns.
func TestDatabaseOutage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		te := newTestEngine(t, Config{})
		te.start(t)
		time.Sleep(3 * time.Second)
		down := time.Now()
		te.mem.mu.Lock()
		te.mem.down = true
		te.mem.mu.Unlock()
		time.Sleep(time.Minute)
		at, e := te.mustFirst(t, EventOpened, KindDatabaseUnreachable, "local/database")
		within(t, "database outage notified", down, at, 10*time.Second, 12*time.Second)
		if e.Seq != 0 || te.log.count(EventOpened, KindDatabaseUnreachable, "local/database") != 1 {
			t.Fatalf("outage notified as %v, %d times; want once without seq", e, te.log.count(EventOpened, KindDatabaseUnreachable, "local/database"))
		}
		te.mem.mu.Lock()
		te.mem.down = false
		te.mem.mu.Unlock()
		time.Sleep(3 * time.Second)
		as := te.mem.all(KindDatabaseUnreachable, "local/database")
		if len(as) != 1 || as[0].State != StateResolved || as[0].Since.Before(down) || as[0].Since.After(down.Add(time.Second)) {
			t.Fatalf("stored outage: %+v", as)
		}
	})
}

func TestEscalationAndAck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		te := newTestEngine(t, Config{EscalateAfter: 2 * time.Minute})
		te.health.set("c1", func(c *fakeCam) { c.offset, c.offsetOK = 5*time.Second, true })
		te.health.set("c2", func(c *fakeCam) { c.offset, c.offsetOK = 5*time.Second, true })
		te.start(t)
		time.Sleep(15 * time.Second)
		a1, _ := te.mem.active(KindCameraClockOffset, "c1")
		a2, _ := te.mem.active(KindCameraClockOffset, "c2")
		te.mem.ack(a2.ID)
		time.Sleep(2*time.Minute + 2*time.Second)
		at, e := te.mustFirst(t, EventEscalated, KindCameraClockOffset, "c1")
		within(t, "escalation", a1.OpenedAt, at, 2*time.Minute, 2*time.Minute+2*time.Second)
		if e.Alert.Severity != SeverityMedium {
			t.Errorf("escalated to %s, want medium", e.Alert.Severity)
		}
		if n := te.log.count(EventEscalated, KindCameraClockOffset, "c2"); n != 0 {
			t.Errorf("acknowledged alert escalated %d times", n)
		}
		// Escalation repeats up to critical, then once at critical.
		time.Sleep(20 * time.Minute)
		if n := te.log.count(EventEscalated, KindCameraClockOffset, "c1"); n != 3 {
			t.Errorf("%d escalations, want 3 (medium, high, critical)", n)
		}
	})
}

// TestManualResolveHolds: an alert resolved by hand while its condition
// holds does not come back until the condition clears and returns.
func TestManualResolveHolds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		te := newTestEngine(t, Config{})
		te.health.set("c1", func(c *fakeCam) { c.offset, c.offsetOK = 5*time.Second, true })
		te.start(t)
		time.Sleep(15 * time.Second)
		a, ok := te.mem.active(KindCameraClockOffset, "c1")
		if !ok {
			t.Fatal("no alert")
		}
		te.mem.resolveByHand(a.ID)
		time.Sleep(time.Minute)
		if n := len(te.mem.all(KindCameraClockOffset, "c1")); n != 1 {
			t.Fatalf("%d alerts after a manual resolve while the condition holds, want 1", n)
		}
		te.health.set("c1", func(c *fakeCam) { c.offset = 0 })
		time.Sleep(10 * time.Second)
		te.health.set("c1", func(c *fakeCam) { c.offset = 5 * time.Second })
		time.Sleep(15 * time.Second)
		if n := len(te.mem.all(KindCameraClockOffset, "c1")); n != 2 {
			t.Fatalf("%d alerts after the condition returned, want 2", n)
		}
	})
}

func TestMaintenanceAndRules(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		te := newTestEngine(t, Config{})
		for _, id := range []string{"c1", "c2", "c3"} {
			te.health.set(id, func(c *fakeCam) { c.offset, c.offsetOK = 5*time.Second, true })
		}
		te.health.set("c3", func(c *fakeCam) { c.facility = "f27" })
		until := time.Now().Add(time.Hour)
		te.mem.maint = []Maintenance{{Camera: "c2", Facility: "f16", Until: &until}}
		mute, err := ParseRule([]byte(`{"name":"f27 clocks are known to drift","facility":"f27","kinds":["camera_clock_offset"],"mute":true}`))
		if err != nil {
			t.Fatal(err)
		}
		high, _ := ParseRule([]byte(`{"name":"c1 matters","camera":"c1","severity":"high"}`))
		mute.ID, high.ID = 1, 2
		te.mem.rs = []Rule{mute, high}
		te.start(t)
		time.Sleep(15 * time.Second)
		if a, ok := te.mem.active(KindCameraClockOffset, "c1"); !ok || a.Severity != SeverityHigh || a.RuleID != 2 {
			t.Errorf("c1: %+v, want high by rule 2", a)
		}
		if _, ok := te.mem.active(KindCameraClockOffset, "c2"); ok {
			t.Error("c2 in maintenance alerted")
		}
		if _, ok := te.mem.active(KindCameraClockOffset, "c3"); ok {
			t.Error("c3 muted by rule alerted")
		}
		// Maintenance ends: c2 alerts; maintenance starts on c1: its alert
		// resolves.
		te.mem.mu.Lock()
		te.mem.maint = []Maintenance{{Camera: "c1", Facility: "f16"}}
		te.mem.mu.Unlock()
		te.refresh()
		time.Sleep(20 * time.Second)
		if _, ok := te.mem.active(KindCameraClockOffset, "c2"); !ok {
			t.Error("c2 out of maintenance not alerted")
		}
		as := te.mem.all(KindCameraClockOffset, "c1")
		if len(as) != 1 || as[0].State != StateResolved || as[0].ResolveNote != "camera in maintenance" {
			t.Errorf("c1 in maintenance: %+v", as)
		}
	})
}

// --- Media detectors over a real ingest.Stream in the bubble.

// fakeCamera publishes 25 fps H.264-like units into a stream; size says
// the size of each inter frame at a time (0: send nothing).
type fakeCamera struct {
	stream *ingest.Stream
	track  *ingest.Track
	gop    int // frames per keyframe (0: keyframes stop after the first)
}

func newFakeCamera(id string) *fakeCamera {
	tr := &ingest.Track{Codec: ingest.CodecH264, ClockRate: 90000, Width: 640, Height: 360}
	st := ingest.NewStream(ingest.StreamConfig{Camera: id}, nil, nil)
	st.PublishEvent(&ingest.Event{Reason: ingest.ReasonDiscontinuity, Detail: "session started", At: time.Now(), Tracks: &ingest.Tracks{Video: tr}})
	return &fakeCamera{stream: st, track: tr, gop: 50}
}

// run publishes until ctx ends.
func (c *fakeCamera) run(ctx context.Context, size func(t time.Duration) int) {
	start := time.Now()
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; ctx.Err() == nil; i++ {
		now := time.Now()
		s := size(now.Sub(start))
		key := i == 0 || (c.gop > 0 && i%c.gop == 0)
		if s > 0 {
			n := s + rng.IntN(s/5+1) - s/10
			if key {
				n = 12000 + rng.IntN(500)
			}
			c.stream.Publish(&ingest.Unit{Track: c.track, PTS: int64(i) * 3600, DTS: int64(i) * 3600, Wall: now, Received: now,
				Key: key, NALUs: [][]byte{make([]byte, 1)}, Size: n})
		}
		select {
		case <-ctx.Done():
		case <-time.After(40 * time.Millisecond):
		}
	}
}

// attachCamera runs a fake camera on the engine's detector path.
func (te *testEngine) attachCamera(t *testing.T, id string, gop int, size func(time.Duration) int) {
	cam := newFakeCamera(id)
	cam.gop = gop
	te.health.set(id, nil)
	r := te.attach(cam.stream)
	if r == nil {
		t.Fatal("attach failed")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { te.readMedia(ctx, id, r); done <- struct{}{} }()
	go func() { cam.run(ctx, size); done <- struct{}{} }()
	t.Cleanup(func() {
		cancel()
		<-done
		<-done
		cam.stream.Close()
	})
}

func phases(ps ...struct {
	until time.Duration
	size  int
}) func(time.Duration) int {
	return func(t time.Duration) int {
		for _, p := range ps {
			if t < p.until {
				return p.size
			}
		}
		return ps[len(ps)-1].size
	}
}

type phase = struct {
	until time.Duration
	size  int
}

func TestTamperCoveredLens(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		te := newTestEngine(t, Config{})
		te.start(t)
		te.attachCamera(t, "c1", 50, phases(phase{60 * time.Second, 600}, phase{120 * time.Second, 40}, phase{time.Hour, 600}))
		time.Sleep(59 * time.Second)
		if n := len(te.mem.all(KindCameraTamper, "c1")); n != 0 {
			t.Fatal("tamper alert on a normal picture")
		}
		time.Sleep(60 * time.Second)
		covered := time.Now().Add(-59 * time.Second)
		at, e := te.mustFirst(t, EventOpened, KindCameraTamper, "c1")
		within(t, "tamper", covered, at, 5*time.Second, 8*time.Second)
		t.Logf("detail: %s", e.Alert.Detail)
		time.Sleep(30 * time.Second)
		at, _ = te.mustFirst(t, EventResolved, KindCameraTamper, "c1")
		within(t, "tamper resolved", covered.Add(60*time.Second), at, 0, 6*time.Second)
		if n := len(te.mem.all(KindCameraSceneChange, "c1")); n != 0 {
			t.Errorf("a covered lens raised %d scene-change alerts", n)
		}
	})
}

func TestSceneChange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		te := newTestEngine(t, Config{})
		te.start(t)
		start := time.Now()
		te.attachCamera(t, "c1", 50, phases(phase{30 * time.Second, 600}, phase{34 * time.Second, 11000}, phase{time.Hour, 700}))
		time.Sleep(40 * time.Second)
		at, _ := te.mustFirst(t, EventOpened, KindCameraSceneChange, "c1")
		within(t, "scene change", start.Add(30*time.Second), at, 2*time.Second, 4*time.Second)
		if n := len(te.mem.all(KindCameraActivity, "c1")); n != 0 {
			t.Errorf("a scene change raised %d activity alerts", n)
		}
		time.Sleep(90 * time.Second)
		at, _ = te.mustFirst(t, EventResolved, KindCameraSceneChange, "c1")
		within(t, "scene change resolved", start.Add(34*time.Second), at, time.Minute, time.Minute+5*time.Second)
	})
}

func TestKeyframesMissing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		te := newTestEngine(t, Config{})
		te.start(t)
		start := time.Now()
		te.attachCamera(t, "c1", 0, func(time.Duration) int { return 600 })
		time.Sleep(20 * time.Second)
		at, _ := te.mustFirst(t, EventOpened, KindKeyframesMissing, "c1")
		within(t, "keyframes missing", start, at, 10*time.Second, 12*time.Second)
	})
}

func TestActivityOnlyWhereARuleAsks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		te := newTestEngine(t, Config{})
		// Night in block-a: activity there is high; c2 in the yard has no
		// rule. The bubble's clock starts at midnight UTC (f16's zone).
		r, err := ParseRule([]byte(`{"name":"night in block A","facility":"f16","zone":"block-a","kinds":["camera_activity"],
			"severity":"high","schedule":{"from":"22:00","to":"06:00"}}`))
		if err != nil {
			t.Fatal(err)
		}
		r.ID = 7
		te.mem.rs = []Rule{r}
		te.start(t)
		motion := phases(phase{60 * time.Second, 500}, phase{80 * time.Second, 1500}, phase{time.Hour, 500})
		te.attachCamera(t, "c1", 50, motion)
		te.attachCamera(t, "c2", 50, motion)
		time.Sleep(59 * time.Second)
		if n := len(te.mem.all(KindCameraActivity, "c1")); n != 0 {
			t.Fatal("activity alert on a still scene")
		}
		moved := time.Now().Add(time.Second)
		time.Sleep(10 * time.Second)
		at, e := te.mustFirst(t, EventOpened, KindCameraActivity, "c1")
		within(t, "activity", moved, at, 0, 4*time.Second)
		if e.Alert.Severity != SeverityHigh || e.Alert.RuleID != 7 {
			t.Errorf("activity alert %+v: want high by rule 7", e.Alert)
		}
		if n := len(te.mem.all(KindCameraActivity, "c2")); n != 0 {
			t.Error("activity alerted without a rule")
		}
		time.Sleep(time.Minute)
		at, _ = te.mustFirst(t, EventResolved, KindCameraActivity, "c1")
		within(t, "activity resolved", moved.Add(20*time.Second), at, 30*time.Second, 36*time.Second)
	})
}
