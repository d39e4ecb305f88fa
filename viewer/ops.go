package viewer

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
)

// healthz says the process is alive and serving HTTP. It checks nothing else:
// a liveness probe must not fail because a dependency is down.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte("ok\n"))
}

// readyStatus is the /readyz body.
type readyStatus struct {
	Status string            `json:"status"` // "ready" or "not ready"
	Checks map[string]string `json:"checks"` // name → "ok" or the reason
}

// readyz runs every readiness check concurrently, each bounded by
// ReadyTimeout, and answers 200 when all pass, else 503 with the reasons.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.ReadyTimeout)
	defer cancel()
	st := readyStatus{Status: "ready", Checks: make(map[string]string, len(s.checks))}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, c := range s.checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := "ok"
			if err := c.Check(ctx); err != nil {
				res = err.Error()
			}
			mu.Lock()
			st.Checks[c.Name] = res
			mu.Unlock()
		}()
	}
	wg.Wait()
	code := http.StatusOK
	for _, res := range st.Checks {
		if res != "ok" {
			st.Status, code = "not ready", http.StatusServiceUnavailable
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(st)
}
