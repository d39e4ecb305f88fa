package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/kuzet/kuzet/ingest"
	"github.com/kuzet/kuzet/internal/camsim"
	"github.com/kuzet/kuzet/internal/testenv"
	"github.com/kuzet/kuzet/recorder"
	"github.com/kuzet/kuzet/recorder/index"
	"github.com/kuzet/kuzet/recorder/store"
	"github.com/kuzet/kuzet/registry"
	"github.com/kuzet/kuzet/viewer/evidence"
)

// newBrowser is a Chromium for recorded playback; a wait that times out
// shows the tiles and the player's last events.
func newBrowser(t *testing.T) *testenv.Browser {
	t.Helper()
	b := testenv.NewBrowser(t)
	b.Diagnose = `"tiles: " + ` + tilesJSON + ` + "; events: " + JSON.stringify((window.kuzetPlayback || {events: []}).events.filter(e => e.type !== "position").slice(-20))`
	return b
}

// tilesJSON describes the playback tiles: camera, state, the capture
// time of the frame shown (its SEI mark) and the frames decoded.
const tilesJSON = `JSON.stringify([...document.querySelectorAll(".pb-tile")].map(t => ({
	camera: t.dataset.camera, state: t.dataset.state, mark: t.dataset.mark || "", at: t.dataset.at || "",
	frames: t.querySelector("video").getVideoPlaybackQuality().totalVideoFrames})))`

type pbTile struct {
	Camera string `json:"camera"`
	State  string `json:"state"`
	Mark   string `json:"mark"`
	At     string `json:"at"`
	Frames int    `json:"frames"`
}

func tiles(t *testing.T, b *testenv.Browser) map[string]pbTile {
	t.Helper()
	var ts []pbTile
	if err := json.Unmarshal([]byte(testenv.Eval[string](t, b, tilesJSON)), &ts); err != nil {
		t.Fatal(err)
	}
	out := map[string]pbTile{}
	for _, x := range ts {
		out[x.Camera] = x
	}
	return out
}

