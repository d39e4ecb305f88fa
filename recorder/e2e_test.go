package recorder

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kuzet/kuzet/internal/migrate"
	"github.com/kuzet/kuzet/internal/testenv"
	"github.com/kuzet/kuzet/recorder/index"
	"github.com/kuzet/kuzet/recorder/store"
)

// End-to-end tests: camsim cameras over RTSP, ingest sources, the recorder,
// MinIO or the fs store, PostgreSQL. They run in real time and in parallel
// with each other (the longest, 3 minutes, bounds the package).

// e2eSeconds is the length of the long recording test; the environment can
// shorten it while iterating on the code, never under make test.
func e2eSeconds(t *testing.T) time.Duration {
	if v := os.Getenv("KUZET_TEST_RECORDER_E2E_SECONDS"); v != "" && !testenv.Required() {
		n, err := strconv.Atoi(v)
		if err == nil && n > 0 {
			t.Logf("recording for %d s (KUZET_TEST_RECORDER_E2E_SECONDS)", n)
			return time.Duration(n) * time.Second
		}
	}
	return 3 * time.Minute
}

func minioStore(t testing.TB, mc *testenv.MinIO) *store.S3 {
	t.Helper()
	st, err := store.NewS3(store.S3Config{Endpoint: mc.Endpoint, Bucket: mc.Bucket, AccessKey: mc.AccessKey, SecretKey: mc.SecretKey,
		RequestTimeout: 5 * time.Second, MaxAttempts: 1}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func e2eConfig(t testing.TB) Config {
	return Config{SpoolDir: t.TempDir(), SegmentDuration: 10 * time.Second, OrphanCheckInterval: -1,
		RetryMin: 200 * time.Millisecond, RetryMax: 2 * time.Second}
}

// checkRecording checks every segment of every camera: ffprobe accepts it,
// its video lasts what the index says within one frame, and the camsim
// frame counters run without hole or duplicate across segments (except
// where allowHole says). It returns each camera's frames.
func checkRecording(t *testing.T, rec *Recorder, st objectReader, sim *simCameras, cams []*simCamera, allowHole func(cam string, a, b markedFrame) bool) map[string][]markedFrame {
	t.Helper()
	ffprobe := testenv.FFprobe(t)
	all := map[string][]markedFrame{}
	const frame = 40 * time.Millisecond // 25 fps clips
	for _, c := range cams {
		segs := indexedSegments(t, rec.Index(), c.id)
		if len(segs) == 0 {
			t.Fatalf("%s: no segments", c.id)
		}
		var frames []markedFrame
		for _, s := range segs {
			marks, dur := segmentMarks(t, ffprobe, st, s.ObjectKey, c.codec)
			if len(marks) != s.Frames {
				t.Fatalf("%s: %d frames in the object, row says %d", s.ObjectKey, len(marks), s.Frames)
			}
			media := time.Duration(s.MediaDuration) * time.Second / 90000
			if d := dur - media; d < -frame || d > frame {
				t.Fatalf("%s: ffprobe measures %s of video, index says %s", s.ObjectKey, dur, media)
			}
			frames = append(frames, marks...)
		}
		spans := coverage(t, rec.Index(), c.id, time.Now())
		if err := checkMarks(c.id, frames, func(a, b markedFrame) bool { return allowHole != nil && allowHole(c.id, a, b) }); err != nil {
			for _, s := range spans {
				t.Logf("  %-16s %s .. %s %s", s.what, s.start.Format("15:04:05.000"), s.end.Format("15:04:05.000"), s.detail)
			}
			if sim != nil {
				t.Logf("upstream of the recorder: %s", sim.transportLoss(c))
			}
			t.Fatal(err)
		}
		rep, err := rec.VerifyChain(context.Background(), c.id, time.Time{}, time.Time{})
		if err != nil || !rep.OK() {
			t.Fatalf("%s: chain %+v %v", c.id, rep, err)
		}
		assertContiguous(t, spans)
		t.Logf("%s: %d segments, frames %d..%d, %d gaps", c.id, len(segs), frames[0].frame, frames[len(frames)-1].frame, len(spans)-len(segs))
		all[c.id] = frames
	}
	return all
}

func TestE2ERecordCamsimIntoMinIO(t *testing.T) {
	t.Parallel()
	testenv.FFprobe(t)
	mc := testenv.StartMinIO(t)
	st := minioStore(t, mc)
	pool := migratedPool(t)
	rec := startRecorder(t, e2eConfig(t), pool, st)
	ids := []string{"e2e-h264", "e2e-aac", "e2e-h265", "e2e-1080p"}
	sim := startSim(t, ids, []string{"h264_640x360.ts", "h264_aac_640x360.ts", "h265_640x360.ts", "h264_1920x1080.ts"})
	for _, c := range sim.cams {
		if err := rec.Record(Camera{ID: c.id, Facility: "f16", Stream: c.stream}); err != nil {
			t.Fatal(err)
		}
	}
	d := e2eSeconds(t)
	time.Sleep(d)
	sim.stopSources()
	stopped := time.Now()
	for _, c := range sim.cams {
		rec.waitOpenGap(t, c.id, index.ReasonCameraOffline, stopped.Add(-5*time.Second), time.Minute)
	}
	checkRecording(t, rec.Recorder, st, sim, sim.cams, nil)
	// 10 s segments, staggered: each camera cuts at its own instants.
	ends := map[string]bool{}
	for _, c := range sim.cams {
		segs := indexedSegments(t, rec.Index(), c.id)
		if want := int(d/(10*time.Second)) - 2; len(segs) < want {
			t.Fatalf("%s: %d segments in %s, want at least %d", c.id, len(segs), d, want)
		}
		for _, s := range segs[1 : len(segs)-1] {
			if w := s.WallDuration; w < 9*time.Second || w > 13*time.Second {
				t.Errorf("%s: segment of %s", s.ObjectKey, w)
			}
		}
		ends[segs[0].End.Truncate(time.Second).Format(time.TimeOnly)] = true
		if c.id == "e2e-aac" && segs[0].AudioCodec != "AAC" {
			t.Errorf("audio codec %q", segs[0].AudioCodec)
		}
	}
	if len(ends) < 3 {
		t.Errorf("4 cameras rotated at only %d distinct seconds", len(ends))
	}
}

func TestE2EMinIOOutage(t *testing.T) {
	t.Parallel()
	testenv.FFprobe(t)
	mc := testenv.StartMinIO(t)
	st := minioStore(t, mc)
	pool := migratedPool(t)
	rec := startRecorder(t, e2eConfig(t), pool, st)
	sim := startSim(t, []string{"s3out-1", "s3out-2"}, []string{"h264_640x360.ts", "h264_aac_640x360.ts"})
	for _, c := range sim.cams {
		if err := rec.Record(Camera{ID: c.id, Facility: "f27", Stream: c.stream}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(15 * time.Second)
	if err := mc.Stop(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(60 * time.Second)
	h := rec.Health()
	if h.StoreUp || h.UploadBacklog < 8 {
		t.Fatalf("after 60 s without the store: up %v, backlog %d segments", h.StoreUp, h.UploadBacklog)
	}
	if err := rec.Ready(context.Background()); err == nil || !strings.Contains(err.Error(), "object store unavailable") {
		t.Fatalf("ready during the outage: %v", err)
	}
	t.Logf("store down 60 s: %d segments (%d bytes) spooled", h.UploadBacklog, h.UploadBacklogBytes)
	if err := mc.Start(); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	waitFor(t, 30*time.Second, "the backlog to upload", func() bool { return rec.Health().UploadBacklog <= 2 })
	took := time.Since(back)
	t.Logf("backlog of 60 s uploaded in %s", took)
	if took > 20*time.Second {
		t.Fatalf("backlog of 60 s took %s to upload: not faster than real time by far", took)
	}
	time.Sleep(10 * time.Second)
	sim.stopSources()
	stopped := time.Now()
	for _, c := range sim.cams {
		rec.waitOpenGap(t, c.id, index.ReasonCameraOffline, stopped.Add(-5*time.Second), time.Minute)
	}
	checkRecording(t, rec.Recorder, st, sim, sim.cams, nil)
}

func TestE2EPostgresOutage(t *testing.T) {
	t.Parallel()
	testenv.FFprobe(t)
	pool, px := proxiedPool(t)
	st := fsStore(t)
	rec := startRecorder(t, e2eConfig(t), pool, st)
	sim := startSim(t, []string{"pgout-1", "pgout-2"}, []string{"h264_640x360.ts", "h265_640x360.ts"})
	for _, c := range sim.cams {
		if err := rec.Record(Camera{ID: c.id, Facility: "f47", Stream: c.stream}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(15 * time.Second)
	px.setCut(true)
	time.Sleep(30 * time.Second)
	h := rec.Health()
	if h.IndexUp || h.JournalBacklog < 4 {
		t.Fatalf("after 30 s without PostgreSQL: index up %v, journal %d", h.IndexUp, h.JournalBacklog)
	}
	if err := rec.Ready(context.Background()); err == nil || !strings.Contains(err.Error(), "PostgreSQL unavailable") {
		t.Fatalf("ready during the outage: %v", err)
	}
	t.Logf("PostgreSQL cut off 30 s: %d index changes journaled, %d segments in the spool", h.JournalBacklog, h.UploadBacklog)
	px.setCut(false)
	waitFor(t, 30*time.Second, "the journal to drain", func() bool { return rec.Health().JournalBacklog == 0 })
	time.Sleep(10 * time.Second)
	sim.stopSources()
	stopped := time.Now()
	for _, c := range sim.cams {
		rec.waitOpenGap(t, c.id, index.ReasonCameraOffline, stopped.Add(-5*time.Second), time.Minute)
	}
	checkRecording(t, rec.Recorder, st, sim, sim.cams, nil)
}

// TestE2EKillRecorderProcess runs the recorder as a separate process,
// kills it with SIGKILL mid-segment and starts it again.
func TestE2EKillRecorderProcess(t *testing.T) {
	t.Parallel()
	testenv.FFprobe(t)
	dbURL := testenv.PostgresURL(t)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := migrate.Apply(ctx, pool, index.Migrations); err != nil {
		t.Fatal(err)
	}
	sim := startSim(t, nil, []string{"h264_640x360.ts", "h264_aac_640x360.ts"})
	cfg := childConfig{SpoolDir: t.TempDir(), StoreDir: t.TempDir(), DatabaseURL: dbURL, SegmentDuration: 10 * time.Second}
	var cams []*simCamera
	for i, id := range []string{"kill-1", "kill-2"} {
		cfg.Cameras = append(cfg.Cameras, childCamera{ID: id, Facility: "f16", URL: sim.sim.URL(i + 1)})
		cams = append(cams, &simCamera{id: id, n: i + 1, codec: "H264"})
	}
	logPath := filepath.Join(t.TempDir(), "child.log")
	child := startChild(t, cfg, logPath)
	started := time.Now()
	// Kill mid-segment: once every camera's open segment holds a couple
	// of seconds of fragments.
	waitFor(t, 60*time.Second, "an open segment with data for every camera", func() bool {
		if time.Since(started) < 15*time.Second {
			return false
		}
		es, err := spoolEntries(t, cfg.SpoolDir)
		if err != nil {
			return false
		}
		open := map[string]int64{}
		for _, e := range es {
			if !e.Meta.Closed {
				open[e.Meta.Camera] = e.Size
			}
		}
		for _, c := range cams {
			if open[c.id] < 150<<10 {
				return false
			}
		}
		return true
	})
	killed := time.Now()
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	child = startChild(t, cfg, logPath)
	time.Sleep(15 * time.Second)
	if err := child.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := child.Wait(); err != nil {
		b, _ := os.ReadFile(logPath)
		t.Fatalf("recorder exit: %v\n%s", err, b)
	}
	logText, _ := os.ReadFile(logPath)

	st, err := store.NewFS(store.FSConfig{Dir: cfg.StoreDir}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ix, _ := index.New(pool)
	view := &Recorder{ix: ix, store: st}
	var holes []string
	frames := checkRecording(t, view, st, sim, cams, func(cam string, a, b markedFrame) bool {
		// The one hole allowed is the kill: what was sent before it and
		// is missing must be at most 2 s of frames.
		if a.capture.After(killed) || b.capture.Before(killed) {
			return false
		}
		if lost := killed.Sub(a.capture); lost > 2*time.Second {
			t.Errorf("%s: the last frame kept before the kill was captured %s before it", cam, lost)
		}
		holes = append(holes, cam)
		return true
	})
	if len(holes) != len(cams) {
		t.Fatalf("kill holes in %v, want one per camera", holes)
	}
	for _, c := range cams {
		if !strings.Contains(string(logText), "recovered a segment interrupted by a stop") || !strings.Contains(string(logText), "camera="+c.id) {
			t.Fatalf("%s: no recovered segment in the log", c.id)
		}
		// The hole is a recorder_down gap between the recovered segment
		// and the first one after the restart.
		var last markedFrame
		for _, f := range frames[c.id] {
			if f.capture.After(killed) {
				break
			}
			last = f
		}
		spans := coverage(t, ix, c.id, time.Now())
		found := false
		for i, s := range spans {
			if s.what == index.ReasonRecorderDown && i > 0 && i < len(spans)-1 && !s.start.After(killed) && s.end.After(killed) {
				found = true
				if d := s.start.Sub(last.capture); d < -2*time.Second || d > 2*time.Second {
					t.Errorf("%s: recorder_down starts %s, last frame captured %s", c.id, s.start, last.capture)
				}
				t.Logf("%s: recorder_down %s .. %s (killed %s)", c.id, s.start.Format("15:04:05.000"), s.end.Format("15:04:05.000"), killed.Format("15:04:05.000"))
			}
		}
		if !found {
			t.Fatalf("%s: no recorder_down gap around the kill at %s: %+v", c.id, killed, spans)
		}
	}
}
