package recorder

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/kuzet/kuzet/internal/testenv"
	"github.com/kuzet/kuzet/recorder/index"
	"github.com/kuzet/kuzet/recorder/internal/synth"
	"github.com/kuzet/kuzet/recorder/store"
)

// recordOld records 30 s of a synthetic camera that started at start and
// returns its segments once indexed.
func recordOld(t *testing.T, rec *running, camera string, start time.Time) []index.Segment {
	t.Helper()
	f := newFeeder(t, camera, start, false)
	if err := rec.Record(Camera{ID: camera, Facility: "f27", Stream: f.stream}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the pipeline to attach", func() bool { return f.stream.Readers() == 1 })
	f.online()
	f.frames(30 * synth.FPS)
	f.offline(start.Add(30 * time.Second))
	rec.waitOpenGap(t, camera, index.ReasonCameraOffline, start.Add(29*time.Second), 20*time.Second)
	segs, err := rec.Index().Segments(context.Background(), camera, start, start.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(segs) < 5 {
		t.Fatalf("only %d segments", len(segs))
	}
	return segs
}

func TestRetentionDeletesExpiredKeepsHeldAndChainStaysVerifiable(t *testing.T) {
	t.Parallel()
	pool := migratedPool(t)
	dir := t.TempDir()
	st, err := store.NewFS(store.FSConfig{Dir: dir}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rec := startRecorder(t, testConfig(t), pool, st)
	ctx := context.Background()
	start := time.Now().Add(-40 * 24 * time.Hour).Truncate(time.Second)
	segs := recordOld(t, rec, "cam-r", start)
	held := segs[2]
	// Hold part of segment 2 only: the whole segment is kept.
	if err := rec.PlaceHold(ctx, "cam-r", held.Start.Add(time.Second), held.Start.Add(2*time.Second), "incident 4711", 4711); err != nil {
		t.Fatal(err)
	}
	if ok, err := st.Held(ctx, held.ObjectKey); err != nil || !ok {
		t.Fatalf("store hold on %s: %v %v", held.ObjectKey, ok, err)
	}
	n, err := rec.ApplyRetention(ctx)
	if err != nil || n != len(segs)-1 {
		t.Fatalf("retention deleted %d of %d: %v", n, len(segs), err)
	}
	for _, s := range segs {
		_, err := st.Stat(ctx, s.ObjectKey)
		if s.ID == held.ID {
			if err != nil {
				t.Fatalf("held segment deleted: %v", err)
			}
		} else if !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("expired segment %s still stored: %v", s.ObjectKey, err)
		}
	}
	tl, err := rec.Index().Timeline(ctx, "cam-r", start, start.Add(time.Hour))
	if err != nil || len(tl.Segments) != 1 || len(tl.Tombstones) != len(segs)-1 {
		t.Fatalf("timeline after retention: %d segments %d tombstones %v", len(tl.Segments), len(tl.Tombstones), err)
	}
	rep, err := rec.VerifyChain(ctx, "cam-r", time.Time{}, time.Time{})
	if err != nil || !rep.OK() || rep.Tombstones != len(segs)-1 || rep.Segments != 1 {
		t.Fatalf("chain across tombstones: %+v %v", rep, err)
	}
	// A second pass has nothing to do.
	if n, err := rec.ApplyRetention(ctx); err != nil || n != 0 {
		t.Fatalf("second pass deleted %d: %v", n, err)
	}
	// Releasing the hold lifts the store hold; the next pass deletes it.
	if err := rec.ReleaseIncidentHolds(ctx, 4711, "incident closed"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := st.Held(ctx, held.ObjectKey); ok {
		t.Fatal("store hold not lifted")
	}
	if n, err := rec.ApplyRetention(ctx); err != nil || n != 1 {
		t.Fatalf("after release deleted %d: %v", n, err)
	}
	// Fresh footage is untouched.
	recent := recordOld(t, rec, "cam-s", time.Now().Add(-time.Hour).Truncate(time.Second))
	if n, err := rec.ApplyRetention(ctx); err != nil || n != 0 {
		t.Fatalf("recent footage deleted: %d %v", n, err)
	}
	// Per-camera retention shorter than the footage's age expires it.
	if err := rec.SetRetention(ctx, "cam-s", 1); err != nil {
		t.Fatal(err)
	}
	if n, err := rec.ApplyRetention(ctx); err != nil || n != 0 {
		t.Fatalf("1-day retention deleted hour-old footage: %d %v", n, err)
	}
	_ = recent
}

func TestHoldWithObjectLockRefusesS3Delete(t *testing.T) {
	t.Parallel()
	mc := testenv.StartMinIO(t)
	st, err := store.NewS3(store.S3Config{Endpoint: mc.Endpoint, Bucket: mc.Bucket, AccessKey: mc.AccessKey, SecretKey: mc.SecretKey}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	pool := migratedPool(t)
	rec := startRecorder(t, testConfig(t), pool, st)
	ctx := context.Background()
	start := time.Now().Add(-40 * 24 * time.Hour).Truncate(time.Second)
	f := newFeeder(t, "cam-h", start, false)
	if err := rec.Record(Camera{ID: "cam-h", Facility: "f47", Stream: f.stream}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the pipeline to attach", func() bool { return f.stream.Readers() == 1 })
	f.online()
	f.frames(12 * synth.FPS)
	waitFor(t, 20*time.Second, "two segments indexed", func() bool {
		segs, _ := rec.Index().Segments(ctx, "cam-h", start, start.Add(time.Hour))
		return len(segs) >= 2
	})
	// Hold everything from the start, including what is recorded later.
	if err := rec.PlaceHold(ctx, "cam-h", start, start.Add(time.Hour), "incident 9", 9); err != nil {
		t.Fatal(err)
	}
	f.frames(24 * synth.FPS)
	f.offline(start.Add(24 * time.Second))
	rec.waitOpenGap(t, "cam-h", index.ReasonCameraOffline, start.Add(23*time.Second), 30*time.Second)
	segs, _ := rec.Index().Segments(ctx, "cam-h", start, start.Add(time.Hour))
	if len(segs) < 4 {
		t.Fatalf("%d segments", len(segs))
	}
	// Segments written after the hold get the store's legal hold too.
	waitFor(t, 10*time.Second, "legal holds on every object", func() bool {
		segs, _ := rec.Index().Segments(ctx, "cam-h", start, start.Add(time.Hour))
		for _, s := range segs {
			if !s.LegalHold {
				return false
			}
		}
		return true
	})
	raw := mc.Client(t)
	for _, s := range segs {
		oi, err := raw.StatObject(ctx, mc.Bucket, s.ObjectKey, minio.StatObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		lh, err := raw.GetObjectLegalHold(ctx, mc.Bucket, s.ObjectKey, minio.GetObjectLegalHoldOptions{VersionID: oi.VersionID})
		if err != nil || lh == nil || *lh != minio.LegalHoldEnabled {
			t.Fatalf("%s: legal hold %v %v", s.ObjectKey, lh, err)
		}
		// Not even the storage administrator can delete the version.
		err = raw.RemoveObject(ctx, mc.Bucket, s.ObjectKey, minio.RemoveObjectOptions{VersionID: oi.VersionID})
		if err == nil {
			t.Fatalf("S3 DELETE of held %s succeeded", s.ObjectKey)
		}
		t.Logf("S3 DELETE of %s refused: %v", s.ObjectKey, err)
	}
	if n, err := rec.ApplyRetention(ctx); err != nil || n != 0 {
		t.Fatalf("retention deleted %d held segments: %v", n, err)
	}
	if err := rec.ReleaseHold(ctx, "cam-h", start, start.Add(time.Hour), 9, "released"); err != nil {
		t.Fatal(err)
	}
	n, err := rec.ApplyRetention(ctx)
	if err != nil || n != len(segs) {
		t.Fatalf("after release retention deleted %d of %d: %v", n, len(segs), err)
	}
	for _, s := range segs {
		if _, err := st.Stat(ctx, s.ObjectKey); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("%s still stored: %v", s.ObjectKey, err)
		}
	}
	if rep, err := rec.VerifyChain(ctx, "cam-h", time.Time{}, time.Time{}); err != nil || !rep.OK() {
		t.Fatalf("chain: %+v %v", rep, err)
	}
}

func TestVerifyChainNamesTampering(t *testing.T) {
	t.Parallel()
	pool := migratedPool(t)
	dir := t.TempDir()
	st, err := store.NewFS(store.FSConfig{Dir: dir}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rec := startRecorder(t, testConfig(t), pool, st)
	ctx := context.Background()
	start := time.Now().Add(-time.Hour).Truncate(time.Second)
	segs := recordOld(t, rec, "cam-v", start)
	if rep, err := rec.VerifyChain(ctx, "cam-v", time.Time{}, time.Time{}); err != nil || !rep.OK() || rep.Segments != len(segs) {
		t.Fatalf("untouched chain: %+v %v", rep, err)
	}

	t.Run("one byte of an object", func(t *testing.T) {
		victim := segs[2]
		path := filepath.Join(dir, filepath.FromSlash(victim.ObjectKey))
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		orig := append([]byte(nil), b...)
		b[len(b)/2] ^= 0x01
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		defer os.WriteFile(path, orig, 0o644)
		rep, err := rec.VerifyChain(ctx, "cam-v", time.Time{}, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		first, ok := rep.First()
		if !ok || first.Kind != ProblemAlteredObject || first.SegmentID != victim.ID || first.ObjectKey != victim.ObjectKey {
			t.Fatalf("first problem %+v, want altered object %d", first, victim.ID)
		}
		t.Logf("named: %s", first)
	})
	t.Run("object deleted", func(t *testing.T) {
		victim := segs[1]
		path := filepath.Join(dir, filepath.FromSlash(victim.ObjectKey))
		b, _ := os.ReadFile(path)
		os.Remove(path)
		defer os.WriteFile(path, b, 0o644)
		rep, _ := rec.VerifyChain(ctx, "cam-v", time.Time{}, time.Time{})
		if first, ok := rep.First(); !ok || first.Kind != ProblemMissingObject || first.SegmentID != victim.ID {
			t.Fatalf("first problem %+v", first)
		}
	})
	t.Run("row altered", func(t *testing.T) {
		// Move the last segment's start by a millisecond (moving an end
		// into the next segment is refused by the exclusion constraint).
		last := segs[len(segs)-1]
		if _, err := pool.Exec(ctx, `UPDATE recorder_segments SET start_at = start_at + interval '1 millisecond' WHERE id = $1`, last.ID); err != nil {
			t.Fatal(err)
		}
		defer pool.Exec(ctx, `UPDATE recorder_segments SET start_at = start_at - interval '1 millisecond' WHERE id = $1`, last.ID)
		rep, _ := rec.VerifyChain(ctx, "cam-v", time.Time{}, time.Time{})
		if first, ok := rep.First(); !ok || first.Kind != ProblemAlteredRow || first.SegmentID != last.ID {
			t.Fatalf("first problem %+v", first)
		}
	})
	t.Run("row deleted", func(t *testing.T) {
		victim := segs[2]
		if _, err := pool.Exec(ctx, `DELETE FROM recorder_segments WHERE id = $1`, victim.ID); err != nil {
			t.Fatal(err)
		}
		rep, err := rec.VerifyChain(ctx, "cam-v", time.Time{}, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		first, ok := rep.First()
		if !ok || first.Kind != ProblemMissingSegment || first.SegmentID != segs[3].ID {
			t.Fatalf("first problem %+v, want missing segment before %d", first, segs[3].ID)
		}
		t.Logf("named: %s", first)
		// The orphan check sees the object without a row.
		orphans, err := CheckOrphans(ctx, rec.Index(), st, "f27", "cam-v", nil)
		if err != nil || len(orphans) != 1 || orphans[0].Kind != OrphanUnindexed || orphans[0].Key != victim.ObjectKey {
			t.Fatalf("orphans %+v %v", orphans, err)
		}
	})
	t.Run("last row deleted", func(t *testing.T) {
		last := segs[len(segs)-1]
		if _, err := pool.Exec(ctx, `DELETE FROM recorder_segments WHERE id = $1`, last.ID); err != nil {
			t.Fatal(err)
		}
		rep, _ := rec.VerifyChain(ctx, "cam-v", segs[3].Start, time.Time{})
		first, ok := rep.First()
		if !ok || first.Kind != ProblemMissingSegment || first.SegmentID != segs[len(segs)-2].ID {
			t.Fatalf("first problem %+v", first)
		}
	})
}

func TestPostgresOutageJournalsAndCatchesUp(t *testing.T) {
	t.Parallel()
	pool, px := proxiedPool(t)
	st := fsStore(t)
	rec := startRecorder(t, testConfig(t), pool, st)
	start := time.Now().Add(-time.Minute).Truncate(time.Second)
	f := newFeeder(t, "cam-p", start, false)
	if err := rec.Record(Camera{ID: "cam-p", Facility: "f16", Stream: f.stream}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the pipeline to attach", func() bool { return f.stream.Readers() == 1 })
	f.online()
	f.frames(5 * synth.FPS)
	px.setCut(true)
	f.frames(25 * synth.FPS)
	waitFor(t, 10*time.Second, "journal backlog", func() bool { return rec.Health().JournalBacklog >= 3 && !rec.Health().IndexUp })
	if err := rec.Ready(context.Background()); err == nil {
		t.Fatal("ready while PostgreSQL is cut off")
	}
	// The spool does not keep what is uploaded: the journal holds the rows.
	if es, _ := rec.spool.Entries(); len(es) > 1 {
		t.Fatalf("%d spool files while only the index is down", len(es))
	}
	// Uploaded but not indexed is still lagging.
	waitFor(t, 10*time.Second, "uploads", func() bool { return rec.Health().UploadBacklog == 0 })
	if h := rec.Health(); h.RecordingLag < 20*time.Second {
		t.Fatalf("lag %s with %d index changes journaled", h.RecordingLag, h.JournalBacklog)
	}
	px.setCut(false)
	f.offline(time.Now())
	rec.waitOpenGap(t, "cam-p", index.ReasonCameraOffline, start, 30*time.Second)
	segs, _ := rec.Index().Segments(context.Background(), "cam-p", start, time.Now().Add(time.Hour))
	next := int64(0)
	for _, s := range segs {
		for _, n := range objectFrames(t, st, s.ObjectKey) {
			if n != next {
				t.Fatalf("frame %d, want %d", n, next)
			}
			next++
		}
	}
	if next != 25*synth.FPS {
		t.Fatalf("indexed %d frames of %d", next, 25*synth.FPS)
	}
	if err := rec.Ready(context.Background()); err != nil {
		t.Fatalf("not ready after PostgreSQL returned: %v", err)
	}
	if h := rec.Health(); h.RecordingLag != 0 {
		t.Fatalf("lag %s once everything is indexed", h.RecordingLag)
	}
}
