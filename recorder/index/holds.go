package index

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Hold is a legal hold on one camera's footage in [Start, End).
type Hold struct {
	ID         int64
	Camera     string
	Start, End time.Time
	Reason     string
	// IncidentID is the registry incident the hold belongs to; 0 for none.
	IncidentID    int64
	PlacedAt      time.Time
	ReleasedAt    time.Time // zero while active
	ReleaseReason string
}

func nullID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

// PlaceHold records an active hold and returns its id. While it is active,
// retention does not delete segments overlapping it.
func (ix *Index) PlaceHold(ctx context.Context, h Hold) (int64, error) {
	switch {
	case !ValidCamera(h.Camera):
		return 0, invalid("camera id %q", h.Camera)
	case !Micro(h.End).After(Micro(h.Start)):
		return 0, invalid("hold end %s not after start %s", h.End, h.Start)
	case strings.TrimSpace(h.Reason) == "":
		return 0, invalid("a hold needs a reason")
	case h.IncidentID < 0:
		return 0, invalid("incident id %d", h.IncidentID)
	}
	var id int64
	err := pgx.BeginFunc(ctx, ix.pool, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `INSERT INTO recorder_holds (camera, start_at, end_at, reason, incident_id)
			VALUES ($1, $2, $3, $4, $5) RETURNING id`,
			h.Camera, Micro(h.Start), Micro(h.End), h.Reason, nullID(h.IncidentID)).Scan(&id); err != nil {
			return err
		}
		// Lock the covered rows so a retention deletion in flight either
		// finishes first or sees this hold (see DeleteSegment).
		_, err := tx.Exec(ctx, `SELECT id FROM recorder_segments
			WHERE camera = $1 AND start_at < $3 AND end_at > $2 FOR UPDATE`, h.Camera, Micro(h.Start), Micro(h.End))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("index: place hold on %s: %w", h.Camera, err)
	}
	return id, nil
}

// ReleaseHolds releases the active holds of camera with exactly this range
// and incident id (0: holds without incident) and returns how many.
func (ix *Index) ReleaseHolds(ctx context.Context, camera string, from, to time.Time, incidentID int64, reason string) (int64, error) {
	tag, err := ix.pool.Exec(ctx, `UPDATE recorder_holds SET released_at = now(), release_reason = $5
		WHERE released_at IS NULL AND camera = $1 AND start_at = $2 AND end_at = $3
		AND incident_id IS NOT DISTINCT FROM $4`, camera, Micro(from), Micro(to), nullID(incidentID), reason)
	if err != nil {
		return 0, fmt.Errorf("index: release holds on %s: %w", camera, err)
	}
	return tag.RowsAffected(), nil
}

// ReleaseIncidentHolds releases every active hold of an incident.
func (ix *Index) ReleaseIncidentHolds(ctx context.Context, incidentID int64, reason string) (int64, error) {
	tag, err := ix.pool.Exec(ctx, `UPDATE recorder_holds SET released_at = now(), release_reason = $2
		WHERE released_at IS NULL AND incident_id = $1`, incidentID, reason)
	if err != nil {
		return 0, fmt.Errorf("index: release holds of incident %d: %w", incidentID, err)
	}
	return tag.RowsAffected(), nil
}

// ReleaseCameraIncidentHolds releases every active hold of an incident on
// one camera, whatever their ranges (an incident's hold is widened as the
// incident changes, so there may be several).
func (ix *Index) ReleaseCameraIncidentHolds(ctx context.Context, camera string, incidentID int64, reason string) (int64, error) {
	tag, err := ix.pool.Exec(ctx, `UPDATE recorder_holds SET released_at = now(), release_reason = $3
		WHERE released_at IS NULL AND camera = $1 AND incident_id = $2`, camera, incidentID, reason)
	if err != nil {
		return 0, fmt.Errorf("index: release holds of incident %d on %s: %w", incidentID, camera, err)
	}
	return tag.RowsAffected(), nil
}

