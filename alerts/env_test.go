package alerts

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kuzet/kuzet/internal/migrate"
	"github.com/kuzet/kuzet/internal/testenv"
	"github.com/kuzet/kuzet/registry"
)

// dbEnv is the alert service over a real PostgreSQL and registry, served
// over HTTP, with fake cameras and recorder.
type dbEnv struct {
	pool    *pgxpool.Pool
	reg     *registry.Registry
	svc     *Service
	srv     *httptest.Server
	health  *fakeHealth
	storage *fakeStorage
	metrics *Metrics
	gather  *prometheus.Registry
	tokens  map[string]string
	users   map[string]int64
}

type noHolds struct{}

func (noHolds) PlaceHold(context.Context, string, time.Time, time.Time, string, int64) error {
	return nil
}
func (noHolds) ReleaseHold(context.Context, string, int64) error { return nil }

// bearer authenticates API tokens through the registry, as the API does;
// for the browser test a kuzet_session cookie may carry the token.
func bearer(reg *registry.Registry) Authenticator {
	return func(r *http.Request) (registry.Principal, error) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			c, err := r.Cookie("kuzet_session")
			if err != nil || c.Value == "" {
				return registry.Principal{}, registry.ErrBadCredentials
			}
			tok = c.Value
		}
		return reg.TokenPrincipal(r.Context(), tok)
	}
}

