package ingest

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine behind: sources, sessions,
// the manager and the test cameras all stop.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// logBuffer collects log output of a test, safe for concurrent writers.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// harness runs a Source against a test camera and reads its stream.
type harness struct {
	t      testing.TB
	src    *Source
	stream *Stream
	r      *Reader
	logs   *logBuffer
	cancel context.CancelFunc
	done   chan struct{}
}

// runSource starts a source with cfg (camera id "cam1" when unset) and a
// recorder-like reader on its stream; both stop at the end of the test.
func runSource(t testing.TB, cfg SourceConfig) *harness {
	t.Helper()
	if cfg.Camera == "" {
		cfg.Camera = "cam1"
	}
	logs := &logBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	st := NewStream(StreamConfig{Camera: cfg.Camera, GOPCacheBytes: 4 << 20}, nil, log)
	r, err := st.AddReader(ReaderConfig{Kind: ReaderRecorder, Capacity: 4096, Policy: KeepQueueReportOverload})
	if err != nil {
		t.Fatal(err)
	}
	src, err := NewSource(cfg, st, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: t, src: src, stream: st, r: r, logs: logs, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(h.done)
		if err := src.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	t.Cleanup(h.stop)
	return h
}

func (h *harness) stop() {
	h.cancel()
	<-h.done
	h.stream.Close()
}

// next returns the next item within d.
func (h *harness) next(d time.Duration) (Item, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return h.r.Read(ctx)
}

// event waits up to d for an event (skipping units) and returns it.
func (h *harness) event(d time.Duration) *Event {
	h.t.Helper()
	deadline := time.Now().Add(d)
	for {
		it, err := h.next(time.Until(deadline))
		if err != nil {
			h.t.Fatalf("no event within %v: %v", d, err)
		}
		if it.Event != nil {
			return it.Event
		}
	}
}

// eventReason waits up to d for an event of reason r, skipping others.
func (h *harness) eventReason(r Reason, d time.Duration) *Event {
	h.t.Helper()
	deadline := time.Now().Add(d)
	for {
		e := h.event(time.Until(deadline))
		if e.Reason == r {
			return e
		}
	}
}

// units reads n video units within d, failing on events when strict.
func (h *harness) units(n int, d time.Duration) []*Unit {
	h.t.Helper()
	deadline := time.Now().Add(d)
	var out []*Unit
	for len(out) < n {
		it, err := h.next(time.Until(deadline))
		if err != nil {
			h.t.Fatalf("%d of %d units within %v: %v", len(out), n, d, err)
		}
		if it.Unit != nil && it.Unit.Track.Codec.IsVideo() {
			out = append(out, it.Unit)
		}
	}
	return out
}

// waitHealth polls the source's health until ok holds, for up to d.
func (h *harness) waitHealth(d time.Duration, ok func(Health) bool) Health {
	h.t.Helper()
	deadline := time.Now().Add(d)
	for {
		hl := h.src.Health()
		if ok(hl) {
			return hl
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("health condition not met within %v: %+v", d, hl)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