// ReleaseHold releases one hold by id; released is false when it was not
// active.
func (ix *Index) ReleaseHold(ctx context.Context, id int64, reason string) (released bool, err error) {
	tag, err := ix.pool.Exec(ctx, `UPDATE recorder_holds SET released_at = now(), release_reason = $2
		WHERE released_at IS NULL AND id = $1`, id, reason)
	if err != nil {
		return false, fmt.Errorf("index: release hold %d: %w", id, err)
	}
	return tag.RowsAffected() > 0, nil
}

// Holds returns camera's active holds overlapping [from, to).
func (ix *Index) Holds(ctx context.Context, camera string, from, to time.Time) ([]Hold, error) {
	rows, err := ix.pool.Query(ctx, `SELECT id, camera, start_at, end_at, reason, coalesce(incident_id, 0), placed_at
		FROM recorder_holds WHERE released_at IS NULL AND camera = $1 AND start_at < $3 AND end_at > $2
		ORDER BY start_at, id`, camera, Micro(from), Micro(to))
	if err != nil {
		return nil, fmt.Errorf("index: holds on %s: %w", camera, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Hold, error) {
		var h Hold
		err := r.Scan(&h.ID, &h.Camera, &h.Start, &h.End, &h.Reason, &h.IncidentID, &h.PlacedAt)
		h.Start, h.End = h.Start.UTC(), h.End.UTC()
		return h, err
	})
	if err != nil {
		return nil, fmt.Errorf("index: holds on %s: %w", camera, err)
	}
	return out, nil
}

// ObjectHold says that an object's store legal hold must change.
type ObjectHold struct {
	SegmentID int64
	Camera    string
	Key       string
	On        bool // true: must be held; false: must be released
}