func newLocalListener(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// newDBEnv builds facilities f16 and f27 (zones block-a and yard, cameras
// f16-c1, f16-c2, f27-c1), users, and the service with cfg; the cameras
// stream (fake health) and the recorder is healthy.
func newDBEnv(t *testing.T, cfg Config) *dbEnv {
	t.Helper()
	pool := testenv.Postgres(t)
	ctx := context.Background()
	if _, err := migrate.Apply(ctx, pool, registry.Migrations(), Migrations()); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	reg, err := registry.New(registry.Config{}, pool, noHolds{}, log)
	if err != nil {
		t.Fatal(err)
	}
	act := registry.System("test")
	str := func(s string) *string { return &s }
	for _, f := range []string{"f16", "f27"} {
		if _, err := reg.CreateFacility(ctx, act, registry.FacilityInput{ID: f, Name: str("Facility " + f), Timezone: str("UTC")}); err != nil {
			t.Fatal(err)
		}
		for _, z := range []string{"block-a", "yard"} {
			if _, err := reg.CreateZone(ctx, act, f, registry.ZoneInput{ID: z, Name: str(z), Kind: str("other")}); err != nil {
				t.Fatal(err)
			}
		}
	}
	e := &dbEnv{pool: pool, reg: reg, health: newFakeHealth(), tokens: map[string]string{}, users: map[string]int64{},
		storage: &fakeStorage{h: StorageHealth{StoreUp: true, DatabaseUp: true, SpoolQuota: 1000}}}
	for _, c := range []struct{ id, fac, zone string }{{"f16-c1", "f16", "block-a"}, {"f16-c2", "f16", "yard"}, {"f27-c1", "f27", "block-a"}} {
		if _, err := reg.CreateCamera(ctx, act, registry.CameraInput{ID: c.id, Facility: str(c.fac), Zone: str(c.zone),
			URL: str("rtsp://127.0.0.1:8554/" + c.id)}); err != nil {
			t.Fatal(err)
		}
		e.health.set(c.id, func(fc *fakeCam) { fc.facility = c.fac })
	}
	for _, u := range []struct {
		name  string
		roles []registry.Role
		facs  []string
		all   bool
	}{
		{"op16", []registry.Role{registry.RoleOperator}, []string{"f16"}, false},
		{"op27", []registry.Role{registry.RoleOperator}, []string{"f27"}, false},
		{"it16", []registry.Role{registry.RoleIT}, []string{"f16"}, false},
		{"itall", []registry.Role{registry.RoleIT}, nil, true},
		{"aud", []registry.Role{registry.RoleAuditor}, nil, true},
	} {
		roles, facs, all := u.roles, u.facs, u.all
		usr, err := reg.CreateUser(ctx, act, registry.UserInput{Username: u.name, Roles: &roles, Facilities: &facs, AllFacilities: &all})
		if err != nil {
			t.Fatal(err)
		}
		tok, _, err := reg.CreateToken(ctx, act, usr.ID, registry.TokenInput{Name: "test"})
		if err != nil {
			t.Fatal(err)
		}
		e.tokens[u.name], e.users[u.name] = tok, usr.ID
	}
	e.gather = prometheus.NewRegistry()
	if e.metrics, err = NewMetrics(e.gather); err != nil {
		t.Fatal(err)
	}
	e.svc, err = New(cfg, Deps{Pool: pool, Health: e.health, Storage: e.storage, Directory: reg, Incidents: reg,
		Audit: reg.Audit(), Authenticate: bearer(reg), Metrics: e.metrics, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	e.svc.Register(mux)
	e.srv = httptest.NewServer(mux)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := e.svc.Run(rctx); err != nil {
			t.Error(err)
		}
	}()
	t.Cleanup(func() {
		e.srv.CloseClientConnections()
		cancel()
		<-done
		e.srv.Close()
	})
	return e
}

// do sends a request as user and decodes a JSON answer into out (if not
// nil); it returns the status.
func (e *dbEnv) do(t *testing.T, user, method, path string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, e.srv.URL+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if user != "" {
		req.Header.Set("Authorization", "Bearer "+e.tokens[user])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
	if resp.StatusCode >= 400 {
		t.Logf("%s %s as %s: %d %s", method, path, user, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return resp.StatusCode
}

// waitAlert waits for the active alert of kind on subject.
func (e *dbEnv) waitAlert(t *testing.T, kind Kind, subject string, d time.Duration) Alert {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		as, err := e.svc.store.list(context.Background(), registry.Scope{All: true}, Filter{State: "active", Kind: kind})
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range as {
			if a.Subject == subject {
				return a
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no active %s alert on %s within %s", kind, subject, d)
	return Alert{}
}

// sseEvent is one received server-sent event.
type sseEvent struct {
	id    string
	event Event
	at    time.Time
}

// sseClient reads an alert event stream.
type sseClient struct {
	resp   *http.Response
	ch     chan sseEvent
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	err    error
}

func (e *dbEnv) subscribe(t *testing.T, user, lastID string) *sseClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.srv.URL+"/api/v1/alerts/events", nil)
	req.Header.Set("Authorization", "Bearer "+e.tokens[user])
	req.Header.Set("Accept", "text/event-stream")
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		cancel()
		t.Fatalf("event stream as %s: %s %s", user, resp.Status, resp.Header.Get("Content-Type"))
	}
	c := &sseClient{resp: resp, ch: make(chan sseEvent, 1024), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		defer close(c.ch)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		var id, data string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if data != "" {
					var ev Event
					if err := json.Unmarshal([]byte(data), &ev); err != nil {
						c.mu.Lock()
						c.err = err
						c.mu.Unlock()
						return
					}
					c.ch <- sseEvent{id: id, event: ev, at: time.Now()}
				}
				id, data = "", ""
			case strings.HasPrefix(line, "id: "):
				id = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "data: "):
				data = strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	t.Cleanup(c.close)
	return c
}

func (c *sseClient) close() {
	c.cancel()
	<-c.done
	c.resp.Body.Close()
}

// next returns the next event within d.
func (c *sseClient) next(t *testing.T, d time.Duration) (sseEvent, bool) {
	t.Helper()
	select {
	case ev, ok := <-c.ch:
		if !ok {
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.err != nil {
				t.Fatalf("event stream: %v", c.err)
			}
		}
		return ev, ok
	case <-time.After(d):
		return sseEvent{}, false
	}
}

// until reads events until one matches or d passes.
func (c *sseClient) until(t *testing.T, d time.Duration, match func(Event) bool) (sseEvent, []sseEvent, bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	var seen []sseEvent
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return sseEvent{}, seen, false
		}
		ev, ok := c.next(t, left)
		if !ok {
			return sseEvent{}, seen, false
		}
		seen = append(seen, ev)
		if match(ev.event) {
			return ev, seen, true
		}
	}
}

// auditRows returns the audit rows of an action.
func (e *dbEnv) auditRows(t *testing.T, action string) []registry.AuditRow {
	t.Helper()
	rows, err := e.reg.Audit().List(context.Background(), registry.AuditFilter{Action: action, AnyFacility: true, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	return rows
}
