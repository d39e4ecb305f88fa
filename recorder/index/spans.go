package index

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Span is a stretch of continuous recording of one camera: consecutive
// segments, each starting at most a second after the previous one ends.
type Span struct {
	Start, End time.Time // UTC
	Segments   int
	Bytes      int64
}

// Spans merges camera's segments overlapping [from, to) into spans of
// continuous recording, in time order. PostgreSQL does the merging (one row
// per span, read through the (camera, start_at) index), so a day of short
// segments costs a handful of rows. Segments being deleted by retention are
// left out.
func (ix *Index) Spans(ctx context.Context, camera string, from, to time.Time) ([]Span, error) {
	rows, err := ix.pool.Query(ctx, `SELECT min(start_at), max(end_at), count(*), sum(bytes)::bigint FROM (
			SELECT start_at, end_at, bytes,
				count(*) FILTER (WHERE prev_end IS NULL OR start_at > prev_end + interval '1 second')
					OVER (ORDER BY start_at) AS span
			FROM (SELECT start_at, end_at, bytes, lag(end_at) OVER (ORDER BY start_at) AS prev_end
				FROM recorder_segments WHERE camera = $1 AND start_at < $3 AND end_at > $2 AND NOT deleting) s
		) t GROUP BY span ORDER BY 1`, camera, Micro(from), Micro(to))
	if err != nil {
		return nil, fmt.Errorf("index: spans of %s: %w", camera, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Span, error) {
		var s Span
		err := r.Scan(&s.Start, &s.End, &s.Segments, &s.Bytes)
		s.Start, s.End = s.Start.UTC(), s.End.UTC()
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("index: spans of %s: %w", camera, err)
	}
	return out, nil
}
