package recorder

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/kuzet/kuzet/recorder/index"
	"github.com/kuzet/kuzet/recorder/store"
)

// Kinds of chain problems.
const (
	// ProblemAlteredObject: the stored object's size or SHA-256 differs
	// from its row.
	ProblemAlteredObject = "altered_object"
	// ProblemMissingObject: the row's object is not in the store.
	ProblemMissingObject = "missing_object"
	// ProblemAlteredRow: the row's fields do not hash to its chain value.
	ProblemAlteredRow = "altered_row"
	// ProblemMissingSegment: a link of the chain is gone: the row's
	// prev_chain matches no segment or tombstone (rows deleted), or the
	// camera's chain head is not its last row's chain.
	ProblemMissingSegment = "missing_segment"
	// ProblemOutOfOrder: the row's predecessor in the chain is not the
	// segment before it in time.
	ProblemOutOfOrder = "out_of_order"
)

// ChainProblem is one finding of VerifyChain.
type ChainProblem struct {
	Kind      string
	SegmentID int64
	ObjectKey string
	Start     time.Time
	End       time.Time
	Detail    string
}

func (p ChainProblem) String() string {
	return fmt.Sprintf("%s: segment %d %s [%s, %s): %s", p.Kind, p.SegmentID, p.ObjectKey,
		p.Start.Format(time.RFC3339Nano), p.End.Format(time.RFC3339Nano), p.Detail)
}

// ChainReport is the result of VerifyChain.
type ChainReport struct {
	Camera   string
	From, To time.Time
	// Segments objects were read and hashed; Tombstones links were
	// checked without an object.
	Segments   int
	Tombstones int
	Bytes      int64
	// Problems in time order; the first names the first segment that is
	// altered, missing or out of order.
	Problems []ChainProblem
}

// OK reports whether no problem was found.
func (r ChainReport) OK() bool { return len(r.Problems) == 0 }

// First returns the first problem.
func (r ChainReport) First() (ChainProblem, bool) {
	if len(r.Problems) == 0 {
		return ChainProblem{}, false
	}
	return r.Problems[0], true
}

// chainStore is what verification reads from the store.
type chainStore interface {
	objectReader
}

