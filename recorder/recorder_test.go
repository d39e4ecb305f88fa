package recorder

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kuzet/kuzet/ingest"
	"github.com/kuzet/kuzet/recorder/index"
	"github.com/kuzet/kuzet/recorder/internal/synth"
	"github.com/kuzet/kuzet/recorder/spool"
)

func TestRecordUploadIndexAndGaps(t *testing.T) {
	t.Parallel()
	pool := migratedPool(t)
	st := fsStore(t)
	rec := startRecorder(t, testConfig(t), pool, st)
	start := time.Now().Add(-time.Minute).Truncate(time.Second)
	f := newFeeder(t, "cam-a", start, true)
	if err := rec.Record(Camera{ID: "cam-a", Facility: "f16", Stream: f.stream}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the pipeline to attach", func() bool { return f.stream.Readers() == 1 })
	f.online()
	f.frames(20 * synth.FPS)
	offAt := f.cam.Start.Add(20 * time.Second)
	f.offline(offAt)
	// A discontinuity: the camera comes back 3 s later on a new timeline.
	f.cam.SkipFrames(3 * synth.FPS)
	f.online()
	f.frames(30 * synth.FPS)
	f.offline(f.cam.Start.Add(30 * time.Second))
	rec.waitOpenGap(t, "cam-a", index.ReasonCameraOffline, f.cam.Start.Add(30*time.Second).Add(-100*time.Millisecond), 20*time.Second)

	ctx := context.Background()
	segs, err := rec.Index().Segments(ctx, "cam-a", start, start.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(segs) < 6 {
		t.Fatalf("only %d segments", len(segs))
	}
	var frames []int64
	runs := map[uint64]bool{}
	for _, s := range segs {
		got := objectFrames(t, st, s.ObjectKey)
		if len(got) != s.Frames || s.MediaDuration != int64(s.Frames)*synth.FrameTicks {
			t.Fatalf("%s: %d frames in object, row says %d frames %d ticks", s.ObjectKey, len(got), s.Frames, s.MediaDuration)
		}
		frames = append(frames, got...)
		runs[s.Run] = true
	}
	// Every frame recorded once, in order, except the 3 s the camera was away.
	want := int64(0)
	for _, n := range frames {
		if want == 20*synth.FPS {
			want += 3 * synth.FPS
		}
		if n != want {
			t.Fatalf("frame %d, want %d", n, want)
		}
		want++
	}
	if want != 30*synth.FPS || len(runs) != 2 {
		t.Fatalf("recorded up to frame %d in %d runs", want, len(runs))
	}
	// Timeline: contiguous from the first segment on, the 3 s as
	// camera_offline, and an open camera_offline gap at the end.
	spans := coverage(t, rec.Index(), "cam-a", time.Now())
	assertContiguous(t, spans)
	var offline []span
	for _, s := range spans {
		if s.what == index.ReasonCameraOffline {
			offline = append(offline, s)
		}
	}
	if len(offline) != 2 || offline[0].end.Sub(offline[0].start) < 2900*time.Millisecond || offline[0].end.Sub(offline[0].start) > 3100*time.Millisecond {
		t.Fatalf("offline gaps %+v", offline)
	}
	if rep, err := rec.VerifyChain(ctx, "cam-a", time.Time{}, time.Time{}); err != nil || !rep.OK() || rep.Segments != len(segs) {
		t.Fatalf("chain: %+v %v", rep, err)
	}
	if used := rec.spool.Used(); used != 0 {
		t.Fatalf("spool still holds %d bytes", used)
	}
}

func TestStreamEventsMakeGapsAndRuns(t *testing.T) {
	t.Parallel()
	pool := migratedPool(t)
	rec := startRecorder(t, testConfig(t), pool, fsStore(t))
	start := time.Now().Add(-time.Minute).Truncate(time.Second)
	f := newFeeder(t, "cam-b", start, false)
	if err := rec.Record(Camera{ID: "cam-b", Facility: "f16", Stream: f.stream}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the pipeline to attach", func() bool { return f.stream.Readers() == 1 })
	f.online()
	f.frames(6 * synth.FPS)
	// Overload: the reader lost units; the event carries the same tracks.
	f.cam.SkipFrames(2 * synth.FPS)
	f.stream.PublishEvent(&ingest.Event{Reason: ingest.ReasonWriterOverload, Detail: "recorder queue overflow", At: time.Now(), Tracks: f.cam.Tracks})
	f.frames(10 * synth.FPS)
	// A timestamp jump without an event: the segmenter ends the run.
	f.cam.SkipFrames(60 * 60 * synth.FPS)
	f.cam.Start = f.cam.Start.Add(-60 * time.Minute).Add(time.Second) // wall time continues 1 s later
	f.frames(60*60*synth.FPS + 14*synth.FPS)
	f.stream.PublishEvent(&ingest.Event{Reason: ingest.ReasonDisabled, Detail: "camera disabled", At: time.Now()})
	rec.waitOpenGap(t, "cam-b", index.ReasonDisabled, start, 20*time.Second)
	spans := coverage(t, rec.Index(), "cam-b", time.Now())
	assertContiguous(t, spans)
	var reasons []string
	for _, s := range spans {
		if s.what != "segment" {
			reasons = append(reasons, fmt.Sprintf("%s %.1fs", s.what, s.end.Sub(s.start).Seconds()))
		}
	}
	if len(reasons) != 3 || reasons[0] != "writer_overload 2.0s" || reasons[1] != "discontinuity 1.0s" || reasons[2][:8] != "disabled" {
		t.Fatalf("gaps %v", reasons)
	}
	segs, _ := rec.Index().Segments(context.Background(), "cam-b", start, time.Now().Add(time.Hour))
	runs := map[uint64]bool{}
	for _, s := range segs {
		runs[s.Run] = true
	}
	if len(runs) != 3 {
		t.Fatalf("%d runs, want 3 (start, after overload, after jump)", len(runs))
	}
}

func TestSpoolFullStopsRecordingVisiblyAndResumes(t *testing.T) {
	t.Parallel()
	pool := migratedPool(t)
	flaky := &flakyStore{ObjectStore: fsStore(t)}
	flaky.setDown(true)
	cfg := testConfig(t)
	cfg.SpoolQuota = 250 << 10
	rec := startRecorder(t, cfg, pool, flaky)
	start := time.Now().Add(-time.Minute).Truncate(time.Second)
	f := newFeeder(t, "cam-c", start, false)
	if err := rec.Record(Camera{ID: "cam-c", Facility: "f16", Stream: f.stream}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the pipeline to attach", func() bool { return f.stream.Readers() == 1 })
	f.online()
	f.frames(20 * synth.FPS) // ~16 KB/s: more than the quota holds
	waitFor(t, 5*time.Second, "spool full", func() bool { return len(rec.Health().SpoolFull) == 1 })
	if err := rec.Ready(context.Background()); err == nil {
		t.Fatal("ready while the spool is full")
	}
	if used := rec.spool.Used(); used > cfg.SpoolQuota {
		t.Fatalf("spool holds %d bytes, quota %d", used, cfg.SpoolQuota)
	}
	// Nothing recorded was deleted to make room.
	es, _ := rec.spool.Entries()
	var recorded int
	for _, e := range es {
		recorded += e.Meta.Frames
	}
	if recorded < 5*synth.FPS {
		t.Fatalf("only %d frames kept in the spool", recorded)
	}
	flaky.setDown(false)
	rec.drained(t, 10*time.Second)
	waitFor(t, 5*time.Second, "resume", func() bool {
		f.frames(f.cam.Frame() + synth.FPS)
		return len(rec.Health().SpoolFull) == 0
	})
	f.frames(f.cam.Frame() + 5*synth.FPS)
	f.offline(time.Now())
	rec.waitOpenGap(t, "cam-c", index.ReasonCameraOffline, start, 20*time.Second)
	spans := coverage(t, rec.Index(), "cam-c", time.Now())
	assertContiguous(t, spans)
	full := 0
	for _, s := range spans {
		if s.what == index.ReasonSpoolFull {
			full++
		}
	}
	if full != 1 {
		t.Fatalf("%d spool_full gaps: %+v", full, spans)
	}
}

func TestStoreOutageKeepsRecordingAndCatchesUp(t *testing.T) {
	t.Parallel()
	pool := migratedPool(t)
	flaky := &flakyStore{ObjectStore: fsStore(t)}
	rec := startRecorder(t, testConfig(t), pool, flaky)
	start := time.Now().Add(-time.Minute).Truncate(time.Second)
	f := newFeeder(t, "cam-d", start, false)
	if err := rec.Record(Camera{ID: "cam-d", Facility: "f16", Stream: f.stream}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the pipeline to attach", func() bool { return f.stream.Readers() == 1 })
	f.online()
	f.frames(5 * synth.FPS)
	flaky.setDown(true)
	f.frames(25 * synth.FPS)
	waitFor(t, 5*time.Second, "a backlog", func() bool { return rec.Health().UploadBacklog >= 3 })
	h := rec.Health()
	if h.StoreUp {
		t.Fatal("health says the store is up")
	}
	if err := rec.Ready(context.Background()); err != nil {
		t.Logf("ready while store down answers via ping: %v", err) // fs ping works: the outage is in Put only
	}
	flaky.setDown(false)
	f.offline(time.Now())
	rec.waitOpenGap(t, "cam-d", index.ReasonCameraOffline, start, 20*time.Second)
	segs, _ := rec.Index().Segments(context.Background(), "cam-d", start, time.Now().Add(time.Hour))
	next := int64(0)
	for _, s := range segs {
		for _, n := range objectFrames(t, flaky, s.ObjectKey) {
			if n != next {
				t.Fatalf("frame %d, want %d", n, next)
			}
			next++
		}
	}
	if next != 25*synth.FPS || !rec.Health().StoreUp {
		t.Fatalf("recorded %d frames, store up %v", next, rec.Health().StoreUp)
	}
}

func TestRestartRecoversPartialSegmentAndMarksRecorderDown(t *testing.T) {
	t.Parallel()
	pool, px := proxiedPool(t)
	st := fsStore(t)
	flaky := &flakyStore{ObjectStore: st}
	cfg := testConfig(t)
	cfg.SegmentDuration = time.Minute
	rec := startRecorder(t, cfg, pool, flaky)
	start := time.Now().Add(-2 * time.Minute).Truncate(time.Second)
	f := newFeeder(t, "cam-e", start, true)
	if err := rec.Record(Camera{ID: "cam-e", Facility: "f16", Stream: f.stream}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the pipeline to attach", func() bool { return f.stream.Readers() == 1 })
	f.online()
	f.frames(10*synth.FPS + 7) // mid-segment, mid-fragment
	waitFor(t, 5*time.Second, "data in the spool", func() bool {
		es, _ := rec.spool.Entries()
		return len(es) == 1 && es[0].Size > 50<<10
	})
	// Simulate a crash: cut the recorder off PostgreSQL and the store,
	// copy the spool as it is now (open segment file, state, journal),
	// then stop it; its copy of the spool is what a crash leaves.
	px.setCut(true)
	flaky.setDown(true)
	crashed := t.TempDir()
	if err := os.CopyFS(crashed, os.DirFS(cfg.SpoolDir)); err != nil {
		t.Fatal(err)
	}
	// Add a torn half-fragment at the end of the open file, as a crash
	// during a write leaves.
	es, _ := spoolEntries(t, crashed)
	fh, _ := os.OpenFile(es[0].Path, os.O_APPEND|os.O_WRONLY, 0)
	fh.Write([]byte{0, 0, 1, 0, 'm', 'o', 'o', 'f', 1, 2, 3})
	fh.Close()
	rec.stop(t)
	px.setCut(false)

	cfg2 := cfg
	cfg2.SpoolDir = crashed
	rec2 := startRecorder(t, cfg2, pool, st)
	f2 := newFeeder(t, "cam-e", start, true)
	f2.cam.SkipFrames(15 * synth.FPS) // the camera went on while the recorder was down
	if err := rec2.Record(Camera{ID: "cam-e", Facility: "f16", Stream: f2.stream}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the pipeline to attach", func() bool { return f2.stream.Readers() == 1 })
	f2.online()
	f2.frames(20 * synth.FPS)
	f2.offline(time.Now())
	rec2.waitOpenGap(t, "cam-e", index.ReasonCameraOffline, start, 20*time.Second)
	segs, _ := rec2.Index().Segments(context.Background(), "cam-e", start, time.Now().Add(time.Hour))
	var frames []int64
	for _, s := range segs {
		frames = append(frames, objectFrames(t, st, s.ObjectKey)...)
	}
	// The recovered segment holds the complete fragments: 10 s at least.
	last := int64(-1)
	for i, n := range frames {
		if n == 15*synth.FPS {
			last = frames[i-1]
			break
		}
		if n != int64(i) {
			t.Fatalf("frame %d at %d", n, i)
		}
	}
	if last < 10*synth.FPS-1 {
		t.Fatalf("recovered up to frame %d, want at least %d", last, 10*synth.FPS-1)
	}
	spans := coverage(t, rec2.Index(), "cam-e", time.Now())
	assertContiguous(t, spans)
	var down []span
	for _, s := range spans {
		if s.what == index.ReasonRecorderDown {
			down = append(down, s)
		}
	}
	if len(down) != 1 {
		t.Fatalf("recorder_down gaps: %+v", spans)
	}
	wantDown := time.Duration(15*synth.FPS-1-last) * time.Second / synth.FPS
	if d := down[0].end.Sub(down[0].start); d < wantDown-50*time.Millisecond || d > wantDown+50*time.Millisecond {
		t.Fatalf("recorder_down lasts %s, want %s", d, wantDown)
	}
	if rep, err := rec2.VerifyChain(context.Background(), "cam-e", time.Time{}, time.Time{}); err != nil || !rep.OK() {
		t.Fatalf("chain after recovery: %+v %v", rep, err)
	}
}

func spoolEntries(t testing.TB, dir string) ([]spool.Entry, error) {
	t.Helper()
	sp, err := spool.Open(spool.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return sp.Entries()
}

func TestRecoveryQuarantinesUnusableFiles(t *testing.T) {
	t.Parallel()
	pool := migratedPool(t)
	cfg := testConfig(t)
	sp, err := spool.Open(spool.Config{Dir: cfg.SpoolDir})
	if err != nil {
		t.Fatal(err)
	}
	// A segment file with garbage instead of an init section.
	f, err := sp.Create(spool.Meta{Camera: "cam-q", Facility: "f16", Run: 1, Start: time.Now(), Codec: "H264"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("this is not an mp4 file"))
	f.Flush(time.Now().Add(time.Hour))
	rec := startRecorder(t, cfg, pool, fsStore(t))
	waitFor(t, 5*time.Second, "recovery", func() bool { return rec.Health().Recovered })
	if es, _ := rec.spool.Entries(); len(es) != 0 {
		t.Fatalf("unusable file still queued: %+v", es)
	}
	damaged, _ := filepath.Glob(filepath.Join(cfg.SpoolDir, "damaged", "cam-q", "*.mp4"))
	if len(damaged) != 1 {
		t.Fatalf("damaged files: %v", damaged)
	}
}

func TestRecordRefusesBadIDs(t *testing.T) {
	rec, err := New(testConfig(t), Deps{Pool: migratedPool(t), Store: fsStore(t)})
	if err != nil {
		t.Fatal(err)
	}
	s := ingest.NewStream(ingest.StreamConfig{Camera: "x"}, nil, nil)
	for _, c := range []Camera{
		{ID: "bad id", Facility: "f16", Stream: s},
		{ID: "ok", Facility: "F16", Stream: s},
		{ID: "ok", Facility: "f16"},
	} {
		if err := rec.Record(c); err == nil {
			t.Errorf("Record(%+v) accepted", c)
		}
	}
	if _, err := New(Config{}, Deps{}); err == nil {
		t.Error("New without spool dir accepted")
	}
}