func markTime(t *testing.T, s string) time.Time {
	t.Helper()
	if s == "" {
		return time.Time{}
	}
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestPlaybackInBrowser records three simulated cameras for about half a
// minute through ingest and the recorder (4 s segments; camera 2 offline
// for 8 s in the middle), then an investigator opens the incident in
// Chromium, gives a reason and plays every camera: each tile decodes
// frames; a seek to T shows frames whose SEI capture time is within one
// GOP (2 s) of T; playback goes on across segment boundaries and across
// camera 2's gap, which the tile says, without stopping.
func TestPlaybackInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	testenv.Chromium(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	pool, ix := newTestIndex(t)
	st, err := store.NewFS(store.FSConfig{Dir: t.TempDir()}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	sim, err := camsim.New(camsim.Config{Listen: "127.0.0.1:0", Cameras: 3, Clip: filepath.Join(testenv.RepoRoot(t), camsim.DefaultClip)}, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	rec, err := recorder.New(recorder.Config{SpoolDir: t.TempDir(), SegmentDuration: 4 * time.Second, SyncInterval: 500 * time.Millisecond,
		ShutdownDrain: time.Second, OrphanCheckInterval: -1}, recorder.Deps{Pool: pool, Store: st, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	mgr, err := ingest.NewManager(ingest.ManagerConfig{ReadTimeout: 3 * time.Second, BackoffMin: 200 * time.Millisecond, BackoffMax: time.Second,
		OnStream: func(cam ingest.CameraConfig, s *ingest.Stream) {
			if err := rec.Record(recorder.Camera{ID: cam.ID, Facility: cam.Facility, Stream: s}); err != nil {
				t.Errorf("record %s: %v", cam.ID, err)
			}
		}}, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{"f16-c1", "f16-c2", "f16-c3"}
	var cams []ingest.CameraConfig
	var inputs []stackCamera
	for i, id := range ids {
		cams = append(cams, ingest.CameraConfig{ID: id, Facility: "f16", URL: sim.URL(i + 1), Enabled: true})
		inputs = append(inputs, stackCamera{id: id, url: sim.URL(i + 1)})
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for _, run := range []func(context.Context) error{mgr.Run, rec.Run} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = run(ctx)
		}()
	}
	if err := mgr.Apply(ctx, cams); err != nil {
		t.Fatal(err)
	}
	mark := func(codec string, nalus [][]byte) (time.Time, bool) {
		m, ok := camsim.FindMark(codec, nalus)
		return m.Capture.UTC(), ok
	}
	s := newFootageStack(t, pool, ix, st, stackOpts{cameras: cameraInputs(inputs), mgr: mgr, ui: true, mark: mark})

	// Record: 12 s, camera 2 offline for 8 s, 14 s more.
	waitUntil(t, 20*time.Second, "cameras online", func() bool {
		for _, id := range ids {
			if h, ok := mgr.CameraHealth(id); !ok || h.State != ingest.StateOnline {
				return false
			}
		}
		return true
	})
	t0 := time.Now()
	time.Sleep(12 * time.Second)
	sim.Camera(2).Offline(8 * time.Second)
	time.Sleep(22 * time.Second)
	tEnd := time.Now()
	waitUntil(t, 30*time.Second, "the recordings indexed", func() bool {
		for _, id := range ids {
			st, err := ix.CameraState(ctx, id)
			if err != nil || st.LastEnd.Before(tEnd.Add(-3*time.Second)) {
				return false
			}
		}
		return true
	})
	gaps, err := ix.Gaps(ctx, "f16-c2", t0, tEnd)
	if err != nil {
		t.Fatal(err)
	}
	var gap index.Gap
	for _, g := range gaps {
		if g.Reason == index.ReasonCameraOffline && !g.End.IsZero() {
			gap = g
		}
	}
	if gap.End.IsZero() {
		t.Fatalf("no closed camera_offline gap of camera 2: %+v", gaps)
	}
	segs1, _ := ix.Segments(ctx, "f16-c1", t0, tEnd)
	t.Logf("recorded %v; camera 1 has %d segments, camera 2 a gap %s - %s (%v)", tEnd.Sub(t0).Round(time.Second), len(segs1),
		gap.Start.Format("15:04:05.000"), gap.End.Format("15:04:05.000"), gap.End.Sub(gap.Start).Round(time.Millisecond))

	fac, typ, sev, desc := "f16", "fight", "moderate", "fight in the yard, seen by three cameras"
	sys := registry.System("test")
	pr, err := s.reg.CreatePrisoner(ctx, sys, registry.PrisonerInput{RegistrationNumber: "A-1001", FullName: ptr("Ivan Petrov"),
		Risk: ptr("high"), RiskAssessedOn: ptr("2026-01-10"), RiskAssessor: ptr("Classification board"), Facility: ptr("f16"), HousingZone: ptr("yard")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.reg.RecordMovement(ctx, sys, pr.ID, registry.MovementInput{Zone: "yard", From: t0.Add(-time.Minute)}); err != nil {
		t.Fatal(err)
	}
	incStart, incEnd := t0.Add(5*time.Second), tEnd.Add(-5*time.Second)
	inc, err := s.reg.CreateIncident(ctx, sys, registry.IncidentInput{Facility: &fac, Type: &typ, Severity: &sev,
		Start: &incStart, End: &incEnd, Description: &desc, Zones: &[]string{"yard"}, Prisoners: &[]int64{pr.ID}})
	if err != nil {
		t.Fatal(err)
	}

	b := newBrowser(t)
	b.Run(t,
		chromedp.Navigate(fmt.Sprintf("%s/#/incident/%d", s.base, inc.ID)),
		chromedp.WaitVisible(chromedp.CSS("#username")),
		chromedp.SendKeys(chromedp.CSS("#username"), "inv"),
		chromedp.SendKeys(chromedp.CSS("#password"), stackPassword),
		chromedp.Click(chromedp.CSS("#login-submit")),
		chromedp.WaitVisible(chromedp.CSS("#footage-reason")),
		chromedp.SendKeys(chromedp.CSS("#footage-reason"), "review of the fight, case 2026/31"),
		chromedp.Click(chromedp.CSS("#footage-open")),
		chromedp.WaitVisible(chromedp.CSS(".timeline")),
	)
	if n := testenv.Eval[int](t, b, `document.querySelectorAll(".tl-row").length`); n != 3 {
		t.Fatalf("timeline rows: %d", n)
	}
	if n := testenv.Eval[int](t, b, `document.querySelectorAll('.tl-track[data-camera="f16-c2"] .tl-gap').length`); n < 1 {
		t.Errorf("camera 2's gap is not on the timeline")
	}
	b.Run(t, chromedp.Click(chromedp.CSS("#playback-start")))
	d := b.WaitJS(t, 20*time.Second, "every tile playing with decoded frames", `[...document.querySelectorAll(".pb-tile")].length === 3 &&
		[...document.querySelectorAll(".pb-tile")].every(t => t.dataset.state === "playing" && t.dataset.mark &&
			t.querySelector("video").getVideoPlaybackQuality().totalVideoFrames > 10)`)
	t.Logf("all three tiles decoding %v after pressing play", d.Round(time.Millisecond))
	b.Screenshot(t, "playback-incident.png")

	// Seek to T, 3 s before camera 2's gap.
	T := gap.Start.Add(-3 * time.Second)
	before := tiles(t, b)
	b.Run(t,
		chromedp.SetValue(chromedp.CSS(".pb-goto"), T.UTC().Format(time.RFC3339Nano)),
		chromedp.Click(chromedp.CSS(".pb-goto-form button")),
	)
	const gop = 2 * time.Second
	b.WaitJS(t, 10*time.Second, "every tile near T", fmt.Sprintf(`[...document.querySelectorAll(".pb-tile")].every(t => {
		const m = Date.parse(t.dataset.mark || ""); return Math.abs(m - %d) <= %d })`, T.UnixMilli(), gop.Milliseconds()))
	after := tiles(t, b)
	for _, id := range ids {
		m := markTime(t, after[id].Mark)
		t.Logf("after the seek to %s: %s shows the frame captured at %s (%+v from T), %d frames decoded",
			T.Format("15:04:05.000"), id, m.Format("15:04:05.000"), m.Sub(T).Round(time.Millisecond), after[id].Frames)
		if after[id].Frames <= before[id].Frames {
			t.Errorf("%s decoded nothing after the seek", id)
		}
	}

	// Play on through camera 2's gap: cameras 1 and 3 never stop (and
	// cross segment boundaries), camera 2 says it has no footage, then
	// plays again after the gap.
	var boundary time.Time
	for _, sg := range segs1 {
		if sg.Start.After(T) {
			boundary = sg.Start
			break
		}
	}
	sawGap := false
	last := tiles(t, b)
	lastChange := map[string]time.Time{"f16-c1": time.Now(), "f16-c3": time.Now()}
	deadline := time.Now().Add(25 * time.Second)
	for {
		time.Sleep(250 * time.Millisecond)
		now := tiles(t, b)
		for _, id := range []string{"f16-c1", "f16-c3"} {
			if now[id].Frames > last[id].Frames {
				lastChange[id] = time.Now()
			} else if time.Since(lastChange[id]) > 1500*time.Millisecond {
				t.Fatalf("%s stopped decoding at %s (state %s)", id, now[id].Mark, now[id].State)
			}
		}
		if now["f16-c2"].State == "gap" && !sawGap {
			sawGap = true
			b.Screenshot(t, "playback-camera-gap.png")
			why := testenv.Eval[string](t, b, `document.querySelector('.pb-tile[data-camera="f16-c2"] .why').textContent`)
			t.Logf("camera 2 during its gap: %q while camera 1 shows %s", why, now["f16-c1"].Mark)
			if !strings.Contains(why, "camera offline") {
				t.Errorf("camera 2's tile says %q", why)
			}
		}
		last = now
		m2 := markTime(t, now["f16-c2"].Mark)
		m1 := markTime(t, now["f16-c1"].Mark)
		if sawGap && m2.After(gap.End) && now["f16-c2"].State == "playing" && m1.After(boundary) {
			t.Logf("camera 2 plays again at %s after its gap; camera 1 at %s, past the segment boundary at %s",
				m2.Format("15:04:05.000"), m1.Format("15:04:05.000"), boundary.Format("15:04:05.000"))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("playback did not get past camera 2's gap (saw gap %t): %+v", sawGap, now)
		}
	}
	if boundary.IsZero() {
		t.Errorf("no segment boundary of camera 1 after T")
	}

	// The export button: progress, then the signed package.
	b.Run(t, chromedp.Click(chromedp.CSS(".ex-start")))
	d = b.WaitJS(t, 60*time.Second, "the export done", `document.querySelector(".export")?.dataset.state === "done"`)
	href := testenv.Eval[string](t, b, `document.querySelector(".ex-download").getAttribute("href")`)
	t.Logf("export done %v after the click: %s (%s)", d.Round(time.Millisecond), href, testenv.Eval[string](t, b, `document.querySelector(".ex-text").textContent`))
	code, pkg := s.do(t, "inv", "GET", href, nil, nil)
	pub, err := evidence.ParsePublicKey(mustRead(t, s.keyFile+".pub"))
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := evidence.Verify(bytes.NewReader(pkg), int64(len(pkg)), pub); code != 200 || err != nil || len(rep.Manifest.Files) != 4 {
		t.Fatalf("package from the page: %d, %v", code, err)
	}
	b.Screenshot(t, "playback-export-done.png")

	// The prisoner's page: risk class, movements, the incident, and the
	// footage of where the prisoner was, played.
	b.Run(t, chromedp.Click(chromedp.CSS(fmt.Sprintf(`a[href="#/prisoner/%d"]`, pr.ID))))
	b.WaitJS(t, 10*time.Second, "the prisoner page", `!!document.querySelector(".prisoner-page table.movements") && !!document.querySelector(".incident-list a")`)
	if txt := testenv.Eval[string](t, b, `document.querySelector(".prisoner-page").innerText`); !strings.Contains(txt, "high (assessed 2026-01-10 by Classification board)") ||
		!strings.Contains(txt, fmt.Sprintf("#%d fight", inc.ID)) {
		t.Errorf("prisoner page says:\n%s", txt)
	}
	b.Run(t,
		chromedp.SendKeys(chromedp.CSS("#pf-reason"), "where was the prisoner during the fight"),
		chromedp.Click(chromedp.CSS(".prisoner-page form.reason-form button[type=submit]")),
	)
	b.WaitJS(t, 10*time.Second, "the stay with its cameras", `!!document.querySelector(".stay button") && !document.querySelector(".stay button").disabled`)
	b.Run(t, chromedp.Click(chromedp.CSS(".stay button")))
	b.WaitJS(t, 20*time.Second, "the prisoner's cameras playing", `[...document.querySelectorAll(".pb-tile")].length === 3 &&
		[...document.querySelectorAll(".pb-tile")].every(t => t.querySelector("video").getVideoPlaybackQuality().totalVideoFrames > 10)`)
	b.Screenshot(t, "prisoner-footage.png")
	rows, err := s.reg.Audit().List(ctx, registry.AuditFilter{Actor: "inv", Action: registry.AuditPlayback, AnyFacility: true})
	if err != nil {
		t.Fatal(err)
	}
	var started, viewed int
	for _, r := range rows {
		if r.Reason != "review of the fight, case 2026/31" && r.Reason != "where was the prisoner during the fight" {
			t.Errorf("playback row without the reason: %+v", r)
		}
		switch {
		case r.Outcome == registry.OutcomeStarted:
			started++
		case strings.Contains(r.Detail, "viewed"):
			viewed++
		}
	}
	if started != 2 || viewed < 2 {
		t.Errorf("audit: %d started and %d viewed-range rows", started, viewed)
	}
}

// waitUntil polls cond.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
