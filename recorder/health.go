package recorder

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"
)

// healthState tracks the reachability of the store and PostgreSQL as the
// recorder's own operations see it.
type healthState struct {
	mu         sync.Mutex
	recovered  bool
	store      dependency
	index      dependency
	spoolFull  map[string]bool
	lastOrphan OrphanSummary
}

type dependency struct {
	up        bool
	since     time.Time // of the current state
	lastError string
}

func (h *healthState) init(now time.Time) {
	h.store = dependency{up: true, since: now}
	h.index = dependency{up: true, since: now}
	h.spoolFull = map[string]bool{}
}

func (h *healthState) setRecovered() {
	h.mu.Lock()
	h.recovered = true
	h.mu.Unlock()
}

func (d *dependency) set(up bool, err error, now time.Time) (changed bool) {
	if d.up != up {
		d.up, d.since, changed = up, now, true
	}
	if err != nil {
		d.lastError = err.Error()
	}
	return changed
}

// storeResult records the outcome of a store operation.
func (r *Recorder) storeResult(err error) {
	up := err == nil
	r.health.mu.Lock()
	changed := r.health.store.set(up, err, r.now())
	r.health.mu.Unlock()
	r.m.storeUp.Set(b2f(up))
	if changed && up {
		r.log.Info("recorder: object store reachable again")
	} else if changed {
		r.log.Error("recorder: object store unavailable; segments stay in the spool", "err", err)
	}
}

// indexResult records the outcome of an index write.
func (r *Recorder) indexResult(err error) {
	up := err == nil
	r.health.mu.Lock()
	changed := r.health.index.set(up, err, r.now())
	r.health.mu.Unlock()
	r.m.indexUp.Set(b2f(up))
	if changed && up {
		r.log.Info("recorder: PostgreSQL reachable again; applying the journal")
	} else if changed {
		r.log.Error("recorder: PostgreSQL unavailable; index changes wait in the journal", "err", err)
	}
}

func (r *Recorder) setSpoolFull(camera string, full bool) {
	r.health.mu.Lock()
	defer r.health.mu.Unlock()
	if full {
		r.health.spoolFull[camera] = true
	} else {
		delete(r.health.spoolFull, camera)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Health is the recorder's state for operators.
type Health struct {
	// Recovered is false until startup recovery of the spool is done.
	Recovered bool
	// StoreUp and IndexUp say whether the last store operation and the
	// last index write succeeded; Since when that has been so.
	StoreUp        bool
	StoreSince     time.Time
	StoreLastError string
	IndexUp        bool
	IndexSince     time.Time
	IndexLastError string
	// UploadBacklog and UploadBacklogBytes are closed segments not yet
	// uploaded; JournalBacklog index changes not yet in PostgreSQL.
	UploadBacklog      int64
	UploadBacklogBytes int64
	JournalBacklog     int
	// RecordingLag is the age of the end of the oldest closed segment,
	// over all cameras, not yet uploaded and indexed (0 when none waits).
	RecordingLag time.Duration
	// UploadFailures counts failed upload attempts since the recorder was
	// created (store unavailable, refused, or integrity check failed);
	// it only grows. Retries of one segment count each time.
	UploadFailures uint64
	// SpoolUsed and SpoolQuota are in bytes.
	SpoolUsed  int64
	SpoolQuota int64
	// SpoolFull lists cameras not recording because the spool is full.
	SpoolFull []string
	// Recording is the number of cameras with a running pipeline.
	Recording int
	// Orphans is the result of the last orphan check.
	Orphans OrphanSummary
}

// Health returns the recorder's current state.
func (r *Recorder) Health() Health {
	h := Health{
		UploadBacklog: r.backlog.Load(), UploadBacklogBytes: r.backlogBytes.Load(),
		SpoolUsed: r.spool.Used(), SpoolQuota: r.spool.Quota(),
	}
	h.JournalBacklog = r.journal.Len()
	h.UploadFailures = r.uploadFailures.Load()
	r.health.mu.Lock()
	h.Recovered = r.health.recovered
	h.StoreUp, h.StoreSince, h.StoreLastError = r.health.store.up, r.health.store.since, r.health.store.lastError
	h.IndexUp, h.IndexSince, h.IndexLastError = r.health.index.up, r.health.index.since, r.health.index.lastError
	for c := range r.health.spoolFull {
		h.SpoolFull = append(h.SpoolFull, c)
	}
	h.Orphans = r.health.lastOrphan
	r.health.mu.Unlock()
	sort.Strings(h.SpoolFull)
	now := r.now()
	r.mu.Lock()
	for _, c := range r.cams {
		if c.running != nil {
			h.Recording++
		}
		h.RecordingLag = max(h.RecordingLag, c.up.lag(now))
	}
	r.mu.Unlock()
	return h
}

// Ready is the recorder's readiness check for /readyz: nil when recovery
// is done and both the object store and PostgreSQL answer (checked now,
// bounded by ctx); otherwise an error that says what is degraded and how
// much is waiting locally. Recording goes on while it fails.
func (r *Recorder) Ready(ctx context.Context) error {
	h := r.Health()
	if !h.Recovered {
		return errors.New("recorder: recovering the spool")
	}
	var errs []error
	if err := r.store.Ping(ctx); err != nil {
		errs = append(errs, fmt.Errorf("object store unavailable (%d segments, %d bytes spooled): %w",
			h.UploadBacklog, h.UploadBacklogBytes, err))
	}
	if err := r.ix.Ping(ctx); err != nil {
		errs = append(errs, fmt.Errorf("PostgreSQL unavailable (%d index changes journaled): %w", h.JournalBacklog, err))
	}
	if len(h.SpoolFull) > 0 {
		errs = append(errs, fmt.Errorf("spool full (%d of %d bytes): not recording %v", h.SpoolUsed, h.SpoolQuota, h.SpoolFull))
	}
	if len(errs) > 0 {
		return fmt.Errorf("recorder: %w", errors.Join(errs...))
	}
	return nil
}
