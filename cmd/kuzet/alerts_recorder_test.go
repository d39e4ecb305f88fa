package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kuzet/kuzet/alerts"
	"github.com/kuzet/kuzet/ingest"
	"github.com/kuzet/kuzet/internal/camsim"
	"github.com/kuzet/kuzet/internal/config"
	"github.com/kuzet/kuzet/internal/migrate"
	"github.com/kuzet/kuzet/internal/testenv"
	"github.com/kuzet/kuzet/recorder"
	"github.com/kuzet/kuzet/registry"
)

// webhookLog receives the alert service's webhook deliveries, checks their
// signatures, and keeps the events with their arrival times.
type webhookLog struct {
	secret []byte
	mu     sync.Mutex
	evs    []alerts.Event
	at     []time.Time
	bad    []string
}

func (l *webhookLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.bad = append(l.bad, err.Error())
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if err := alerts.Verify(l.secret, r.Header.Get(alerts.HeaderTimestamp), r.Header.Get(alerts.HeaderSignature), body, now, time.Minute); err != nil {
		l.bad = append(l.bad, err.Error())
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var e alerts.Event
	if err := json.Unmarshal(body, &e); err != nil {
		l.bad = append(l.bad, err.Error())
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	l.evs = append(l.evs, e)
	l.at = append(l.at, now)
}

// find returns the arrival of the first event after `after` of type typ
// for kind on subject with severity sev (any when "").
func (l *webhookLog) find(typ alerts.EventType, kind alerts.Kind, subject string, sev alerts.Severity, after time.Time) (time.Time, alerts.Event, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, e := range l.evs {
		if e.Type == typ && e.Alert.Kind == kind && e.Alert.Subject == subject && (sev == "" || e.Alert.Severity == sev) && l.at[i].After(after) {
			return l.at[i], e, true
		}
	}
	return time.Time{}, alerts.Event{}, false
}

func (l *webhookLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for i, e := range l.evs {
		fmt.Fprintf(&b, "  %s %s %s %s (%s): %s\n", l.at[i].Format("15:04:05.000"), e.Type, e.Alert.Kind, e.Alert.Subject, e.Alert.Severity, e.Alert.Detail)
	}
	for _, s := range l.bad {
		fmt.Fprintf(&b, "  refused delivery: %s\n", s)
	}
	return b.String()
}

// storageWatch samples the recorder's health every 20 ms and notes when
// the store and the spool changed state, for judging the alerts' delays.
type storageWatch struct {
	mu      sync.Mutex
	samples []storageSample
}

type storageSample struct {
	at      time.Time
	storeUp bool
	ratio   float64
}

func (w *storageWatch) run(ctx context.Context, rec *recorder.Recorder) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		h := rec.Health()
		w.mu.Lock()
		w.samples = append(w.samples, storageSample{at: time.Now(), storeUp: h.StoreUp, ratio: float64(h.SpoolUsed) / float64(h.SpoolQuota)})
		w.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// first returns the time of the first sample after `after` for which cond
// holds.
func (w *storageWatch) first(after time.Time, cond func(storageSample) bool) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range w.samples {
		if s.at.After(after) && cond(s) {
			return s.at, true
		}
	}
	return time.Time{}, false
}

// maxRatio is the highest spool fill ratio sampled after `after`.
func (w *storageWatch) maxRatio(after time.Time) float64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := 0.0
	for _, s := range w.samples {
		if s.at.After(after) {
			m = max(m, s.ratio)
		}
	}
	return m
}

