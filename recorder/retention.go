package recorder

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kuzet/kuzet/recorder/index"
	"github.com/kuzet/kuzet/recorder/store"
)

// ErrHoldPending is returned (wrapped) by PlaceHold when the hold is
// recorded, so retention will not delete the footage, but the object
// store's legal hold could not yet be set on every covered object; the
// recorder keeps retrying in the background.
var ErrHoldPending = errors.New("recorder: hold recorded, store legal holds pending")

// PlaceHold puts camera's footage in [from, to) under legal hold: retention
// will not delete it, and every covered object, including objects written
// later inside the range, gets the store's legal hold (S3 Object Lock),
// so that it cannot be deleted through the store either. incidentID is the
// registry's incident (0: none).
func (r *Recorder) PlaceHold(ctx context.Context, camera string, from, to time.Time, reason string, incidentID int64) error {
	id, err := r.ix.PlaceHold(ctx, index.Hold{Camera: camera, Start: from, End: to, Reason: reason, IncidentID: incidentID})
	if err != nil {
		return fmt.Errorf("recorder: place hold: %w", err)
	}
	r.log.Info("recorder: legal hold placed", "hold", id, "camera", camera, "from", from, "to", to, "incident", incidentID)
	if err := r.applyHolds(ctx, camera); err != nil {
		return fmt.Errorf("%w (hold %d): %w", ErrHoldPending, id, err)
	}
	return nil
}

// ReleaseHold releases camera's active holds with exactly this range and
// incident id; store legal holds are lifted from objects no other active
// hold covers.
func (r *Recorder) ReleaseHold(ctx context.Context, camera string, from, to time.Time, incidentID int64, reason string) error {
	n, err := r.ix.ReleaseHolds(ctx, camera, from, to, incidentID, reason)
	if err != nil {
		return fmt.Errorf("recorder: release hold: %w", err)
	}
	r.log.Info("recorder: legal hold released", "camera", camera, "from", from, "to", to, "incident", incidentID, "holds", n)
	if err := r.applyHolds(ctx, camera); err != nil {
		return fmt.Errorf("%w: %w", ErrHoldPending, err)
	}
	return nil
}

// ReleaseCameraIncidentHolds releases every active hold of an incident on
// one camera; store legal holds are lifted from objects no other active hold
// covers.
func (r *Recorder) ReleaseCameraIncidentHolds(ctx context.Context, camera string, incidentID int64, reason string) error {
	n, err := r.ix.ReleaseCameraIncidentHolds(ctx, camera, incidentID, reason)
	if err != nil {
		return fmt.Errorf("recorder: release holds: %w", err)
	}
	r.log.Info("recorder: legal holds of incident released", "camera", camera, "incident", incidentID, "holds", n)
	if err := r.applyHolds(ctx, camera); err != nil {
		return fmt.Errorf("%w: %w", ErrHoldPending, err)
	}
	return nil
}

// ReleaseIncidentHolds releases every active hold of an incident.
func (r *Recorder) ReleaseIncidentHolds(ctx context.Context, incidentID int64, reason string) error {
	n, err := r.ix.ReleaseIncidentHolds(ctx, incidentID, reason)
	if err != nil {
		return fmt.Errorf("recorder: release holds: %w", err)
	}
	r.log.Info("recorder: legal holds of incident released", "incident", incidentID, "holds", n)
	if err := r.applyHolds(ctx, ""); err != nil {
		return fmt.Errorf("%w: %w", ErrHoldPending, err)
	}
	return nil
}

// SetRetention sets a camera's retention in days (0: the default).
func (r *Recorder) SetRetention(ctx context.Context, camera string, days int) error {
	return r.ix.SetRetention(ctx, camera, days)
}

