package alerts

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

const hookSecret = "0123456789abcdef-secret"

// receiver is a webhook endpoint that fails its first `fail` requests.
type receiver struct {
	t    *testing.T
	fail int

	mu        sync.Mutex
	requests  int
	delivered []Event // answered 2xx
	bad       int     // requests with a bad signature
	block     chan struct{}
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if rc.block != nil {
		select {
		case <-rc.block:
		case <-r.Context().Done():
			return
		}
	}
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.requests++
	if err := Verify([]byte(hookSecret), r.Header.Get(HeaderTimestamp), r.Header.Get(HeaderSignature), body, time.Now(), 5*time.Minute); err != nil {
		rc.bad++
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	if rc.requests <= rc.fail {
		http.Error(w, "try later", http.StatusServiceUnavailable)
		return
	}
	var e Event
	if err := json.Unmarshal(body, &e); err != nil || r.Header.Get(HeaderEvent) != strconv.FormatInt(e.Seq, 10) {
		http.Error(w, "bad event", http.StatusBadRequest)
		return
	}
	rc.delivered = append(rc.delivered, e)
	w.WriteHeader(http.StatusNoContent)
}

func (rc *receiver) snapshot() (int, []Event, int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.requests, append([]Event(nil), rc.delivered...), rc.bad
}

func hookConfig(url string) Config {
	return Config{Webhooks: []WebhookConfig{{Name: "control-room", URL: url, Secret: hookSecret}},
		WebhookRetryMin: 20 * time.Millisecond, WebhookRetryMax: 200 * time.Millisecond}
}

// TestWebhookFailsTwiceThenSucceeds: a receiver that fails twice gets each
// event exactly once, in order, signed.
func TestWebhookFailsTwiceThenSucceeds(t *testing.T) {
	t.Parallel()
	rc := &receiver{t: t, fail: 2}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	cfg := hookConfig(srv.URL)
	if err := cfg.setDefaults(); err != nil {
		t.Fatal(err)
	}
	m, _ := NewMetrics(nil)
	ws := newWebhooks(cfg, srv.Client(), m, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { ws.run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	for i := 1; i <= 3; i++ {
		ws.enqueue(Event{Seq: int64(i), Type: EventOpened, At: time.Now(), Alert: Alert{ID: int64(i), Kind: KindCameraOffline, Severity: SeverityHigh, Facility: "f16"}})
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, got, _ := rc.snapshot()
		if len(got) >= 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // room for any duplicate
	reqs, got, bad := rc.snapshot()
	if len(got) != 3 || bad != 0 || reqs != 5 {
		t.Fatalf("%d requests, %d bad, delivered %+v; want 5 requests delivering 3 events", reqs, bad, got)
	}
	for i, e := range got {
		if e.Seq != int64(i+1) {
			t.Errorf("delivery %d is event %d", i, e.Seq)
		}
	}
	if v := value(m.deliveries.WithLabelValues("control-room", "retry")); v != 2 {
		t.Errorf("%v retries counted, want 2", v)
	}
	if v := value(m.deliveries.WithLabelValues("control-room", "ok")); v != 3 {
		t.Errorf("%v deliveries counted, want 3", v)
	}
}

// TestWebhookQueueBounded: a receiver that hangs fills its queue; further
// events are dropped and counted, never blocking the caller.
func TestWebhookQueueBounded(t *testing.T) {
	t.Parallel()
	rc := &receiver{t: t, block: make(chan struct{})}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	cfg := hookConfig(srv.URL)
	cfg.WebhookQueue = 4
	_ = cfg.setDefaults()
	m, _ := NewMetrics(nil)
	ws := newWebhooks(cfg, srv.Client(), m, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { ws.run(ctx); close(done) }()
	start := time.Now()
	for i := 1; i <= 20; i++ {
		ws.enqueue(Event{Seq: int64(i), Type: EventOpened, Alert: Alert{Severity: SeverityHigh}})
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("enqueue blocked for %s", d)
	}
	time.Sleep(100 * time.Millisecond)
	dropped := value(m.dropped.WithLabelValues("control-room"))
	if dropped < 15 || dropped > 16 {
		t.Errorf("%v events dropped, want 15 or 16 (queue 4, one in flight)", dropped)
	}
	close(rc.block)
	cancel()
	<-done
}

func TestWebhookFilter(t *testing.T) {
	w := WebhookConfig{Facilities: []string{"f16"}, MinSeverity: SeverityHigh, Events: []EventType{EventOpened, EventEscalated}}
	cases := []struct {
		e    Event
		want bool
	}{
		{Event{Type: EventOpened, Alert: Alert{Facility: "f16", Severity: SeverityHigh}}, true},
		{Event{Type: EventOpened, Alert: Alert{Facility: "f27", Severity: SeverityCritical}}, false},
		{Event{Type: EventOpened, Alert: Alert{Facility: "f16", Severity: SeverityMedium}}, false},
		{Event{Type: EventResolved, Alert: Alert{Facility: "f16", Severity: SeverityHigh}}, false},
		{Event{Type: EventOpened, Alert: Alert{Facility: "", Severity: SeverityCritical}}, false},
	}
	for i, tc := range cases {
		if got := w.wants(tc.e); got != tc.want {
			t.Errorf("case %d: wants %v, want %v", i, got, tc.want)
		}
	}
}

func TestVerify(t *testing.T) {
	now := time.Unix(1700000000, 0)
	body := []byte(`{"seq":1}`)
	sig := Sign([]byte(hookSecret), now, body)
	ts := strconv.FormatInt(now.Unix(), 10)
	if err := Verify([]byte(hookSecret), ts, sig, body, now.Add(time.Minute), 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"other body":   Verify([]byte(hookSecret), ts, sig, []byte(`{"seq":2}`), now, 5*time.Minute),
		"other secret": Verify([]byte("another secret!!"), ts, sig, body, now, 5*time.Minute),
		"replayed":     Verify([]byte(hookSecret), ts, sig, body, now.Add(time.Hour), 5*time.Minute),
		"bad time":     Verify([]byte(hookSecret), "yesterday", sig, body, now, 5*time.Minute),
	} {
		if err == nil {
			t.Errorf("%s: verified", name)
		}
	}
}

// TestServiceWebhookExactlyOnce: end to end with PostgreSQL, a receiver
// that fails twice then succeeds gets exactly one delivery of each alert's
// events.
func TestServiceWebhookExactlyOnce(t *testing.T) {
	t.Parallel()
	rc := &receiver{t: t, fail: 2}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	cfg := hookConfig(srv.URL)
	cfg.Webhooks[0].Events = []EventType{EventOpened}
	e := newDBEnv(t, cfg)
	time.Sleep(1500 * time.Millisecond) // the engine has seen the cameras
	for _, cam := range []string{"f16-c1", "f16-c2", "f27-c1"} {
		e.health.set(cam, func(c *fakeCam) { c.reconnects += 3 })
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, got, _ := rc.snapshot()
		if len(got) >= 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	reqs, got, bad := rc.snapshot()
	per := map[int64]int{}
	for _, ev := range got {
		per[ev.Alert.ID]++
	}
	t.Logf("%d requests (%d refused on purpose), %d delivered: %v", reqs, rc.fail, len(got), per)
	if len(per) != 3 || bad != 0 {
		t.Fatalf("deliveries per alert %v, %d badly signed; want 3 alerts", per, bad)
	}
	for id, n := range per {
		if n != 1 {
			t.Errorf("alert %d delivered %d times", id, n)
		}
	}
}

// value reads a counter or gauge.
func value(c prometheus.Metric) float64 {
	var d dto.Metric
	if err := c.Write(&d); err != nil {
		panic(err)
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}