// TestStorageAlertsWithTheRealRecorder runs a 1080p simulated camera
// through ingest into the real recorder (small spool quota, MinIO as the
// object store) and the alert service, wired as serve wires them (Storage:
// recorderStorage). MinIO is stopped: the store-down alert fires within
// DependencyDownFor of the recorder seeing the store fail, and as the spool
// fills against its quota one spool alert opens at 50 % and rises to high
// at 80 % and critical at 95 %. MinIO is started again: the backlog
// uploads and both alerts resolve. Alerts are observed where operators get
// them: signed webhook deliveries.
func TestStorageAlertsWithTheRealRecorder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	const (
		quota      = 8 << 20 // about 15 s of the 1080p clip (~4 Mbit/s)
		segment    = 2 * time.Second
		retryMax   = 2 * time.Second
		camera     = "f16-c1"
		downFor    = 10 * time.Second // alerts' default DependencyDownFor
		clearFor   = 3 * time.Second  // alerts' default ClearFor
		tick       = time.Second      // alerts' default Interval
		spoolAlert = "local/spool"
		storeAlert = "local/store"
	)

	pool := testenv.Postgres(t)
	if _, err := migrate.Apply(ctx, pool, migrationSets()...); err != nil {
		t.Fatal(err)
	}
	mc := testenv.StartMinIO(t)
	metrics := prometheus.NewRegistry()
	objects, err := openStore(ctx, config.Store{Kind: "s3", S3: config.S3{Endpoint: mc.Endpoint, Bucket: mc.Bucket,
		AccessKey: mc.AccessKey, SecretKey: mc.SecretKey}}, log, metrics)
	if err != nil {
		t.Fatal(err)
	}
	defer objects.Close()
	sim, err := camsim.New(camsim.Config{Listen: "127.0.0.1:0", Cameras: 1,
		Clip: filepath.Join(testenv.RepoRoot(t), "testdata", "clips", "h264_1920x1080.ts")}, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	defer sim.Close()

	recMetrics, err := recorder.NewMetrics(metrics)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := recorder.New(recorder.Config{
		SpoolDir: t.TempDir(), SpoolQuota: quota, SegmentDuration: segment,
		// Fragments of 250 ms (~130 kB) let the spool fill past 95 %
		// before the quota refuses one.
		FragmentDuration: 250 * time.Millisecond, SyncInterval: 500 * time.Millisecond,
		RetryMax: retryMax, ShutdownDrain: time.Second, OrphanCheckInterval: -1,
	}, recorder.Deps{Pool: pool, Store: objects, Log: log, Metrics: recMetrics})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.New(registry.Config{Password: registry.PasswordParams{Time: 1, MemoryKiB: 8, Threads: 1}},
		pool, holdPlacer{rec}, log)
	if err != nil {
		t.Fatal(err)
	}

	hooks := &webhookLog{secret: []byte("storage-alerts-test-secret")}
	receiver := httptest.NewServer(hooks)
	defer receiver.Close()

	var alertSvc *alerts.Service
	mgr, err := ingest.NewManager(ingest.ManagerConfig{BackoffMin: 200 * time.Millisecond, BackoffMax: time.Second,
		OnStream: func(cam ingest.CameraConfig, s *ingest.Stream) {
			alertSvc.AttachStream(s)
			if err := rec.Record(recorder.Camera{ID: cam.ID, Facility: cam.Facility, Stream: s}); err != nil {
				t.Errorf("record %s: %v", cam.ID, err)
			}
		}}, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	alertMetrics, err := alerts.NewMetrics(metrics)
	if err != nil {
		t.Fatal(err)
	}
	alertSvc, err = alerts.New(alerts.Config{
		Webhooks:        []alerts.WebhookConfig{{Name: "test", URL: receiver.URL, Secret: string(hooks.secret)}},
		WebhookRetryMin: 100 * time.Millisecond, WebhookRetryMax: time.Second,
	}, alerts.Deps{
		Pool: pool, Health: mgr, Storage: recorderStorage{rec},
		Directory: reg, Incidents: reg, Audit: reg.Audit(),
		Authenticate: func(*http.Request) (registry.Principal, error) {
			return registry.Principal{}, registry.ErrBadCredentials
		},
		Metrics: alertMetrics, Log: log,
	})
	if err != nil {
		t.Fatal(err)
	}

	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	watch := &storageWatch{}
	for _, run := range []func(context.Context) error{mgr.Run, rec.Run, alertSvc.Run} {
		wg.Go(func() {
			if err := run(runCtx); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Go(func() { watch.run(runCtx, rec) })
	if err := mgr.Apply(ctx, []ingest.CameraConfig{{ID: camera, Facility: "f16", URL: sim.URL(1), Enabled: true}}); err != nil {
		t.Fatal(err)
	}

	waitStorage := func(d time.Duration, what string, cond func(recorder.Health) bool) recorder.Health {
		t.Helper()
		deadline := time.Now().Add(d)
		for {
			h := rec.Health()
			if cond(h) {
				return h
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %s within %s: %+v\nalert events:\n%s", what, d, h, hooks)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitEvent := func(d time.Duration, typ alerts.EventType, kind alerts.Kind, subject string, sev alerts.Severity, after time.Time) (time.Time, alerts.Event) {
		t.Helper()
		deadline := time.Now().Add(d)
		for {
			if at, e, ok := hooks.find(typ, kind, subject, sev, after); ok {
				return at, e
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %s %s event on %s (severity %q) within %s; events:\n%s", typ, kind, subject, sev, d, hooks)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// inBounds checks that d lies in [lo, hi].
	inBounds := func(what string, d, lo, hi time.Duration) {
		t.Helper()
		if d < lo || d > hi {
			t.Errorf("%s after %s, want %s to %s", what, d.Round(time.Millisecond), lo, hi)
		}
	}

	// Steady state: segments upload as they close; the spool holds about
	// two segments, well under its first level.
	begin := time.Now()
	waitStorage(30*time.Second, "segments uploaded", func(h recorder.Health) bool {
		return h.Recording == 1 && h.StoreUp && h.UploadBacklog == 0 && objectCount(t, mc) >= 2
	})
	time.Sleep(2 * segment)
	if r := watch.maxRatio(begin); r >= 0.45 {
		t.Fatalf("spool %.0f%% full while the store is up: the quota is too small for the test", 100*r)
	}
	if evs := hooks.String(); evs != "" {
		t.Fatalf("alerts before the fault:\n%s", evs)
	}

	// Store down.
	if err := mc.Stop(); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	t.Logf("MinIO stopped")

	// The spool levels, as the recorder's figures cross them.
	for _, lv := range []struct {
		ratio float64
		typ   alerts.EventType
		sev   alerts.Severity
	}{
		{0.5, alerts.EventOpened, alerts.SeverityMedium},
		{0.8, alerts.EventUpdated, alerts.SeverityHigh},
		{0.95, alerts.EventUpdated, alerts.SeverityCritical},
	} {
		at, e := waitEvent(40*time.Second, lv.typ, alerts.KindSpoolFilling, spoolAlert, lv.sev, stopped)
		crossed, ok := watch.first(stopped, func(s storageSample) bool { return s.ratio >= lv.ratio })
		if !ok {
			t.Fatalf("spool alert %s %s but the spool never reached %.0f%%", lv.typ, lv.sev, 100*lv.ratio)
		}
		t.Logf("spool %.0f%% full %s after the store stopped; alert %s (%s) %s later: %s",
			100*lv.ratio, crossed.Sub(stopped).Round(time.Millisecond), lv.typ, lv.sev, at.Sub(crossed).Round(time.Millisecond), e.Alert.Detail)
		// No time window: the first evaluation after the crossing (up to
		// one Interval), its database write and the webhook delivery.
		inBounds(fmt.Sprintf("spool alert at %.0f%%", 100*lv.ratio), at.Sub(crossed), 0, tick+time.Second)
	}
	h := waitStorage(20*time.Second, "the camera stopped for a full spool", func(h recorder.Health) bool { return len(h.SpoolFull) == 1 })
	t.Logf("spool full: %d of %d bytes, %d segments (%d bytes) wait for upload, camera %v stopped",
		h.SpoolUsed, h.SpoolQuota, h.UploadBacklog, h.UploadBacklogBytes, h.SpoolFull)

	at, e := waitEvent(30*time.Second, alerts.EventOpened, alerts.KindStoreUnreachable, storeAlert, "", stopped)
	failed, ok := watch.first(stopped, func(s storageSample) bool { return !s.storeUp })
	if !ok {
		t.Fatal("store alert without the recorder reporting the store down")
	}
	t.Logf("recorder saw the store down %s after it stopped; store alert %s after that (%s after the stop): %s",
		failed.Sub(stopped).Round(time.Millisecond), at.Sub(failed).Round(time.Millisecond), at.Sub(stopped).Round(time.Millisecond), e.Alert.Detail)
	// The first failed upload comes when the open segment closes (at the
	// first keyframe after its target length: up to one segment and one
	// GOP of 2 s) and the store client gives up its attempts.
	inBounds("recorder seeing the store down", failed.Sub(stopped), 0, segment+2*time.Second+2*time.Second)
	// DependencyDownFor from the first evaluation that sees it (up to one
	// Interval late), measured between evaluation ticks (up to one more
	// Interval), the database write and the delivery.
	inBounds("store alert", at.Sub(failed), downFor, downFor+2*tick+500*time.Millisecond)

	// Store back.
	if err := mc.Start(); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	t.Logf("MinIO started again")
	res, _ := waitEvent(30*time.Second, alerts.EventResolved, alerts.KindStoreUnreachable, storeAlert, "", back)
	up, ok := watch.first(back, func(s storageSample) bool { return s.storeUp })
	if !ok {
		t.Fatal("store alert resolved without the recorder reporting the store up")
	}
	t.Logf("recorder saw the store up %s after it started; store alert resolved %s after that", up.Sub(back).Round(time.Millisecond), res.Sub(up).Round(time.Millisecond))
	// The uploader's next attempt: its backoff is at most RetryMax.
	inBounds("recorder seeing the store up", up.Sub(back), 0, retryMax+2*time.Second)
	inBounds("store alert resolved", res.Sub(up), clearFor, clearFor+2*tick+500*time.Millisecond)

	res, _ = waitEvent(30*time.Second, alerts.EventResolved, alerts.KindSpoolFilling, spoolAlert, "", back)
	// The alert clears 2 % under the first level.
	drained, ok := watch.first(back, func(s storageSample) bool { return s.ratio < 0.48 })
	if !ok {
		t.Fatal("spool alert resolved without the spool draining")
	}
	t.Logf("spool under 48%% %s after the store came back; spool alert resolved %s after that", drained.Sub(back).Round(time.Millisecond), res.Sub(drained).Round(time.Millisecond))
	inBounds("spool alert resolved", res.Sub(drained), clearFor, clearFor+2*tick+500*time.Millisecond)

	h = waitStorage(30*time.Second, "the backlog uploaded and recording resumed", func(h recorder.Health) bool {
		return h.UploadBacklog == 0 && len(h.SpoolFull) == 0 && h.Recording == 1
	})
	t.Logf("after the outage: spool %d bytes, %d objects in the store, %d failed upload attempts", h.SpoolUsed, objectCount(t, mc), h.UploadFailures)
	if h.UploadFailures == 0 {
		t.Error("no failed upload counted during the outage")
	}
	// Every alert of the outage is resolved, and none concerns the camera.
	hooks.mu.Lock()
	open := map[string]bool{}
	for _, e := range hooks.evs {
		k := string(e.Alert.Kind) + " " + e.Alert.Subject
		switch e.Type {
		case alerts.EventOpened:
			open[k] = true
		case alerts.EventResolved:
			delete(open, k)
		}
		if e.Alert.Camera != "" {
			t.Errorf("camera alert during the storage outage: %s %s on %s", e.Type, e.Alert.Kind, e.Alert.Camera)
		}
	}
	hooks.mu.Unlock()
	for k := range open {
		// Upload failures stay in their window (5 min) by design.
		if !strings.HasPrefix(k, string(alerts.KindUploadFailures)) {
			t.Errorf("alert still open after the outage: %s", k)
		}
	}
	t.Logf("alert events:\n%s", hooks)
}

// objectCount counts the objects in the test bucket.
func objectCount(t *testing.T, mc *testenv.MinIO) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n := 0
	for obj := range mc.Client(t).ListObjects(ctx, mc.Bucket, minio.ListObjectsOptions{Recursive: true}) {
		if obj.Err != nil {
			return -1
		}
		n++
	}
	return n
}
