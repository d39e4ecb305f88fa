package viewer

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kuzet/kuzet/ingest"
	"github.com/kuzet/kuzet/internal/camsim"
	"github.com/kuzet/kuzet/internal/migrate"
	"github.com/kuzet/kuzet/internal/testenv"
	"github.com/kuzet/kuzet/registry"
)

// browserStack is the whole live path as `kuzet serve` wires it: simulated
// cameras, the ingest manager, a migrated registry with users, the API
// (login), live viewing and the UI behind one HTTP server.
type browserStack struct {
	base string
	reg  *registry.Registry
	sim  *camsim.Server
	mgr  *ingest.Manager
	live *Live
}

const browserPassword = "correct horse battery staple"

type noFootage struct{}

func (noFootage) Recordings(context.Context, string, time.Time, time.Time) ([]FootageRecording, error) {
	return nil, nil
}
func (noFootage) Gaps(context.Context, string, time.Time, time.Time) ([]FootageGap, error) {
	return nil, nil
}

type noHolds struct{}

func (noHolds) PlaceHold(context.Context, string, time.Time, time.Time, string, int64) error {
	return nil
}
func (noHolds) ReleaseHold(context.Context, string, int64) error { return nil }

func newBrowserStack(t *testing.T, live LiveConfig) *browserStack {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	log := testLogger(t)

	pool, err := pgxpool.New(ctx, testenv.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := migrate.Apply(ctx, pool, registry.Migrations()); err != nil {
		t.Fatal(err)
	}
	reg, err := registry.New(registry.Config{Password: registry.PasswordParams{Time: 1, MemoryKiB: 64, Threads: 1}}, pool, noHolds{}, log)
	if err != nil {
		t.Fatal(err)
	}

	root := testenv.RepoRoot(t)
	sim, err := camsim.New(camsim.Config{Listen: "127.0.0.1:0", Cameras: 6, Clip: filepath.Join(root, camsim.DefaultClip),
		CameraClips: map[int]string{6: filepath.Join(root, "testdata/clips/h265_640x360.ts")}}, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}

	sys := registry.System("test")
	str := func(s string) *string { return &s }
	for _, f := range []string{"f16", "f27"} {
		if _, err := reg.CreateFacility(ctx, sys, registry.FacilityInput{ID: f, Name: str("Facility " + f[1:]), Timezone: str("UTC")}); err != nil {
			t.Fatal(err)
		}
	}
	for _, z := range []struct{ f, id, name string }{{"f16", "block-a", "Block A"}, {"f16", "yard", "Yard"}, {"f16", "workshop", "Yard workshop"}, {"f27", "yard", "Yard"}} {
		if _, err := reg.CreateZone(ctx, sys, z.f, registry.ZoneInput{ID: z.id, Name: str(z.name), Kind: str("corridor")}); err != nil {
			t.Fatal(err)
		}
	}
	var cams []ingest.CameraConfig
	for i, c := range []struct{ id, f, zone, name string }{
		{"f16-c1", "f16", "block-a", "Block A west"}, {"f16-c2", "f16", "block-a", "Block A east"},
		{"f16-c3", "f16", "yard", "Yard gate"}, {"f16-c4", "f16", "yard", "Yard fence"}, {"f27-c1", "f27", "yard", "Yard"},
		{"f16-c6", "f16", "workshop", "Workshop (H.265)"},
	} {
		if _, err := reg.CreateCamera(ctx, sys, registry.CameraInput{ID: c.id, Facility: str(c.f), Zone: str(c.zone), Name: str(c.name), URL: str(sim.URL(i + 1))}); err != nil {
			t.Fatal(err)
		}
		cams = append(cams, ingest.CameraConfig{ID: c.id, Facility: c.f, URL: sim.URL(i + 1), Enabled: true})
	}
	for _, u := range []struct {
		name string
		f    string
	}{{"op16", "f16"}, {"op27", "f27"}} {
		roles := []registry.Role{registry.RoleOperator}
		if _, err := reg.CreateUser(ctx, sys, registry.UserInput{Username: u.name, Password: str(browserPassword), Roles: &roles, Facilities: &[]string{u.f}}); err != nil {
			t.Fatal(err)
		}
	}

	mgr, err := ingest.NewManager(ingest.ManagerConfig{ReadTimeout: 4 * time.Second, BackoffMin: 300 * time.Millisecond, BackoffMax: time.Second}, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := mgr.Apply(ctx, cams); err != nil {
		t.Fatal(err)
	}
	api, err := NewAPI(APIConfig{}, APIDeps{Registry: reg, Footage: noFootage{}, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	dir, err := NewLiveDirectory(reg, mgr)
	if err != nil {
		t.Fatal(err)
	}
	live.ICEUDPListen, live.ICETCPListen, live.IncludeLoopback = "127.0.0.1:0", "127.0.0.1:0", true
	lv, err := NewLive(live, LiveDeps{Streams: mgr, Cameras: dir, Auth: api, Audit: reg.Audit(), Log: log})
	if err != nil {
		t.Fatal(err)
	}
	ui, err := NewUI()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{Listen: "127.0.0.1:0", ShutdownTimeout: 2 * time.Second}, log, prometheus.NewRegistry(), nil, api, lv, ui)
	if err != nil {
		t.Fatal(err)
	}
	addr, err := srv.Listen()
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, run := range []func(context.Context) error{mgr.Run, lv.Run, srv.Run} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = run(ctx)
		}()
	}
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		sim.Close()
		pool.Close()
	})
	return &browserStack{base: "http://" + addr.String(), reg: reg, sim: sim, mgr: mgr, live: lv}
}

