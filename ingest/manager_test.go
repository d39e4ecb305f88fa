package ingest

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// watcher reads a stream in the background and keeps what it saw.
type watcher struct {
	mu     sync.Mutex
	events []*Event
	units  int
	closed bool
	done   chan struct{}
}

func watch(t *testing.T, s *Stream) *watcher {
	t.Helper()
	r, err := s.AddReader(ReaderConfig{Kind: ReaderDetector, Capacity: 1024})
	if err != nil {
		t.Fatal(err)
	}
	w := &watcher{done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			it, err := r.Read(context.Background())
			w.mu.Lock()
			switch {
			case err != nil:
				w.closed = true
				w.mu.Unlock()
				return
			case it.Event != nil:
				w.events = append(w.events, it.Event)
			default:
				w.units++
			}
			w.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		r.Close()
		<-w.done
	})
	return w
}

// waitFor polls cond on the watcher's state for up to d.
func (w *watcher) waitFor(t *testing.T, d time.Duration, what string, cond func(events []*Event, units int, closed bool) bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		w.mu.Lock()
		ok := cond(w.events, w.units, w.closed)
		evs := append([]*Event(nil), w.events...)
		w.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			var rs []string
			for _, e := range evs {
				rs = append(rs, string(e.Reason)+"/"+e.Detail)
			}
			t.Fatalf("%s: not within %v; events %v", what, d, rs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func lastEvent(events []*Event) *Event {
	if len(events) == 0 {
		return nil
	}
	return events[len(events)-1]
}

func TestManager(t *testing.T) {
	t.Parallel()
	camA := startCam(t, camOptions{})
	camB := startCam(t, camOptions{})
	camC := startCam(t, camOptions{video: "H265"})
	reg := prometheus.NewRegistry()
	metrics, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	announced := map[string]*Stream{}
	m, err := NewManager(ManagerConfig{BackoffMin: 100 * time.Millisecond, OnStream: func(cam CameraConfig, s *Stream) {
		if cam.ID != s.Camera() || cam.Facility == "" || cam.Password != "" {
			t.Errorf("OnStream(%+v, %s)", cam, s.Camera())
		}
		mu.Lock()
		announced[s.Camera()] = s
		mu.Unlock()
	}}, metrics, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cams := []CameraConfig{
		{ID: "a", Facility: "f16", URL: camA.URL(), Enabled: true, Username: "u", Password: "p"},
		{ID: "b", Facility: "f16", URL: camB.URL(), Enabled: true},
		{ID: "d", Facility: "f27", URL: camB.URL(), Enabled: false},
	}
	// Before Run: streams exist, nothing is pulled, the disabled camera
	// says so.
	if err := m.Apply(ctx, cams); err != nil {
		t.Fatal(err)
	}
	sa, ok := m.Stream("a")
	if !ok || announced["a"] != sa || len(announced) != 3 {
		t.Fatalf("streams before Run: %v %v", ok, announced)
	}
	wa, wb := watch(t, sa), watch(t, announced["b"])
	wd := watch(t, announced["d"])
	wd.waitFor(t, time.Second, "disabled event", func(e []*Event, _ int, _ bool) bool {
		return len(e) == 1 && e[0].Reason == ReasonDisabled
	})

	runCtx, cancel := context.WithCancel(ctx)
	runDone := make(chan error)
	go func() { runDone <- m.Run(runCtx) }()
	for _, w := range []*watcher{wa, wb} {
		w.waitFor(t, 10*time.Second, "media", func(_ []*Event, units int, _ bool) bool { return units > 10 })
	}
	hs := m.Health()
	if len(hs) != 3 || hs[0].Camera != "a" || hs[0].State != StateOnline || hs[1].State != StateOnline || hs[2].State != StateDisabled {
		t.Fatalf("health %+v", hs)
	}
	if v := gathered(t, reg, "kuzet_ingest_camera_state", map[string]string{"camera": "a", "facility": "f16", "state": "online"}); v != 1 {
		t.Fatalf("state metric of a = %v", v)
	}
	if v := gathered(t, reg, "kuzet_ingest_camera_state", map[string]string{"camera": "d", "state": "disabled"}); v != 1 {
		t.Fatalf("state metric of d = %v", v)
	}
	if v := gathered(t, reg, "kuzet_ingest_camera_frames_per_second", map[string]string{"camera": "b"}); v < 0 {
		t.Fatal("no fps metric for b")
	}

	// Change b's URL: only b restarts.
	sessA, sessB := camA.Sessions(), camB.Sessions()
	cams[1].URL = camC.URL()
	if err := m.Apply(ctx, cams); err != nil {
		t.Fatal(err)
	}
	wb.waitFor(t, 10*time.Second, "b on H.265", func(e []*Event, _ int, _ bool) bool {
		l := lastEvent(e)
		return l != nil && l.Tracks != nil && l.Tracks.Video.Codec == CodecH265
	})
	if camA.Sessions() != sessA || camB.Sessions() != sessB {
		t.Fatalf("sessions a %d→%d, b %d→%d: a camera restarted that did not change", sessA, camA.Sessions(), sessB, camB.Sessions())
	}
	if s, _ := m.Stream("b"); s != announced["b"] {
		t.Fatal("a changed camera got a new stream")
	}
	wb.mu.Lock()
	var offline bool
	for _, e := range wb.events {
		offline = offline || e.Reason == ReasonCameraOffline && e.Detail == DetailStopped
	}
	wb.mu.Unlock()
	if !offline {
		t.Fatal("no offline event between b's sessions")
	}

	// Disable a, then enable it again.
	cams[0].Enabled = false
	if err := m.Set(ctx, cams[0]); err != nil {
		t.Fatal(err)
	}
	wa.waitFor(t, 5*time.Second, "a disabled", func(e []*Event, _ int, _ bool) bool {
		l := lastEvent(e)
		return l != nil && l.Reason == ReasonDisabled
	})
	if h, _ := m.CameraHealth("a"); h.State != StateDisabled {
		t.Fatalf("a %s", h.State)
	}
	cams[0].Enabled = true
	if err := m.Set(ctx, cams[0]); err != nil {
		t.Fatal(err)
	}
	wa.waitFor(t, 10*time.Second, "a back", func(e []*Event, _ int, _ bool) bool {
		l := lastEvent(e)
		return l != nil && l.Tracks != nil
	})

	// Remove b (Apply without it) and add a bad camera: the bad one is
	// reported, the rest applied.
	err = m.Apply(ctx, []CameraConfig{cams[0], cams[2], {ID: "bad", URL: "http://x/y", Enabled: true}})
	if err == nil || !strings.Contains(err.Error(), "bad") {
		t.Fatalf("Apply with a bad camera: %v", err)
	}
	wb.waitFor(t, 5*time.Second, "b removed", func(e []*Event, _ int, closed bool) bool {
		l := lastEvent(e)
		return closed && l != nil && l.Reason == ReasonDisabled && l.Detail == "removed"
	})
	if _, ok := m.Stream("b"); ok {
		t.Fatal("removed camera still has a stream")
	}
	if v := gathered(t, reg, "kuzet_ingest_camera_state", map[string]string{"camera": "b"}); v != -1 {
		t.Fatal("removed camera still has metrics")
	}
	if ok, err := m.Remove(ctx, "nope"); ok || err != nil {
		t.Fatalf("Remove of unknown camera: %v %v", ok, err)
	}

	cancel()
	if err := <-runDone; err != nil {
		t.Fatal(err)
	}
	wa.waitFor(t, time.Second, "a closed", func(_ []*Event, _ int, closed bool) bool { return closed })
	if err := m.Apply(ctx, cams); !errors.Is(err, ErrManagerStopped) {
		t.Fatalf("Apply after Run: %v", err)
	}
	if v := gathered(t, reg, "kuzet_ingest_camera_state", map[string]string{"camera": "a"}); v != -1 {
		t.Fatal("metrics after stop")
	}
}