// HoldsToApply returns up to limit segments whose store legal hold does not
// match the active holds: covered but not held (On), or held but no longer
// covered (!On). camera "" means every camera.
func (ix *Index) HoldsToApply(ctx context.Context, camera string, limit int) ([]ObjectHold, error) {
	rows, err := ix.pool.Query(ctx, `SELECT id, camera, object_key, NOT legal_hold FROM recorder_segments s
		WHERE ($1 = '' OR camera = $1) AND legal_hold <> EXISTS (SELECT 1 FROM recorder_holds h
			WHERE h.released_at IS NULL AND h.camera = s.camera AND h.start_at < s.end_at AND h.end_at > s.start_at)
		ORDER BY id LIMIT $2`, camera, limit)
	if err != nil {
		return nil, fmt.Errorf("index: holds to apply: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[ObjectHold])
	if err != nil {
		return nil, fmt.Errorf("index: holds to apply: %w", err)
	}
	return out, nil
}

// SetLegalHold records that the store's legal hold on a segment's object is
// now on or off.
func (ix *Index) SetLegalHold(ctx context.Context, segmentID int64, on bool) error {
	if _, err := ix.pool.Exec(ctx, `UPDATE recorder_segments SET legal_hold = $2 WHERE id = $1`, segmentID, on); err != nil {
		return fmt.Errorf("index: set legal hold of segment %d: %w", segmentID, err)
	}
	return nil
}

// SetRetention sets camera's retention in days; days 0 removes the
// camera's own setting, so the default applies.
func (ix *Index) SetRetention(ctx context.Context, camera string, days int) error {
	if !ValidCamera(camera) {
		return invalid("camera id %q", camera)
	}
	var err error
	switch {
	case days < 0:
		return invalid("retention %d days", days)
	case days == 0:
		_, err = ix.pool.Exec(ctx, `DELETE FROM recorder_retention WHERE camera = $1`, camera)
	default:
		_, err = ix.pool.Exec(ctx, `INSERT INTO recorder_retention (camera, days) VALUES ($1, $2)
			ON CONFLICT (camera) DO UPDATE SET days = EXCLUDED.days`, camera, days)
	}
	if err != nil {
		return fmt.Errorf("index: set retention of %s: %w", camera, err)
	}
	return nil
}

// Expired returns up to limit segments, oldest first, that ended more than
// their camera's retention (defaultDays when the camera has no setting)
// before now and that no active hold covers. Segments already marked for
// deletion are included, so an interrupted deletion is finished.
func (ix *Index) Expired(ctx context.Context, now time.Time, defaultDays, limit int) ([]Segment, error) {
	rows, err := ix.pool.Query(ctx, `SELECT `+prefixCols("s.", segmentCols)+` FROM recorder_segments s
		LEFT JOIN recorder_retention r ON r.camera = s.camera
		WHERE (s.deleting OR s.end_at < $1::timestamptz - make_interval(days => coalesce(r.days, $2::int)))
		AND NOT EXISTS (SELECT 1 FROM recorder_holds h WHERE h.released_at IS NULL AND h.camera = s.camera
			AND h.start_at < s.end_at AND h.end_at > s.start_at)
		ORDER BY s.end_at LIMIT $3`, Micro(now), defaultDays, limit)
	if err != nil {
		return nil, fmt.Errorf("index: expired segments: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Segment, error) { return scanSegment(r) })
	if err != nil {
		return nil, fmt.Errorf("index: expired segments: %w", err)
	}
	return out, nil
}

func prefixCols(prefix, cols string) string {
	parts := strings.Split(cols, ",")
	for i, p := range parts {
		parts[i] = prefix + strings.TrimSpace(p)
	}
	return strings.Join(parts, ", ")
}

// ErrHeld is returned by DeleteSegment when an active hold covers the
// segment.
var ErrHeld = errors.New("segment is under legal hold")

// MarkDeleting marks a segment as garbage: the first step of a deletion.
func (ix *Index) MarkDeleting(ctx context.Context, id int64) error {
	if _, err := ix.pool.Exec(ctx, `UPDATE recorder_segments SET deleting = true WHERE id = $1`, id); err != nil {
		return fmt.Errorf("index: mark segment %d: %w", id, err)
	}
	return nil
}

// DeleteSegment finishes the deletion of a segment marked with
// MarkDeleting: with the row locked, it checks that no active hold covers
// it (ErrHeld, and the mark is removed), calls removeObject, and then
// replaces the row with a tombstone. If removeObject fails the row stays
// marked and the error is returned. A segment already gone is not an error.
func (ix *Index) DeleteSegment(ctx context.Context, id int64, reason string, removeObject func(key string) error) error {
	err := pgx.BeginFunc(ctx, ix.pool, func(tx pgx.Tx) error {
		s, err := scanSegment(tx.QueryRow(ctx, `SELECT `+segmentCols+` FROM recorder_segments WHERE id = $1 FOR UPDATE`, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		var held bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM recorder_holds WHERE released_at IS NULL
			AND camera = $1 AND start_at < $3 AND end_at > $2)`, s.Camera, s.Start, s.End).Scan(&held); err != nil {
			return err
		}
		if held {
			return ErrHeld
		}
		if err := removeObject(s.ObjectKey); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO recorder_tombstones (segment_id, camera, facility, run, seq, start_at, end_at,
				bytes, object_key, sha256, prev_chain, chain, reason)
			VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13) ON CONFLICT (segment_id) DO NOTHING`,
			s.ID, s.Camera, s.Facility, int64(s.Run), int64(s.Seq), s.Start, s.End, s.Bytes, s.ObjectKey,
			s.SHA256[:], s.PrevChain[:], s.Chain[:], reason); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `DELETE FROM recorder_segments WHERE id = $1`, id)
		return err
	})
	if errors.Is(err, ErrHeld) {
		// The transaction was rolled back; remove the mark on its own.
		if _, uerr := ix.pool.Exec(ctx, `UPDATE recorder_segments SET deleting = false WHERE id = $1`, id); uerr != nil {
			return fmt.Errorf("index: unmark held segment %d: %w", id, uerr)
		}
		return fmt.Errorf("index: delete segment %d: %w", id, ErrHeld)
	}
	if err != nil {
		return fmt.Errorf("index: delete segment %d: %w", id, err)
	}
	return nil
}