// newBrowser is a Chromium for the live wall; a wait that times out shows
// the tiles.
func newBrowser(t *testing.T) *testenv.Browser {
	t.Helper()
	b := testenv.NewBrowser(t, chromedp.WindowSize(1600, 1000))
	b.Diagnose = `"tiles: " + JSON.stringify([...document.querySelectorAll(".tile")].map(t => ({...t.dataset, text: t.innerText})))`
	return b
}

// login signs user in on the page at base/hash.
func login(t *testing.T, b *testenv.Browser, base, hash, user string) {
	t.Helper()
	b.Run(t,
		chromedp.Navigate(base+"/"+hash),
		chromedp.WaitVisible(chromedp.CSS("#username")),
		chromedp.SendKeys(chromedp.CSS("#username"), user),
		chromedp.SendKeys(chromedp.CSS("#password"), browserPassword),
		chromedp.Click(chromedp.CSS("#login-submit")),
		chromedp.WaitVisible(chromedp.CSS("#top")),
	)
}

type tileInfo struct {
	Camera       string  `json:"camera"`
	State        string  `json:"state"`
	Transport    string  `json:"transport"`
	FirstFrameAt float64 `json:"firstFrameAt"`
	Frames       float64 `json:"frames"`
}

const tilesJS = `[...document.querySelectorAll(".tile:not([hidden])")].map(t => ({
	camera: t.dataset.camera || "", state: t.dataset.state, transport: t.dataset.transport || "",
	firstFrameAt: Number(t.dataset.firstFrameAt || -1),
	frames: t.querySelector("video").getVideoPlaybackQuality().totalVideoFrames}))`

func TestLiveInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	st := newBrowserStack(t, LiveConfig{})
	ctx := context.Background()
	waitFor(t, 15*time.Second, "cameras online", func() bool {
		for _, id := range []string{"f16-c1", "f16-c2", "f16-c3", "f16-c4", "f16-c6"} {
			if h, ok := st.mgr.CameraHealth(id); !ok || h.State != ingest.StateOnline {
				return false
			}
		}
		return true
	})

	t.Run("operator wall of four cameras", func(t *testing.T) {
		b := newBrowser(t)
		login(t, b, st.base, "#/health", "op16")
		b.Run(t, chromedp.WaitVisible(chromedp.CSS(`main h1`)), chromedp.WaitVisible(chromedp.CSS(`a[data-nav="live"]`)))
		testenv.Eval[bool](t, b, `window.kuzetMarker = "no reload"; document.addEventListener("click", e => { window.clickAt = e.timeStamp }, true); true`)
		b.Run(t, chromedp.Click(chromedp.CSS(`a[data-nav="live"]`)))
		waited := b.WaitJS(t, 20*time.Second, "4 live tiles",
			`[...document.querySelectorAll(".tile:not([hidden])")].filter(t => t.dataset.state === "live").length === 4`)
		clickAt := testenv.Eval[float64](t, b, `window.clickAt`)
		tiles := testenv.Eval[[]tileInfo](t, b, tilesJS)
		for _, ti := range tiles {
			t.Logf("tile %s: %s over %s, click to first decoded frame %.0f ms", ti.Camera, ti.State, ti.Transport, ti.FirstFrameAt-clickAt)
			if ti.Transport != "webrtc" {
				t.Errorf("tile %s plays over %q, want webrtc", ti.Camera, ti.Transport)
			}
		}
		t.Logf("all four tiles live %v after the click", waited.Round(time.Millisecond))
		t.Logf("player states: %s", testenv.Eval[string](t, b, `JSON.stringify(window.kuzetLiveLog.map(e => [e[0] - window.clickAt, ...e.slice(1)]))`))
		t.Logf("requests after the click: %s", testenv.Eval[string](t, b, `JSON.stringify(performance.getEntriesByType("resource").filter(e => e.startTime >= window.clickAt).map(e => [e.name.replace(location.origin, ""), Math.round(e.startTime - window.clickAt), Math.round(e.duration)]))`))
		before := tiles
		time.Sleep(5 * time.Second)
		tiles = testenv.Eval[[]tileInfo](t, b, tilesJS)
		for i, ti := range tiles {
			// 25 fps for 5 s is 125 frames; a decoder that only
			// limps along fails this.
			if d := ti.Frames - before[i].Frames; d < 75 {
				t.Errorf("tile %s decoded %.0f frames in 5 s", ti.Camera, d)
			} else {
				t.Logf("tile %s decoded %.0f frames in 5 s", ti.Camera, d)
			}
		}
		b.Screenshot(t, "live-wall-4.png")

		// The camera dies mid-view: the tile says offline (and why)
		// within 12 s, and shows the picture again when it is back,
		// without a reload.
		killed := time.Now()
		st.sim.Camera(2).Offline(6 * time.Second)
		sel := `document.querySelector('.tile[data-camera="f16-c2"]')`
		d := b.WaitJS(t, 12*time.Second, "tile of the killed camera offline", sel+`.dataset.state === "offline"`)
		why := testenv.Eval[string](t, b, sel+`.querySelector(".why").textContent`)
		t.Logf("tile offline %v after the camera died: %q", d.Round(time.Millisecond), why)
		if why == "" {
			t.Error("offline tile does not say why")
		}
		b.Screenshot(t, "live-wall-camera-offline.png")
		others := testenv.Eval[[]tileInfo](t, b, tilesJS)
		for _, ti := range others {
			if ti.Camera != "f16-c2" && ti.State != "live" {
				t.Errorf("tile %s is %s while another camera is down", ti.Camera, ti.State)
			}
		}
		d = b.WaitJS(t, 30*time.Second, "tile live again", sel+`.dataset.state === "live"`)
		t.Logf("picture back %v after the camera died (offline for 6 s)", time.Since(killed).Round(time.Millisecond))
		_ = d
		frames1 := testenv.Eval[float64](t, b, sel+`.querySelector("video").getVideoPlaybackQuality().totalVideoFrames`)
		time.Sleep(time.Second)
		frames2 := testenv.Eval[float64](t, b, sel+`.querySelector("video").getVideoPlaybackQuality().totalVideoFrames`)
		marker := testenv.Eval[string](t, b, `window.kuzetMarker || ""`)
		if frames2 <= frames1 || marker != "no reload" {
			t.Errorf("after the restart: frames %v → %v, marker %q", frames1, frames2, marker)
		}

		rows, err := st.reg.Audit().List(ctx, registry.AuditFilter{Actor: "op16", Action: registry.AuditLiveStart, AnyFacility: true})
		if err != nil {
			t.Fatal(err)
		}
		started := map[string]bool{}
		for _, r := range rows {
			if r.Outcome == registry.OutcomeStarted {
				started[strings.Join(r.Objects, ",")] = true
			}
		}
		if len(started) != 4 {
			t.Errorf("live.start rows for %v, want the 4 cameras", started)
		}
	})

	t.Run("camera page from the keyboard", func(t *testing.T) {
		b := newBrowser(t)
		login(t, b, st.base, "#/live/f16?layout=4", "op16")
		b.WaitJS(t, 15*time.Second, "a live tile", `!!document.querySelector('.tile[data-camera="f16-c3"][data-state="live"]')`)
		b.Run(t, chromedp.SendKeys(chromedp.CSS(`.tile[data-camera="f16-c3"]`), kb.Enter))
		b.WaitJS(t, 15*time.Second, "the camera page, live", `location.hash === "#/camera/f16-c3" && !!document.querySelector('.camera-page .tile[data-state="live"]')`)
		if h1 := testenv.Eval[string](t, b, `document.querySelector("h1").textContent`); h1 != "Yard gate" {
			t.Errorf("camera page title %q", h1)
		}
		b.Screenshot(t, "camera-page.png")
	})

	t.Run("fallback stream over WebSocket", func(t *testing.T) {
		b := newBrowser(t)
		login(t, b, st.base, "#/live/f16?layout=1&cams=f16-c3&transport=mse", "op16")
		b.WaitJS(t, 15*time.Second, "MSE tile live", `(() => { const t = document.querySelector(".tile"); return !!t && t.dataset.state === "live" && t.dataset.transport === "mse" })()`)
		f1 := testenv.Eval[float64](t, b, `document.querySelector(".tile video").getVideoPlaybackQuality().totalVideoFrames`)
		time.Sleep(2 * time.Second)
		f2 := testenv.Eval[float64](t, b, `document.querySelector(".tile video").getVideoPlaybackQuality().totalVideoFrames`)
		if f2-f1 < 25 {
			t.Errorf("fallback tile decoded %.0f frames in 2 s", f2-f1)
		}
		t.Logf("fallback tile decoded %.0f frames in 2 s", f2-f1)
	})

	t.Run("H.265 camera in a browser without H.265", func(t *testing.T) {
		b := newBrowser(t)
		login(t, b, st.base, "#/live/f16?layout=1&cams=f16-c6", "op16")
		b.WaitJS(t, 15*time.Second, "the tile to say it cannot play the camera", `document.querySelector(".tile")?.dataset.state === "unplayable"`)
		why := testenv.Eval[string](t, b, `document.querySelector(".tile .why").textContent`)
		if !strings.Contains(why, "not playable in this browser") {
			t.Errorf("tile says %q", why)
		}
		t.Logf("H.265 tile: %q; player states: %s", why, testenv.Eval[string](t, b, `JSON.stringify(window.kuzetLiveLog)`))
	})

	t.Run("operator of another facility is refused and audited", func(t *testing.T) {
		b := newBrowser(t)
		login(t, b, st.base, "#/live/f16?layout=4&cams=f16-c1,f16-c2,f16-c3,f16-c4", "op27")
		b.WaitJS(t, 15*time.Second, "4 refused tiles",
			`[...document.querySelectorAll(".tile:not([hidden])")].filter(t => t.dataset.state === "refused").length === 4`)
		b.Screenshot(t, "live-wall-refused.png")
		rows, err := st.reg.Audit().List(ctx, registry.AuditFilter{Actor: "op27", Action: registry.AuditLiveStart, AnyFacility: true})
		if err != nil {
			t.Fatal(err)
		}
		denied := map[string]bool{}
		for _, r := range rows {
			if r.Outcome != registry.OutcomeDenied || r.Facility != "f16" {
				t.Errorf("unexpected row %+v", r)
			}
			denied[strings.Join(r.Objects, ",")] = true
		}
		if len(denied) != 4 {
			t.Errorf("denied live.start rows for %v, want the 4 cameras", denied)
		}
	})
}

