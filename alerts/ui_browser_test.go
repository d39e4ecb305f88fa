package alerts

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/kuzet/kuzet/internal/testenv"
	"github.com/kuzet/kuzet/registry"
)

// The alert panel and the health page in a real Chromium: the UI files as
// the viewer embeds them, the alert API and stream of this package, and
// stubs for the few viewer endpoints the live wall needs (who is logged
// in, the facilities, an empty camera list).

// newUIBrowser is a Chromium for the alert panel; a wait that times out
// shows the page's text.
func newUIBrowser(t *testing.T) *testenv.Browser {
	t.Helper()
	b := testenv.NewBrowser(t, chromedp.WindowSize(1400, 900))
	b.Diagnose = `"page: " + document.getElementById("main").innerText.slice(0, 2000)`
	return b
}

// uiServer serves the UI files, the alert API and the viewer stubs; a
// session is the kuzet_session cookie holding the user's API token, set by
// GET /test-login?user=NAME.
func (e *dbEnv) uiServer(t *testing.T) string {
	t.Helper()
	root := filepath.Join(testenv.RepoRoot(t), "viewer", "ui")
	mux := http.NewServeMux()
	e.svc.Register(mux)
	files := http.FileServer(http.Dir(root))
	mux.Handle("GET /ui/", http.StripPrefix("/ui/", files))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, filepath.Join(root, "index.html")) })
	mux.HandleFunc("GET /test-login", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "kuzet_session", Value: e.tokens[r.URL.Query().Get("user")], Path: "/"})
		http.Redirect(w, r, "/"+r.URL.Query().Get("to"), http.StatusFound)
	})
	who := func(r *http.Request) (registry.Principal, bool) {
		p, err := e.svc.api.authn(r)
		return p, err == nil
	}
	mux.HandleFunc("GET /api/v1/session", func(w http.ResponseWriter, r *http.Request) {
		p, ok := who(r)
		if !ok {
			http.Error(w, `{"type":"urn:kuzet:problem:unauthenticated"}`, http.StatusUnauthorized)
			return
		}
		var acts []registry.Action
		for _, a := range registry.Actions() {
			if (registry.Policy{}).Allowed(p, a) {
				acts = append(acts, a)
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"user": p, "csrf_token": "csrf", "actions": acts})
	})
	mux.HandleFunc("GET /api/v1/live/facilities", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"facilities":[{"id":"f16","name":"Facility 16"}]}`))
	})
	mux.HandleFunc("GET /api/v1/live/cameras", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"cameras":[]}`))
	})
	srv := &http.Server{Handler: mux}
	ln := newLocalListener(t)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		_ = srv.Close()
	})
	return "http://" + ln.Addr().String()
}

func TestAlertPanelAndHealthPageInBrowser(t *testing.T) {
	t.Parallel()
	e := newDBEnv(t, Config{Interval: 250 * time.Millisecond, HistoryInterval: 250 * time.Millisecond, ClearFor: time.Nanosecond})
	base := e.uiServer(t)
	b := newUIBrowser(t)

	// The operator of f16 opens the live wall: the panel is there, empty.
	b.Run(t, chromedp.Navigate(base+"/test-login?user=op16&to=%23/live/f16"))
	b.WaitJS(t, 10*time.Second, "the alert panel", `document.querySelector("#alert-panel .alert-none") !== null`)
	testenv.Eval[bool](t, b, `(window.__noReload = true)`)

	// Alerts of f16 appear without reload; f27's never.
	start := time.Now()
	e.health.set("f16-c1", func(c *fakeCam) { c.reconnects += 3 })
	e.health.set("f27-c1", func(c *fakeCam) { c.reconnects += 3 })
	d := b.WaitJS(t, 3*time.Second, "the f16 alert in the panel", `document.querySelector('.alert-item[data-kind="camera_flapping"]') !== null`)
	t.Logf("alert shown in the panel %s after its condition", time.Since(start).Round(time.Millisecond))
	_ = d
	e.waitAlert(t, KindCameraFlapping, "f27-c1", 3*time.Second)
	time.Sleep(500 * time.Millisecond)
	if n := testenv.Eval[int](t, b, `document.querySelectorAll(".alert-item").length`); n != 1 {
		t.Fatalf("%d alerts in the f16 operator's panel, want 1: %s", n, testenv.Eval[string](t, b, `document.getElementById("alert-list").innerText`))
	}
	if !testenv.Eval[bool](t, b, `window.__noReload === true && document.getElementById("alert-count").textContent === "1"`) {
		t.Fatal("page reloaded or count wrong")
	}
	if href := testenv.Eval[string](t, b, `document.querySelector(".alert-timeline").getAttribute("href")`); !strings.HasPrefix(href, "/#/camera/f16-c1?t=") {
		t.Errorf("timeline link %q", href)
	}

	// Acknowledge with a note.
	b.Run(t, chromedp.SendKeys(chromedp.CSS(".alert-item input"), "guard on the way"),
		chromedp.Click(chromedp.CSS(".alert-item .alert-ack")))
	b.WaitJS(t, 5*time.Second, "the acknowledged alert", `document.querySelector('.alert-item[data-state="acknowledged"]') !== null`)
	a := e.waitAlert(t, KindCameraFlapping, "f16-c1", time.Second)
	if a.State != StateAcknowledged || a.AckedBy != "op16" || a.AckNote != "guard on the way" {
		t.Fatalf("alert after the browser's ack: %+v", a)
	}
	if rows := e.auditRows(t, "alert.ack"); len(rows) != 1 || rows[0].Actor != "op16" {
		t.Errorf("audit rows %+v", rows)
	}

	// Facility IT opens the health page of a camera: state, last error and
	// the last hour's charts.
	e.health.set("f16-c2", func(c *fakeCam) { c.state, c.flowing = "offline", false })
	time.Sleep(time.Second)
	b.Run(t, chromedp.Navigate(base+"/test-login?user=it16&to=%23/health%3Fcamera%3Df16-c1"))
	b.WaitJS(t, 10*time.Second, "the health table", `document.querySelectorAll("#health-list tbody tr").length === 2`)
	b.WaitJS(t, 5*time.Second, "the fps chart", `(document.querySelector("#health-fps path.health-line")?.getAttribute("d") || "").includes("L")`)
	if got := testenv.Eval[string](t, b, `document.querySelector('#health-list tr[data-camera="f16-c2"]').innerText`); !strings.Contains(got, "offline") || !strings.Contains(got, "timeout") {
		t.Errorf("f16-c2 row %q: want offline with its last error", got)
	}
	if testenv.Eval[bool](t, b, `document.querySelector('#health-list tr[data-camera="f27-c1"]') !== null`) {
		t.Error("f16 IT sees an f27 camera")
	}
}
