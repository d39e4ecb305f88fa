package index

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/kuzet/kuzet/internal/migrate"
	"github.com/kuzet/kuzet/internal/testenv"
)

func newIndex(t *testing.T) *Index {
	t.Helper()
	pool := testenv.Postgres(t)
	if _, err := migrate.Apply(context.Background(), pool, Migrations); err != nil {
		t.Fatal(err)
	}
	ix, err := New(pool)
	if err != nil {
		t.Fatal(err)
	}
	return ix
}

var t0 = time.Date(2026, 11, 21, 15, 0, 0, 0, time.UTC)

func seg(camera string, seq int, start, end time.Time) Segment {
	return Segment{
		Camera: camera, Facility: "f16", Run: 1, Seq: uint64(seq), Start: start, End: end,
		MediaStart: int64(seq) * 900000, MediaDuration: int64(end.Sub(start) / (time.Second / 90000)),
		WallDuration: end.Sub(start), Bytes: 1000, Frames: 250, Codec: "H264", Width: 640, Height: 360,
		InitSize: 700, Fragments: []byte{1, 2, 3},
		ObjectKey: fmt.Sprintf("f16/%s/2026/11/21/15/%d.mp4", camera, seq),
		SHA256:    sha256.Sum256([]byte(fmt.Sprint(camera, seq))),
	}
}

func TestChainHashEncoding(t *testing.T) {
	// The encoding documented in doc.go, spelled out byte by byte.
	var prev, sum Hash
	prev[0], sum[31] = 0xaa, 0xbb
	start := time.Date(2026, 1, 2, 3, 4, 5, 678901234, time.UTC) // truncated to .678901
	end := start.Add(10 * time.Second)
	msg := append(append(append([]byte{}, prev[:]...), sum[:]...), 5)
	msg = append(msg, "cam-1"...)
	msg = append(msg, 0x00, 0x06, 0x47, 0x5e, 0xf6, 0x57, 0x4f, 0x35) // 1767323045678901 µs
	msg = append(msg, 0x00, 0x06, 0x47, 0x5e, 0xf6, 0xef, 0xe5, 0xb5) // +10 s
	want := sha256.Sum256(msg)
	if got := ChainHash(prev, sum, "cam-1", start, end); got != want {
		t.Fatalf("ChainHash = %s, want %s", hex.EncodeToString(got[:]), hex.EncodeToString(want[:]))
	}
}

func TestInsertSegmentChainsAndIsIdempotent(t *testing.T) {
	ix := newIndex(t)
	ctx := context.Background()
	var prev Hash
	for i := range 3 {
		s := seg("cam1", i, t0.Add(time.Duration(i)*10*time.Second), t0.Add(time.Duration(i+1)*10*time.Second))
		ins, err := ix.InsertSegment(ctx, &s)
		if err != nil || !ins {
			t.Fatalf("insert %d: inserted=%v err=%v", i, ins, err)
		}
		if s.PrevChain != prev {
			t.Fatalf("segment %d prev_chain is not the previous chain", i)
		}
		if s.Chain != ChainHash(prev, s.SHA256, "cam1", s.Start, s.End) {
			t.Fatalf("segment %d chain mismatch", i)
		}
		prev = s.Chain
		// Replaying the same insert changes nothing.
		again := seg("cam1", i, s.Start, s.End)
		ins, err = ix.InsertSegment(ctx, &again)
		if err != nil || ins || again.Chain != s.Chain || again.ID != s.ID {
			t.Fatalf("replay %d: inserted=%v err=%v chain equal=%v", i, ins, err, again.Chain == s.Chain)
		}
	}
	head, n, ok, err := ix.ChainHead(ctx, "cam1")
	if err != nil || !ok || n != 3 || head != prev {
		t.Fatalf("head: n=%d ok=%v err=%v match=%v", n, ok, err, head == prev)
	}
	got, err := ix.Segments(ctx, "cam1", t0.Add(5*time.Second), t0.Add(15*time.Second))
	if err != nil || len(got) != 2 || got[0].Seq != 0 || got[1].Seq != 1 {
		t.Fatalf("segments in range: %+v %v", got, err)
	}
	if got[1].Width != 640 || got[1].Codec != "H264" || got[1].WallDuration != 10*time.Second || string(got[1].Fragments) != "\x01\x02\x03" {
		t.Fatalf("row did not round-trip: %+v", got[1])
	}
}