// TestLiveFallbackInBrowser: the server advertises an address the browser
// cannot reach (as behind a firewall that drops WebRTC), so WebRTC cannot
// connect; within a few seconds the tile plays the fMP4 fallback instead.
func TestLiveFallbackInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	st := newBrowserStack(t, LiveConfig{PublicIPs: []string{"192.0.2.1"}, DisableICETCP: true})
	waitFor(t, 15*time.Second, "camera online", func() bool {
		h, ok := st.mgr.CameraHealth("f16-c1")
		return ok && h.State == ingest.StateOnline
	})
	b := newBrowser(t)
	login(t, b, st.base, "#/live/f16?layout=1&cams=f16-c1", "op16")
	d := b.WaitJS(t, 20*time.Second, "the tile live over the fallback",
		`(() => { const t = document.querySelector(".tile"); return !!t && t.dataset.state === "live" && t.dataset.transport === "mse" })()`)
	t.Logf("live over the fallback %v after login; player states: %s", d.Round(time.Millisecond),
		testenv.Eval[string](t, b, `JSON.stringify(window.kuzetLiveLog)`))
	f1 := testenv.Eval[float64](t, b, `document.querySelector(".tile video").getVideoPlaybackQuality().totalVideoFrames`)
	time.Sleep(2 * time.Second)
	f2 := testenv.Eval[float64](t, b, `document.querySelector(".tile video").getVideoPlaybackQuality().totalVideoFrames`)
	if f2-f1 < 25 {
		t.Errorf("fallback decoded %.0f frames in 2 s", f2-f1)
	}
	if !strings.Contains(testenv.Eval[string](t, b, `document.querySelector(".tile .foot").textContent`), "fallback") {
		t.Error("the tile does not say it plays the fallback")
	}
}
