package recorder

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kuzet/kuzet/recorder/index"
	"github.com/kuzet/kuzet/recorder/spool"
	"github.com/kuzet/kuzet/recorder/store"
)

// uploader moves one camera's closed segments from the spool to the store,
// in recording order, and journals their index rows. One goroutine runs
// it; enqueue may be called from any goroutine. It also keeps the camera's
// spool and lag figures: what is queued, what is uploaded but not yet in
// PostgreSQL, and the bytes of the segment being written.
type uploader struct {
	r      *Recorder
	camera string

	mu          sync.Mutex
	queue       []spool.Entry
	queuedBytes int64
	// unindexed are the segments uploaded and journaled whose index rows
	// are not yet in PostgreSQL, in journal order.
	unindexed []journaledSegment
	notify    chan struct{}

	// open is the bytes of the camera's segment being written (reserved
	// in the spool by the pipeline, which alone changes it).
	open atomic.Int64
}

// journaledSegment is a segment whose index row waits in the journal.
type journaledSegment struct {
	seq uint64    // journal sequence number of the row
	end time.Time // end of the segment's footage
}

func newUploader(r *Recorder, camera string) *uploader {
	return &uploader{r: r, camera: camera, notify: make(chan struct{}, 1)}
}

func (u *uploader) enqueue(e spool.Entry) {
	u.mu.Lock()
	u.queue = append(u.queue, e)
	u.queuedBytes += e.Size
	u.mu.Unlock()
	u.r.backlog.Add(1)
	u.r.backlogBytes.Add(e.Size)
	select {
	case u.notify <- struct{}{}:
	default:
	}
}

func (u *uploader) first() (spool.Entry, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.queue) == 0 {
		return spool.Entry{}, false
	}
	return u.queue[0], true
}

func (u *uploader) pop() {
	u.mu.Lock()
	e := u.queue[0]
	u.queue[0] = spool.Entry{}
	u.queue = u.queue[1:]
	if len(u.queue) == 0 {
		u.queue = nil
	}
	u.queuedBytes -= e.Size
	u.mu.Unlock()
	u.r.backlog.Add(-1)
	u.r.backlogBytes.Add(-e.Size)
}

// journaled notes that the row of an uploaded segment ending at end is
// journal record seq; the segment counts as lagging until the applier is
// done with that record (Recorder.journalDone).
func (u *uploader) journaled(seq uint64, end time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if seq > u.r.journalDone.Load() {
		u.unindexed = append(u.unindexed, journaledSegment{seq: seq, end: end})
	}
}

// pruneLocked forgets the segments whose rows the applier is done with
// (applied, or refused and reported). Called with u.mu held.
func (u *uploader) pruneLocked() {
	done := u.r.journalDone.Load()
	n := 0
	for n < len(u.unindexed) && u.unindexed[n].seq <= done {
		n++
	}
	switch {
	case n == 0:
	case n == len(u.unindexed):
		u.unindexed = nil
	default:
		u.unindexed = u.unindexed[n:]
	}
}

// idle reports whether nothing of the camera waits: no segment queued for
// upload and no row waiting for PostgreSQL.
func (u *uploader) idle() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.pruneLocked()
	return len(u.queue) == 0 && len(u.unindexed) == 0
}

// lag is the age of the end of the camera's oldest closed segment not yet
// uploaded and indexed; 0 when none waits.
func (u *uploader) lag(now time.Time) time.Duration {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.pruneLocked()
	var oldest time.Time
	if len(u.unindexed) > 0 {
		oldest = u.unindexed[0].end
	}
	if len(u.queue) > 0 && (oldest.IsZero() || u.queue[0].Meta.End.Before(oldest)) {
		oldest = u.queue[0].Meta.End
	}
	if oldest.IsZero() {
		return 0
	}
	return max(now.Sub(oldest), 0)
}

// spoolBytes is the camera's bytes in the spool: the segment being written
// and the closed ones waiting for upload.
func (u *uploader) spoolBytes() int64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.queuedBytes + u.open.Load()
}

func (u *uploader) run(ctx context.Context) {
	backoff := u.r.cfg.RetryMin
	for {
		e, ok := u.first()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-u.notify:
				continue
			}
		}
		err := u.upload(ctx, e)
		if err == nil {
			u.pop()
			backoff = u.r.cfg.RetryMin
			continue
		}
		if ctx.Err() != nil {
			return
		}
		var drop *dropError
		if errors.As(err, &drop) {
			u.pop()
			continue
		}
		// Transient: wait and retry the same segment.
		wait := backoff/2 + rand.N(backoff/2+1)
		backoff = min(backoff*2, u.r.cfg.RetryMax)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// dropError says the segment left the queue without being uploaded (it
// was quarantined and reported).
type dropError struct{ err error }