func TestInsertSegmentRefusals(t *testing.T) {
	ix := newIndex(t)
	ctx := context.Background()
	first := seg("cam1", 0, t0, t0.Add(10*time.Second))
	if _, err := ix.InsertSegment(ctx, &first); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		s    Segment
	}{
		{"overlap", seg("cam1", 1, t0.Add(9*time.Second), t0.Add(19*time.Second))},
		{"empty range", seg("cam1", 2, t0.Add(30*time.Second), t0.Add(30*time.Second))},
		{"bad camera", seg("cam 1", 3, t0.Add(40*time.Second), t0.Add(50*time.Second))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ix.InsertSegment(ctx, &tc.s)
			if err == nil || !IsPermanent(err) {
				t.Fatalf("want a permanent refusal, got %v", err)
			}
		})
	}
	// The same range on another camera is fine.
	other := seg("cam2", 0, t0, t0.Add(10*time.Second))
	if _, err := ix.InsertSegment(ctx, &other); err != nil {
		t.Fatal(err)
	}
}

func TestGapsAndCameraState(t *testing.T) {
	ix := newIndex(t)
	ctx := context.Background()
	s := seg("cam1", 0, t0, t0.Add(10*time.Second))
	if _, err := ix.InsertSegment(ctx, &s); err != nil {
		t.Fatal(err)
	}
	if err := ix.OpenGap(ctx, Gap{Camera: "cam1", Start: s.End, Reason: ReasonCameraOffline, Detail: "timeout"}); err != nil {
		t.Fatal(err)
	}
	// Idempotent.
	if err := ix.OpenGap(ctx, Gap{Camera: "cam1", Start: s.End, Reason: ReasonCameraOffline}); err != nil {
		t.Fatal(err)
	}
	st, err := ix.CameraState(ctx, "cam1")
	if err != nil || st.OpenGap == nil || !st.OpenGap.Start.Equal(s.End) || !st.LastEnd.Equal(s.End) || st.MaxRun != 1 {
		t.Fatalf("state with open gap: %+v %v", st, err)
	}
	if err := ix.OpenGap(ctx, Gap{Camera: "cam1", Start: s.End.Add(time.Second), Reason: ReasonSpoolFull}); err == nil || !IsPermanent(err) {
		t.Fatalf("a gap overlapping an open gap must be refused, got %v", err)
	}
	if err := ix.CloseGap(ctx, "cam1", s.End, s.End.Add(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := ix.OpenGap(ctx, Gap{Camera: "cam1", Start: s.End.Add(5 * time.Second), End: s.End.Add(6 * time.Second), Reason: "bogus"}); err == nil {
		t.Fatal("bad reason accepted")
	}
	gaps, err := ix.Gaps(ctx, "cam1", t0, t0.Add(time.Hour))
	if err != nil || len(gaps) != 1 || !gaps[0].End.Equal(s.End.Add(5*time.Second)) || gaps[0].Detail != "timeout" {
		t.Fatalf("gaps: %+v %v", gaps, err)
	}
	// Closing a gap at its start removes it.
	if err := ix.OpenGap(ctx, Gap{Camera: "cam1", Start: t0.Add(time.Hour), Reason: ReasonDisabled}); err != nil {
		t.Fatal(err)
	}
	if err := ix.CloseGap(ctx, "cam1", t0.Add(time.Hour), t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	tl, err := ix.Timeline(ctx, "cam1", t0, t0.Add(2*time.Hour))
	if err != nil || len(tl.Segments) != 1 || len(tl.Gaps) != 1 || !tl.IndexedUntil.Equal(s.End.Add(5*time.Second)) {
		t.Fatalf("timeline: %+v %v", tl, err)
	}
	st, err = ix.CameraState(ctx, "nobody")
	if err != nil || st.HasRows {
		t.Fatalf("unknown camera: %+v %v", st, err)
	}
}

func TestRetentionHoldsAndTombstones(t *testing.T) {
	ix := newIndex(t)
	ctx := context.Background()
	now := t0.Add(40 * 24 * time.Hour)
	var segs []Segment
	for i := range 4 {
		s := seg("cam1", i, t0.Add(time.Duration(i)*time.Minute), t0.Add(time.Duration(i+1)*time.Minute))
		if _, err := ix.InsertSegment(ctx, &s); err != nil {
			t.Fatal(err)
		}
		segs = append(segs, s)
	}
	// A hold on segment 1; cam1 keeps the default retention (31 days).
	hid, err := ix.PlaceHold(ctx, Hold{Camera: "cam1", Start: segs[1].Start.Add(time.Second), End: segs[1].End, Reason: "incident 7", IncidentID: 7})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ix.PlaceHold(ctx, Hold{Camera: "cam1", Start: t0, End: t0.Add(time.Hour), Reason: " "}); err == nil {
		t.Fatal("a hold without reason was accepted")
	}
	todo, err := ix.HoldsToApply(ctx, "", 10)
	if err != nil || len(todo) != 1 || todo[0].SegmentID != segs[1].ID || !todo[0].On {
		t.Fatalf("holds to apply: %+v %v", todo, err)
	}
	if err := ix.SetLegalHold(ctx, segs[1].ID, true); err != nil {
		t.Fatal(err)
	}
	if todo, _ := ix.HoldsToApply(ctx, "cam1", 10); len(todo) != 0 {
		t.Fatalf("nothing left to apply, got %+v", todo)
	}
	exp, err := ix.Expired(ctx, now, 31, 10)
	if err != nil || len(exp) != 3 {
		t.Fatalf("expired: %d %v", len(exp), err)
	}
	for _, s := range exp {
		if s.ID == segs[1].ID {
			t.Fatal("held segment listed as expired")
		}
	}
	// A camera setting of 60 days keeps everything.
	if err := ix.SetRetention(ctx, "cam1", 60); err != nil {
		t.Fatal(err)
	}
	if exp, _ := ix.Expired(ctx, now, 31, 10); len(exp) != 0 {
		t.Fatalf("with 60 days retention nothing expires, got %d", len(exp))
	}
	if err := ix.SetRetention(ctx, "cam1", 0); err != nil {
		t.Fatal(err)
	}
	// Delete segment 0: mark, remove object, tombstone.
	var removed []string
	if err := ix.MarkDeleting(ctx, segs[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := ix.DeleteSegment(ctx, segs[0].ID, "retention", func(k string) error { removed = append(removed, k); return nil }); err != nil {
		t.Fatal(err)
	}
	// A failing object removal leaves the row marked.
	boom := errors.New("store down")
	if err := ix.MarkDeleting(ctx, segs[2].ID); err != nil {
		t.Fatal(err)
	}
	if err := ix.DeleteSegment(ctx, segs[2].ID, "retention", func(string) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("want store error, got %v", err)
	}
	// The held segment refuses deletion even when asked directly.
	if err := ix.MarkDeleting(ctx, segs[1].ID); err != nil {
		t.Fatal(err)
	}
	if err := ix.DeleteSegment(ctx, segs[1].ID, "retention", func(string) error { t.Error("held object removed"); return nil }); !errors.Is(err, ErrHeld) {
		t.Fatalf("want ErrHeld, got %v", err)
	}
	if len(removed) != 1 || removed[0] != segs[0].ObjectKey {
		t.Fatalf("removed %v", removed)
	}
	entries, err := ix.ChainEntries(ctx, "cam1", t0, now)
	if err != nil || len(entries) != 4 || !entries[0].Tombstone || entries[0].Chain != segs[0].Chain || entries[1].Tombstone {
		t.Fatalf("chain entries: %+v %v", entries, err)
	}
	all, _ := ix.Segments(ctx, "cam1", t0, now)
	if len(all) != 3 || all[0].Deleting || !all[1].Deleting {
		t.Fatalf("after deletions: %+v", all)
	}
	// Re-inserting the tombstoned key is a no-op, not a new chain link.
	again := segs[0]
	if ins, err := ix.InsertSegment(ctx, &again); err != nil || ins {
		t.Fatalf("re-insert of a deleted segment: inserted=%v err=%v", ins, err)
	}
	// Releasing the hold makes segment 1 expire and asks to release it in the store.
	if n, err := ix.ReleaseIncidentHolds(ctx, 7, "closed"); err != nil || n != 1 {
		t.Fatalf("release: %d %v", n, err)
	}
	todo, _ = ix.HoldsToApply(ctx, "", 10)
	if len(todo) != 1 || todo[0].On || todo[0].SegmentID != segs[1].ID {
		t.Fatalf("release to apply: %+v", todo)
	}
	if ok, err := ix.ReleaseHold(ctx, hid, "again"); err != nil || ok {
		t.Fatalf("double release: %v %v", ok, err)
	}
	objs, err := ix.Objects(ctx, "cam1")
	if err != nil || len(objs) != 4 || !objs[0].Tombstone {
		t.Fatalf("objects: %+v %v", objs, err)
	}
}

func TestReleaseHoldsByRange(t *testing.T) {
	ix := newIndex(t)
	ctx := context.Background()
	for _, inc := range []int64{0, 3} {
		if _, err := ix.PlaceHold(ctx, Hold{Camera: "c", Start: t0, End: t0.Add(time.Hour), Reason: "r", IncidentID: inc}); err != nil {
			t.Fatal(err)
		}
	}
	n, err := ix.ReleaseHolds(ctx, "c", t0, t0.Add(time.Hour), 3, "done")
	if err != nil || n != 1 {
		t.Fatalf("release incident 3: %d %v", n, err)
	}
	hs, err := ix.Holds(ctx, "c", t0, t0.Add(time.Minute))
	if err != nil || len(hs) != 1 || hs[0].IncidentID != 0 {
		t.Fatalf("remaining holds: %+v %v", hs, err)
	}
}