// applyHolds makes the store's legal holds match the active holds, for
// one camera or ("") all.
func (r *Recorder) applyHolds(ctx context.Context, camera string) error {
	var firstErr error
	failed := map[int64]bool{}
	for {
		todo, err := r.ix.HoldsToApply(ctx, camera, 100)
		if err != nil {
			return err
		}
		progress := false
		for _, h := range todo {
			if failed[h.SegmentID] {
				continue
			}
			err := r.store.SetHold(ctx, h.Key, h.On)
			if err != nil && !h.On && errors.Is(err, store.ErrNotFound) {
				err = nil // nothing left to release
			}
			if err == nil {
				err = r.ix.SetLegalHold(ctx, h.SegmentID, h.On)
			}
			if err != nil {
				failed[h.SegmentID] = true
				r.m.holds.WithLabelValues("error").Inc()
				if firstErr == nil {
					firstErr = fmt.Errorf("legal hold on %s: %w", h.Key, err)
				}
				continue
			}
			progress = true
			if h.On {
				r.m.holds.WithLabelValues("on").Inc()
			} else {
				r.m.holds.WithLabelValues("off").Inc()
			}
		}
		if !progress || len(todo) < 100 {
			if firstErr != nil {
				r.log.Error("recorder: store legal holds not applied; will retry", "err", firstErr)
			}
			return firstErr
		}
	}
}

func (r *Recorder) holdsLoop(ctx context.Context) {
	t := time.NewTicker(r.cfg.HoldInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-r.holdsWake:
		}
		_ = r.applyHolds(ctx, "")
	}
}

// ApplyRetention deletes the segments whose retention has passed and that
// no active hold covers, oldest first: each is marked, its object deleted,
// and its row replaced by a tombstone that keeps its hash and chain link.
// It returns how many were deleted.
func (r *Recorder) ApplyRetention(ctx context.Context) (int, error) {
	deleted := 0
	skip := map[int64]bool{}
	for {
		exp, err := r.ix.Expired(ctx, r.now(), r.cfg.RetentionDays, 100)
		if err != nil {
			return deleted, err
		}
		progress := false
		for _, s := range exp {
			if skip[s.ID] {
				continue
			}
			if !s.Deleting {
				if err := r.ix.MarkDeleting(ctx, s.ID); err != nil {
					return deleted, err
				}
			}
			err := r.ix.DeleteSegment(ctx, s.ID, "retention", func(key string) error {
				err := r.store.Delete(ctx, key)
				switch {
				case errors.Is(err, store.ErrNotFound):
					return nil
				case errors.Is(err, store.ErrHeld):
					return fmt.Errorf("%w: %w", index.ErrHeld, err)
				}
				return err
			})
			switch {
			case err == nil:
				deleted++
				progress = true
				r.m.retention.WithLabelValues("deleted").Inc()
			case errors.Is(err, index.ErrHeld):
				skip[s.ID] = true
				r.m.retention.WithLabelValues("held").Inc()
				r.log.Warn("recorder: retention skipped a segment under legal hold", "camera", s.Camera, "key", s.ObjectKey, "err", err)
			default:
				r.m.retention.WithLabelValues("error").Inc()
				return deleted, fmt.Errorf("recorder: retention of %s: %w", s.ObjectKey, err)
			}
		}
		if !progress {
			return deleted, nil
		}
	}
}

func (r *Recorder) retentionLoop(ctx context.Context) {
	t := time.NewTicker(r.cfg.RetentionInterval)
	defer t.Stop()
	for {
		n, err := r.ApplyRetention(ctx)
		if err != nil && ctx.Err() == nil {
			r.log.Error("recorder: retention", "err", err, "deleted", n)
		} else if n > 0 {
			r.log.Info("recorder: retention deleted expired segments", "segments", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// heartbeat records the recorder's sign of life in the spool, so that
// recovery after a crash knows when it died.
func (r *Recorder) heartbeat(ctx context.Context) {
	t := time.NewTicker(r.cfg.SyncInterval)
	defer t.Stop()
	for {
		if err := r.spool.Beat(r.now()); err != nil {
			r.m.errors.WithLabelValues("", "spool").Inc()
			r.log.Error("recorder: heartbeat", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