func (e *dropError) Error() string { return e.err.Error() }

// upload stores one segment, verifies it, journals its row and removes it
// from the spool.
func (u *uploader) upload(ctx context.Context, e spool.Entry) error {
	r := u.r
	m := e.Meta
	key, err := store.SegmentKey(m.Facility, m.Camera, m.Start, m.Run, m.Seq)
	if err != nil {
		return u.quarantine(e, fmt.Errorf("no object key: %w", err))
	}
	var sum index.Hash
	if err := sum.UnmarshalText([]byte(m.SHA256)); err != nil {
		return u.quarantine(e, fmt.Errorf("metadata without a valid SHA-256: %w", err))
	}
	f, err := e.Open()
	if err != nil {
		return u.quarantine(e, fmt.Errorf("open: %w", err))
	}
	defer f.Close()
	select {
	case r.uploadSem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	start := time.Now()
	// A stuck request must not hold the camera's queue forever.
	pctx, cancel := context.WithTimeout(ctx, 2*time.Minute+time.Duration(e.Size/(256<<10))*time.Second)
	info, err := r.store.Put(pctx, key, f, e.Size, sum)
	cancel()
	<-r.uploadSem
	switch {
	case err == nil:
		if info.Size != e.Size {
			err = fmt.Errorf("%w: stored %d bytes, want %d", store.ErrIntegrity, info.Size, e.Size)
		}
	case errors.Is(err, store.ErrHeld):
		// The fs store refuses to replace a held object: it is there
		// from an earlier attempt that crashed before journaling.
		st, serr := r.store.Stat(ctx, key)
		if serr == nil && st.Size == e.Size {
			err = nil
		}
	}
	if err != nil {
		if ctx.Err() == nil {
			r.uploadFailures.Add(1)
		}
		switch {
		case errors.Is(err, store.ErrIntegrity):
			r.m.uploads.WithLabelValues("integrity").Inc()
			r.storeResult(nil)
			return u.quarantine(e, fmt.Errorf("upload: %w", err))
		case errors.Is(err, store.ErrUnavailable), ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded):
			r.m.uploads.WithLabelValues("unavailable").Inc()
		default:
			r.m.uploads.WithLabelValues("error").Inc()
		}
		if ctx.Err() == nil {
			r.storeResult(err)
		}
		return fmt.Errorf("camera %s: upload %s: %w", u.camera, key, err)
	}
	r.storeResult(nil)
	r.m.uploads.WithLabelValues("ok").Inc()
	r.m.uploadSeconds.WithLabelValues(u.camera, m.Facility).Observe(time.Since(start).Seconds())

	seg := &index.Segment{
		Camera: m.Camera, Facility: m.Facility, Run: m.Run, Seq: m.Seq, Start: m.Start, End: m.End,
		MediaStart: m.MediaStart, MediaDuration: m.MediaDuration, WallDuration: m.End.Sub(m.Start),
		Bytes: e.Size, Frames: m.Frames, Codec: m.Codec, Width: m.Width, Height: m.Height, AudioCodec: m.AudioCodec,
		InitSize: m.InitSize, Fragments: m.Fragments, ObjectKey: key, SHA256: sum,
	}
	seq, err := r.journalSeq(op{Kind: opSegment, Segment: seg})
	if err != nil {
		r.m.errors.WithLabelValues(u.camera, "journal").Inc()
		r.log.Error("recorder: cannot journal an uploaded segment; retrying", "camera", u.camera, "key", key, "err", err)
		return err
	}
	u.journaled(seq, m.End)
	if err := r.spool.Remove(e); err != nil {
		r.m.errors.WithLabelValues(u.camera, "spool").Inc()
		r.log.Error("recorder: removing an uploaded segment from the spool", "camera", u.camera, "file", e.Path, "err", err)
	}
	return nil
}

// quarantine moves a segment that cannot be uploaded out of the way,
// reporting it, and returns a dropError.
func (u *uploader) quarantine(e spool.Entry, why error) error {
	r := u.r
	dst, err := r.spool.Quarantine(e)
	r.m.segments.WithLabelValues(u.camera, "damaged").Inc()
	r.m.errors.WithLabelValues(u.camera, "spool").Inc()
	if err != nil {
		r.log.Error("recorder: segment cannot be uploaded and cannot be quarantined; it stays in the spool",
			"camera", u.camera, "file", e.Path, "why", why, "err", err)
		return err
	}
	r.log.Error("recorder: segment cannot be uploaded; moved aside for inspection",
		"camera", u.camera, "file", dst, "start", e.Meta.Start, "end", e.Meta.End, "why", why)
	return &dropError{err: why}
}

func hexSum(b [32]byte) string { return hex.EncodeToString(b[:]) }
