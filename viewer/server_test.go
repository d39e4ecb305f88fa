package viewer

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newOpsServer(t *testing.T, checks ...ReadyCheck) *Server {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector())
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "kuzet_test_things_total", Help: "test"})
	reg.MustRegister(c)
	c.Inc()
	s, err := New(Config{Listen: "127.0.0.1:0"}, nil, reg, checks)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	return rec.Code, rec.Body.String()
}

func TestOpsEndpoints(t *testing.T) {
	down := errors.New("dial tcp 127.0.0.1:5432: connection refused")
	tests := []struct {
		name     string
		checks   []ReadyCheck
		wantCode int
		wantBody []string
	}{
		{"all ready", []ReadyCheck{{"database", func(context.Context) error { return nil }}, {"store", func(context.Context) error { return nil }}},
			200, []string{`"status":"ready"`, `"database":"ok"`, `"store":"ok"`}},
		{"database down", []ReadyCheck{{"database", func(context.Context) error { return down }}, {"store", func(context.Context) error { return nil }}},
			503, []string{`"status":"not ready"`, "connection refused", `"store":"ok"`}},
		{"hung check times out", []ReadyCheck{{"store", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }}},
			503, []string{"deadline exceeded"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newOpsServer(t, tc.checks...)
			s.cfg.ReadyTimeout = 200 * time.Millisecond
			code, body := get(t, s.Handler(), "/readyz")
			if code != tc.wantCode {
				t.Fatalf("readyz = %d, want %d (%s)", code, tc.wantCode, body)
			}
			for _, w := range tc.wantBody {
				if !strings.Contains(body, w) {
					t.Errorf("readyz body %s lacks %s", body, w)
				}
			}
			var st readyStatus
			if err := json.Unmarshal([]byte(body), &st); err != nil {
				t.Fatalf("readyz body is not JSON: %v", err)
			}
		})
	}
	s := newOpsServer(t, ReadyCheck{"database", func(context.Context) error { return down }})
	if code, body := get(t, s.Handler(), "/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("healthz = %d %q while a dependency is down; liveness must not depend on it", code, body)
	}
	code, body := get(t, s.Handler(), "/metrics")
	if code != 200 || !strings.Contains(body, "go_goroutines") || !strings.Contains(body, "kuzet_test_things_total 1") {
		t.Errorf("metrics = %d, missing Go runtime or kuzet_ metric:\n%.500s", code, body)
	}
}

func TestRunShutsDownOnCancel(t *testing.T) {
	s := newOpsServer(t)
	addr, err := s.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	resp, err := http.Get("http://" + addr.String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	http.DefaultClient.CloseIdleConnections()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10s of cancel")
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := New(Config{}, nil, reg, nil); err == nil {
		t.Error("empty listen accepted")
	}
	if _, err := New(Config{Listen: ":0", TLSCert: "c.pem"}, nil, reg, nil); err == nil {
		t.Error("cert without key accepted")
	}
}