// VerifyChain checks camera's segments overlapping [from, to): every
// stored object against its row (size, SHA-256), every row against its
// chain value, and every link against the row before it (tombstones of
// deleted segments keep the links). When the range reaches the camera's
// first segment, the chain must start from zero; when it reaches the last,
// the chain head must match. A zero from or to is unbounded.
func VerifyChain(ctx context.Context, ix *index.Index, st chainStore, camera string, from, to time.Time) (ChainReport, error) {
	if from.IsZero() {
		from = time.Unix(0, 0)
	}
	if to.IsZero() {
		to = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	rep := ChainReport{Camera: camera, From: from, To: to}
	entries, err := ix.ChainEntries(ctx, camera, from, to)
	if err != nil {
		return rep, err
	}
	if len(entries) == 0 {
		return rep, nil
	}
	problem := func(e index.ChainEntry, kind, format string, a ...any) {
		rep.Problems = append(rep.Problems, ChainProblem{Kind: kind, SegmentID: e.SegmentID, ObjectKey: e.ObjectKey,
			Start: e.Start, End: e.End, Detail: fmt.Sprintf(format, a...)})
	}
	// Is the first entry the camera's first ever?
	before, err := ix.ChainEntries(ctx, camera, time.Unix(0, 0), entries[0].Start)
	if err != nil {
		return rep, err
	}
	firstEver := true
	for _, b := range before {
		if b.Start.Before(entries[0].Start) {
			firstEver = false
		}
	}
	chains := make(map[index.Hash]int, len(entries))
	for i, e := range entries {
		chains[e.Chain] = i
	}
	for i, e := range entries {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		// The link to the previous entry.
		switch {
		case i == 0 && firstEver && !e.PrevChain.IsZero():
			problem(e, ProblemMissingSegment, "the camera's first segment does not start the chain: earlier segments were deleted without tombstones")
		case i > 0 && e.PrevChain != entries[i-1].Chain:
			if j, ok := chains[e.PrevChain]; ok && j != i-1 {
				problem(e, ProblemOutOfOrder, "its predecessor in the chain is segment %d at %s, not the segment before it in time",
					entries[j].SegmentID, entries[j].Start.Format(time.RFC3339Nano))
			} else {
				problem(e, ProblemMissingSegment, "the segment before it in the chain is gone (previous row in time: segment %d)", entries[i-1].SegmentID)
			}
		}
		if c := index.ChainHash(e.PrevChain, e.SHA256, camera, e.Start, e.End); c != e.Chain {
			problem(e, ProblemAlteredRow, "row fields hash to %s, its chain value is %s", c.String()[:16], e.Chain.String()[:16])
		}
		if e.Tombstone {
			rep.Tombstones++
			continue
		}
		rep.Segments++
		size, sum, err := hashObject(ctx, st, e.ObjectKey)
		switch {
		case errors.Is(err, store.ErrNotFound):
			problem(e, ProblemMissingObject, "object not in the store")
		case err != nil:
			return rep, fmt.Errorf("recorder: verify %s: %w", e.ObjectKey, err)
		case size != e.Bytes:
			problem(e, ProblemAlteredObject, "object has %d bytes, row says %d", size, e.Bytes)
		case sum != e.SHA256:
			problem(e, ProblemAlteredObject, "object SHA-256 %s, row says %s", sum.String()[:16], e.SHA256.String()[:16])
		}
		rep.Bytes += size
	}
	last := entries[len(entries)-1]
	after, err := ix.ChainEntries(ctx, camera, last.End, time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		return rep, err
	}
	later := false
	for _, a := range after {
		if a.Start.After(last.Start) {
			later = true
		}
	}
	if !later {
		head, _, ok, err := ix.ChainHead(ctx, camera)
		if err != nil {
			return rep, err
		}
		if ok && head != last.Chain {
			problem(last, ProblemMissingSegment, "the camera's chain head is not this, its last row: later segments were deleted")
		}
	}
	return rep, nil
}

func hashObject(ctx context.Context, st chainStore, key string) (int64, index.Hash, error) {
	var sum index.Hash
	rc, _, err := st.Get(ctx, key)
	if err != nil {
		return 0, sum, err
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, rc)
	if err != nil {
		return n, sum, err
	}
	h.Sum(sum[:0])
	return n, sum, nil
}

// VerifyChain is VerifyChain with the recorder's index and store.
func (r *Recorder) VerifyChain(ctx context.Context, camera string, from, to time.Time) (ChainReport, error) {
	return VerifyChain(ctx, r.ix, r.store, camera, from, to)
}

// Orphan kinds.
const (
	// OrphanUnindexed: an object in the store that no row names.
	OrphanUnindexed = "unindexed"
	// OrphanMissing: a row whose object is not in the store.
	OrphanMissing = "missing"
	// OrphanNotDeleted: a tombstone whose object is still in the store.
	OrphanNotDeleted = "not_deleted"
	// OrphanSizeMismatch: the object's size differs from its row.
	OrphanSizeMismatch = "size_mismatch"
)

// Orphan is one difference between the store and the index.
type Orphan struct {
	Kind   string
	Camera string
	Key    string
	Detail string

	modified time.Time
}

// OrphanSummary counts the differences of the last check.
type OrphanSummary struct {
	At     time.Time
	Counts map[string]int
}

type orphanStore interface {
	objectLister
}

// CheckOrphans compares the store's objects under camera's prefix with the
// index's rows and tombstones of camera and returns every difference. It
// reports; it never deletes. skip lists keys that are legitimately in one
// place and not yet in the other (uploads in flight).
func CheckOrphans(ctx context.Context, ix *index.Index, st orphanStore, facility, camera string, skip map[string]bool) ([]Orphan, error) {
	prefix, err := store.CameraPrefix(facility, camera)
	if err != nil {
		return nil, err
	}
	objs, err := ix.Objects(ctx, camera)
	if err != nil {
		return nil, err
	}
	want := make(map[string]index.ObjectRef, len(objs))
	for _, o := range objs {
		if strings.HasPrefix(o.Key, prefix) {
			want[o.Key] = o
		}
	}
	var out []Orphan
	for info, err := range st.List(ctx, prefix) {
		if err != nil {
			return out, fmt.Errorf("recorder: list %s: %w", prefix, err)
		}
		o, ok := want[info.Key]
		delete(want, info.Key)
		switch {
		case skip[info.Key]:
		case !ok:
			out = append(out, Orphan{Kind: OrphanUnindexed, Camera: camera, Key: info.Key, modified: info.Modified,
				Detail: fmt.Sprintf("%d bytes, stored %s", info.Size, info.Modified.Format(time.RFC3339))})
		case o.Tombstone:
			out = append(out, Orphan{Kind: OrphanNotDeleted, Camera: camera, Key: info.Key, Detail: "deleted by retention, still stored"})
		case info.Size != o.Bytes:
			out = append(out, Orphan{Kind: OrphanSizeMismatch, Camera: camera, Key: info.Key, Detail: fmt.Sprintf("stored %d bytes, row says %d", info.Size, o.Bytes)})
		}
	}
	for key, o := range want {
		if !o.Tombstone && !skip[key] {
			out = append(out, Orphan{Kind: OrphanMissing, Camera: camera, Key: key, Detail: "indexed, not in the store"})
		}
	}
	return out, nil
}

// CheckOrphans runs CheckOrphans for every camera in the index, skipping
// objects whose rows are still in the journal, and reports the result in
// the log, the metrics and Health.
func (r *Recorder) CheckOrphans(ctx context.Context) ([]Orphan, error) {
	cams, err := r.ix.Cameras(ctx)
	if err != nil {
		return nil, err
	}
	skip := r.pendingKeys()
	var all []Orphan
	for _, c := range cams {
		found, err := CheckOrphans(ctx, r.ix, r.store, c.Facility, c.Camera, skip)
		if err != nil {
			return all, err
		}
		for _, o := range found {
			// An object stored moments ago may be between its upload
			// and its journal record.
			if o.Kind == OrphanUnindexed && o.modified.After(r.now().Add(-5*time.Minute)) {
				continue
			}
			all = append(all, o)
		}
	}
	counts := map[string]int{OrphanUnindexed: 0, OrphanMissing: 0, OrphanNotDeleted: 0, OrphanSizeMismatch: 0}
	for _, o := range all {
		counts[o.Kind]++
		r.log.Error("recorder: store and index differ", "kind", o.Kind, "camera", o.Camera, "key", o.Key, "detail", o.Detail)
	}
	for k, n := range counts {
		r.m.orphans.WithLabelValues(k).Set(float64(n))
	}
	r.health.mu.Lock()
	r.health.lastOrphan = OrphanSummary{At: r.now(), Counts: counts}
	r.health.mu.Unlock()
	return all, nil
}

// pendingKeys returns the object keys of segments journaled but not yet
// indexed.
func (r *Recorder) pendingKeys() map[string]bool {
	keys := map[string]bool{}
	for _, rec := range r.journal.Pending() {
		var o op
		if json.Unmarshal(rec.Data, &o) == nil && o.Segment != nil {
			keys[o.Segment.ObjectKey] = true
		}
	}
	return keys
}

func (r *Recorder) orphanLoop(ctx context.Context) {
	// First check once the startup backlog is uploaded and indexed.
	for r.backlog.Load() > 0 || r.journal.Len() > 0 {
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Second):
		}
	}
	for {
		if _, err := r.CheckOrphans(ctx); err != nil && ctx.Err() == nil {
			r.log.Error("recorder: orphan check", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(r.cfg.OrphanCheckInterval):
		}
	}
}
