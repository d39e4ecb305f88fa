package index

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kuzet/kuzet/internal/migrate"
)

//go:embed migrations/*.sql
var migrationsFS embed.FS

// Migrations are the recorder's tables, for migrate.Apply.
var Migrations = migrate.Set{Component: "recorder", FS: migrationsFS, Dir: "migrations"}

// Gap reasons.
const (
	ReasonCameraOffline  = "camera_offline"
	ReasonRecorderDown   = "recorder_down"
	ReasonWriterOverload = "writer_overload"
	ReasonSpoolFull      = "spool_full"
	ReasonDiscontinuity  = "discontinuity"
	ReasonDisabled       = "disabled"
)

// ValidReason reports whether r is a gap reason the index accepts.
func ValidReason(r string) bool {
	switch r {
	case ReasonCameraOffline, ReasonRecorderDown, ReasonWriterOverload, ReasonSpoolFull, ReasonDiscontinuity, ReasonDisabled:
		return true
	}
	return false
}

var (
	cameraRE   = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	facilityRE = regexp.MustCompile(`^[a-z0-9-]{1,32}$`)
)

// ValidCamera reports whether id is a valid camera id: [A-Za-z0-9_-]{1,64}.
func ValidCamera(id string) bool { return cameraRE.MatchString(id) }

// ValidFacility reports whether id is a valid facility id: [a-z0-9-]{1,32}.
func ValidFacility(id string) bool { return facilityRE.MatchString(id) }

// Hash is a SHA-256 value. Its text form is lowercase hex.
type Hash [sha256.Size]byte

// String returns the hash in hex.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// MarshalText implements encoding.TextMarshaler.
func (h Hash) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (h *Hash) UnmarshalText(b []byte) error {
	if len(b) != 2*sha256.Size {
		return fmt.Errorf("index: hash of %d hex digits", len(b))
	}
	_, err := hex.Decode(h[:], b)
	return err
}

// IsZero reports whether h is all zeros (the chain's starting value).
func (h Hash) IsZero() bool { return h == Hash{} }

// Segment is one row of recorder_segments.
type Segment struct {
	ID       int64
	Camera   string
	Facility string
	Run      uint64
	Seq      uint64
	// Start and End are wall times (UTC, microseconds).
	Start, End time.Time
	// MediaStart is the decode time of the first video sample in 90 kHz
	// ticks from the start of the run; MediaDuration the segment's length
	// in the same clock.
	MediaStart    int64
	MediaDuration int64
	// WallDuration is the capture-clock time the segment spans.
	WallDuration time.Duration
	Bytes        int64
	Frames       int
	Codec        string // H264, H265
	Width        int
	Height       int
	AudioCodec   string // "" without audio
	// InitSize is the byte length of the init section; Fragments the
	// compact fragment index (segment.DecodeIndex).
	InitSize  int
	Fragments []byte
	ObjectKey string
	SHA256    Hash
	PrevChain Hash
	Chain     Hash
	LegalHold bool
	Deleting  bool
}

// Gap is one row of recorder_gaps. An open gap has a zero End.
type Gap struct {
	ID     int64
	Camera string
	Start  time.Time
	End    time.Time // zero: still open
	Reason string
	Detail string
}

// Open reports whether the gap is still open.
func (g Gap) Open() bool { return g.End.IsZero() }

// Tombstone is what remains of a segment deleted by retention.
type Tombstone struct {
	SegmentID  int64
	Camera     string
	Facility   string
	Run, Seq   uint64
	Start, End time.Time
	Bytes      int64
	ObjectKey  string
	SHA256     Hash
	PrevChain  Hash
	Chain      Hash
	Reason     string
	DeletedAt  time.Time
}

// Index is the recorder catalogue.
type Index struct {
	pool *pgxpool.Pool
}

// New returns an Index on pool. The schema must have been applied
// (migrate.Apply with Migrations).
func New(pool *pgxpool.Pool) (*Index, error) {
	if pool == nil {
		return nil, errors.New("index: nil pool")
	}
	return &Index{pool: pool}, nil
}

// Ping checks that PostgreSQL answers.
func (ix *Index) Ping(ctx context.Context) error {
	if err := ix.pool.Ping(ctx); err != nil {
		return fmt.Errorf("index: ping: %w", err)
	}
	return nil
}

// Micro truncates t to the database's precision, in UTC.
func Micro(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// ChainHash computes a segment's chain value; see the package documentation
// for the encoding. start and end are truncated to microseconds.
func ChainHash(prev, sum Hash, camera string, start, end time.Time) Hash {
	var buf [32 + 32 + 1 + 64 + 8 + 8]byte
	b := buf[:0]
	b = append(b, prev[:]...)
	b = append(b, sum[:]...)
	b = append(b, byte(len(camera)))
	b = append(b, camera...)
	b = binary.BigEndian.AppendUint64(b, uint64(Micro(start).UnixMicro()))
	b = binary.BigEndian.AppendUint64(b, uint64(Micro(end).UnixMicro()))
	return sha256.Sum256(b)
}

// IsPermanent reports whether err is a refusal by PostgreSQL that retrying
// the same statement cannot cure (a constraint or data error), as opposed
// to an unreachable or failing server.
func IsPermanent(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && len(pe.Code) == 5 {
		switch pe.Code[:2] {
		case "22", "23": // data exception, integrity constraint violation
			return true
		}
	}
	var ve *ValidationError
	return errors.As(err, &ve)
}

// ValidationError is a row refused before it reached PostgreSQL.
type ValidationError struct{ Msg string }

func (e *ValidationError) Error() string { return "index: invalid row: " + e.Msg }

func invalid(format string, a ...any) error {
	return &ValidationError{Msg: fmt.Sprintf(format, a...)}
}

func (s *Segment) validate() error {
	switch {
	case !ValidCamera(s.Camera):
		return invalid("camera id %q", s.Camera)
	case !ValidFacility(s.Facility):
		return invalid("facility id %q", s.Facility)
	case !Micro(s.End).After(Micro(s.Start)):
		return invalid("segment %s: end %s not after start %s", s.ObjectKey, s.End, s.Start)
	case s.ObjectKey == "":
		return invalid("empty object key")
	case s.Run > 1<<62 || s.Seq > 1<<62:
		return invalid("run/seq out of range")
	}
	return nil
}

// InsertSegment indexes s, computing its chain from the camera's chain head
// in the same transaction, and fills s.ID, s.PrevChain and s.Chain. It is
// idempotent by object key: when a row with s.ObjectKey already exists (or
// was already deleted into a tombstone) it changes nothing, fills s from the
// existing row and returns inserted false.
func (ix *Index) InsertSegment(ctx context.Context, s *Segment) (inserted bool, err error) {
	if err := s.validate(); err != nil {
		return false, err
	}
	s.Start, s.End = Micro(s.Start), Micro(s.End)
	err = pgx.BeginFunc(ctx, ix.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO recorder_chain_heads (camera, chain, segments)
			VALUES ($1, $2, 0) ON CONFLICT (camera) DO NOTHING`, s.Camera, make([]byte, 32)); err != nil {
			return err
		}
		var head []byte
		if err := tx.QueryRow(ctx, `SELECT chain FROM recorder_chain_heads WHERE camera = $1 FOR UPDATE`, s.Camera).Scan(&head); err != nil {
			return err
		}
		var id int64
		var prev, chain []byte
		err := tx.QueryRow(ctx, `SELECT id, prev_chain, chain FROM recorder_segments WHERE object_key = $1
			UNION ALL SELECT segment_id, prev_chain, chain FROM recorder_tombstones WHERE object_key = $1
			LIMIT 1`, s.ObjectKey).Scan(&id, &prev, &chain)
		if err == nil {
			s.ID = id
			copy(s.PrevChain[:], prev)
			copy(s.Chain[:], chain)
			return nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		copy(s.PrevChain[:], head)
		s.Chain = ChainHash(s.PrevChain, s.SHA256, s.Camera, s.Start, s.End)
		err = tx.QueryRow(ctx, `INSERT INTO recorder_segments (camera, facility, run, seq, start_at, end_at,
				media_start, media_duration, wall_duration_us, bytes, frames, codec, width, height, audio_codec,
				init_size, fragments, object_key, sha256, prev_chain, chain)
			VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21) RETURNING id`,
			s.Camera, s.Facility, int64(s.Run), int64(s.Seq), s.Start, s.End,
			s.MediaStart, s.MediaDuration, s.WallDuration.Microseconds(), s.Bytes, s.Frames, s.Codec, s.Width, s.Height, s.AudioCodec,
			s.InitSize, s.Fragments, s.ObjectKey, s.SHA256[:], s.PrevChain[:], s.Chain[:]).Scan(&s.ID)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE recorder_chain_heads SET chain = $2, segments = segments + 1, updated_at = now()
			WHERE camera = $1`, s.Camera, s.Chain[:]); err != nil {
			return err
		}
		inserted = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("index: insert segment %s: %w", s.ObjectKey, err)
	}
	return inserted, nil
}

// OpenGap records a gap starting at g.Start. With a zero g.End the gap
// stays open until CloseGap. Idempotent: a gap of the camera starting at the
// same instant is left as it is.
func (ix *Index) OpenGap(ctx context.Context, g Gap) error {
	if !ValidCamera(g.Camera) {
		return invalid("camera id %q", g.Camera)
	}
	if !ValidReason(g.Reason) {
		return invalid("gap reason %q", g.Reason)
	}
	var end any
	if !g.End.IsZero() {
		if !Micro(g.End).After(Micro(g.Start)) {
			return invalid("gap end %s not after start %s", g.End, g.Start)
		}
		end = Micro(g.End)
	}
	_, err := ix.pool.Exec(ctx, `INSERT INTO recorder_gaps (camera, start_at, end_at, reason, detail)
		VALUES ($1, $2, $3, $4, $5) ON CONFLICT (camera, start_at) DO NOTHING`,
		g.Camera, Micro(g.Start), end, g.Reason, g.Detail)
	if err != nil {
		return fmt.Errorf("index: open gap %s %s at %s: %w", g.Camera, g.Reason, g.Start.Format(time.RFC3339Nano), err)
	}
	return nil
}

// CloseGap ends the open gap of camera that started at start. A gap that
// would end at or before its start is removed instead (it covered nothing).
// Closing a gap that is already closed or absent is a no-op.
func (ix *Index) CloseGap(ctx context.Context, camera string, start, end time.Time) error {
	start, end = Micro(start), Micro(end)
	var err error
	if end.After(start) {
		_, err = ix.pool.Exec(ctx, `UPDATE recorder_gaps SET end_at = $3
			WHERE camera = $1 AND start_at = $2 AND end_at IS NULL`, camera, start, end)
	} else {
		_, err = ix.pool.Exec(ctx, `DELETE FROM recorder_gaps
			WHERE camera = $1 AND start_at = $2 AND end_at IS NULL`, camera, start)
	}
	if err != nil {
		return fmt.Errorf("index: close gap %s at %s: %w", camera, start.Format(time.RFC3339Nano), err)
	}
	return nil
}

const segmentCols = `id, camera, facility, run, seq, start_at, end_at, media_start, media_duration, wall_duration_us,
	bytes, frames, codec, width, height, audio_codec, init_size, fragments, object_key, sha256, prev_chain, chain,
	legal_hold, deleting`

func scanSegment(row pgx.Row) (Segment, error) {
	var s Segment
	var run, seq, wall int64
	var sum, prev, chain []byte
	err := row.Scan(&s.ID, &s.Camera, &s.Facility, &run, &seq, &s.Start, &s.End, &s.MediaStart, &s.MediaDuration, &wall,
		&s.Bytes, &s.Frames, &s.Codec, &s.Width, &s.Height, &s.AudioCodec, &s.InitSize, &s.Fragments, &s.ObjectKey,
		&sum, &prev, &chain, &s.LegalHold, &s.Deleting)
	if err != nil {
		return s, err
	}
	s.Run, s.Seq = uint64(run), uint64(seq)
	s.WallDuration = time.Duration(wall) * time.Microsecond
	s.Start, s.End = s.Start.UTC(), s.End.UTC()
	copy(s.SHA256[:], sum)
	copy(s.PrevChain[:], prev)
	copy(s.Chain[:], chain)
	return s, nil
}

// Segments returns the segments of camera that overlap [from, to), in time
// order.
func (ix *Index) Segments(ctx context.Context, camera string, from, to time.Time) ([]Segment, error) {
	rows, err := ix.pool.Query(ctx, `SELECT `+segmentCols+` FROM recorder_segments
		WHERE camera = $1 AND start_at < $3 AND end_at > $2 ORDER BY start_at`, camera, Micro(from), Micro(to))
	if err != nil {
		return nil, fmt.Errorf("index: segments of %s: %w", camera, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Segment, error) { return scanSegment(r) })
	if err != nil {
		return nil, fmt.Errorf("index: segments of %s: %w", camera, err)
	}
	return out, nil
}

// SegmentAt returns the segment of camera that contains t, or ErrNoSegment.
func (ix *Index) SegmentAt(ctx context.Context, camera string, t time.Time) (Segment, error) {
	s, err := scanSegment(ix.pool.QueryRow(ctx, `SELECT `+segmentCols+` FROM recorder_segments
		WHERE camera = $1 AND start_at <= $2 AND end_at > $2`, camera, Micro(t)))
	if errors.Is(err, pgx.ErrNoRows) {
		return s, ErrNoSegment
	}
	if err != nil {
		return s, fmt.Errorf("index: segment of %s at %s: %w", camera, t.Format(time.RFC3339Nano), err)
	}
	return s, nil
}

// SegmentByKey returns the segment stored under key, or ErrNoSegment.
func (ix *Index) SegmentByKey(ctx context.Context, key string) (Segment, error) {
	s, err := scanSegment(ix.pool.QueryRow(ctx, `SELECT `+segmentCols+` FROM recorder_segments WHERE object_key = $1`, key))
	if errors.Is(err, pgx.ErrNoRows) {
		return s, ErrNoSegment
	}
	if err != nil {
		return s, fmt.Errorf("index: segment %s: %w", key, err)
	}
	return s, nil
}

// ErrNoSegment is returned when no segment matches.
var ErrNoSegment = errors.New("no such segment")

// Gaps returns the gaps of camera that overlap [from, to), in time order;
// open gaps have a zero End.
func (ix *Index) Gaps(ctx context.Context, camera string, from, to time.Time) ([]Gap, error) {
	rows, err := ix.pool.Query(ctx, `SELECT id, camera, start_at, end_at, reason, detail FROM recorder_gaps
		WHERE camera = $1 AND start_at < $3 AND (end_at IS NULL OR end_at > $2) ORDER BY start_at`,
		camera, Micro(from), Micro(to))
	if err != nil {
		return nil, fmt.Errorf("index: gaps of %s: %w", camera, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Gap, error) {
		var g Gap
		var end *time.Time
		if err := r.Scan(&g.ID, &g.Camera, &g.Start, &end, &g.Reason, &g.Detail); err != nil {
			return g, err
		}
		g.Start = g.Start.UTC()
		if end != nil {
			g.End = end.UTC()
		}
		return g, nil
	})
	if err != nil {
		return nil, fmt.Errorf("index: gaps of %s: %w", camera, err)
	}
	return out, nil
}

// Tombstones returns the tombstones of camera that overlap [from, to), in
// time order.
func (ix *Index) Tombstones(ctx context.Context, camera string, from, to time.Time) ([]Tombstone, error) {
	rows, err := ix.pool.Query(ctx, `SELECT segment_id, camera, facility, run, seq, start_at, end_at, bytes, object_key,
			sha256, prev_chain, chain, reason, deleted_at
		FROM recorder_tombstones WHERE camera = $1 AND start_at < $3 AND end_at > $2 ORDER BY start_at`,
		camera, Micro(from), Micro(to))
	if err != nil {
		return nil, fmt.Errorf("index: tombstones of %s: %w", camera, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Tombstone, error) {
		var t Tombstone
		var run, seq int64
		var sum, prev, chain []byte
		err := r.Scan(&t.SegmentID, &t.Camera, &t.Facility, &run, &seq, &t.Start, &t.End, &t.Bytes, &t.ObjectKey,
			&sum, &prev, &chain, &t.Reason, &t.DeletedAt)
		t.Run, t.Seq = uint64(run), uint64(seq)
		t.Start, t.End = t.Start.UTC(), t.End.UTC()
		copy(t.SHA256[:], sum)
		copy(t.PrevChain[:], prev)
		copy(t.Chain[:], chain)
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("index: tombstones of %s: %w", camera, err)
	}
	return out, nil
}

// Timeline is what a camera's timeline shows for a range.
type Timeline struct {
	Segments   []Segment
	Gaps       []Gap
	Tombstones []Tombstone
	// IndexedUntil is the end of the camera's latest closed row (segment,
	// gap or tombstone): the index covers the camera's history up to it,
	// and beyond it up to now only when an open gap runs. The time after it
	// that has no open gap is being recorded and not indexed yet.
	IndexedUntil time.Time
}

// Timeline returns the segments, gaps and tombstones of camera overlapping
// [from, to).
func (ix *Index) Timeline(ctx context.Context, camera string, from, to time.Time) (Timeline, error) {
	var tl Timeline
	var err error
	if tl.Segments, err = ix.Segments(ctx, camera, from, to); err != nil {
		return tl, err
	}
	if tl.Gaps, err = ix.Gaps(ctx, camera, from, to); err != nil {
		return tl, err
	}
	if tl.Tombstones, err = ix.Tombstones(ctx, camera, from, to); err != nil {
		return tl, err
	}
	st, err := ix.CameraState(ctx, camera)
	if err != nil {
		return tl, err
	}
	tl.IndexedUntil = st.LastEnd
	return tl, nil
}

// CameraState is what the index knows about the end of a camera's history.
type CameraState struct {
	// LastEnd is the latest end of any closed row (zero: none).
	LastEnd time.Time
	// OpenGap is the camera's open gap, if any.
	OpenGap *Gap
	// MaxRun is the highest run number indexed for the camera.
	MaxRun uint64
	// HasRows is false for a camera the index has never seen.
	HasRows bool
}

// CameraState returns the state of camera's history.
func (ix *Index) CameraState(ctx context.Context, camera string) (CameraState, error) {
	var st CameraState
	var last *time.Time
	var maxRun *int64
	err := ix.pool.QueryRow(ctx, `SELECT
		(SELECT greatest(
			(SELECT max(end_at) FROM recorder_segments WHERE camera = $1),
			(SELECT max(end_at) FROM recorder_gaps WHERE camera = $1),
			(SELECT max(end_at) FROM recorder_tombstones WHERE camera = $1))),
		(SELECT greatest(
			(SELECT max(run) FROM recorder_segments WHERE camera = $1),
			(SELECT max(run) FROM recorder_tombstones WHERE camera = $1)))`, camera).Scan(&last, &maxRun)
	if err != nil {
		return st, fmt.Errorf("index: state of %s: %w", camera, err)
	}
	if last != nil {
		st.LastEnd, st.HasRows = last.UTC(), true
	}
	if maxRun != nil {
		st.MaxRun, st.HasRows = uint64(*maxRun), true
	}
	var g Gap
	err = ix.pool.QueryRow(ctx, `SELECT id, camera, start_at, reason, detail FROM recorder_gaps
		WHERE camera = $1 AND end_at IS NULL ORDER BY start_at DESC LIMIT 1`, camera).Scan(&g.ID, &g.Camera, &g.Start, &g.Reason, &g.Detail)
	switch {
	case err == nil:
		g.Start = g.Start.UTC()
		st.OpenGap, st.HasRows = &g, true
	case !errors.Is(err, pgx.ErrNoRows):
		return st, fmt.Errorf("index: open gap of %s: %w", camera, err)
	}
	return st, nil
}

// ChainHead returns the camera's latest chain value and the number of
// segments ever chained; ok is false for a camera without segments.
func (ix *Index) ChainHead(ctx context.Context, camera string) (head Hash, n int64, ok bool, err error) {
	var b []byte
	err = ix.pool.QueryRow(ctx, `SELECT chain, segments FROM recorder_chain_heads WHERE camera = $1`, camera).Scan(&b, &n)
	if errors.Is(err, pgx.ErrNoRows) {
		return head, 0, false, nil
	}
	if err != nil {
		return head, 0, false, fmt.Errorf("index: chain head of %s: %w", camera, err)
	}
	copy(head[:], b)
	return head, n, true, nil
}

// Cameras returns every camera with segments or tombstones, with its
// facility.
func (ix *Index) Cameras(ctx context.Context) ([]CameraRef, error) {
	rows, err := ix.pool.Query(ctx, `SELECT DISTINCT camera, facility FROM recorder_segments
		UNION SELECT DISTINCT camera, facility FROM recorder_tombstones ORDER BY 1, 2`)
	if err != nil {
		return nil, fmt.Errorf("index: cameras: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[CameraRef])
	if err != nil {
		return nil, fmt.Errorf("index: cameras: %w", err)
	}
	return out, nil
}

// CameraRef names a camera and its facility.
type CameraRef struct {
	Camera   string
	Facility string
}

// ObjectRef is an object the index expects in (or, for a tombstone,
// expects gone from) the store.
type ObjectRef struct {
	Key       string
	Bytes     int64
	SHA256    Hash
	Tombstone bool
}

// Objects returns the objects the index knows for a camera, segments and
// tombstones, in byte order of keys.
func (ix *Index) Objects(ctx context.Context, camera string) ([]ObjectRef, error) {
	rows, err := ix.pool.Query(ctx, `SELECT object_key COLLATE "C", bytes, sha256, false FROM recorder_segments WHERE camera = $1
		UNION ALL SELECT object_key COLLATE "C", bytes, sha256, true FROM recorder_tombstones WHERE camera = $1
		ORDER BY 1`, camera)
	if err != nil {
		return nil, fmt.Errorf("index: objects of %s: %w", camera, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ObjectRef, error) {
		var o ObjectRef
		var sum []byte
		err := r.Scan(&o.Key, &o.Bytes, &sum, &o.Tombstone)
		copy(o.SHA256[:], sum)
		return o, err
	})
	if err != nil {
		return nil, fmt.Errorf("index: objects of %s: %w", camera, err)
	}
	return out, nil
}

// ChainEntry is one link of a camera's chain: a segment or a tombstone.
type ChainEntry struct {
	SegmentID  int64
	Tombstone  bool
	ObjectKey  string
	Start, End time.Time
	Bytes      int64
	SHA256     Hash
	PrevChain  Hash
	Chain      Hash
}

// ChainEntries returns camera's segments and tombstones overlapping
// [from, to) in time order.
func (ix *Index) ChainEntries(ctx context.Context, camera string, from, to time.Time) ([]ChainEntry, error) {
	rows, err := ix.pool.Query(ctx, `SELECT id, false, object_key, start_at, end_at, bytes, sha256, prev_chain, chain
			FROM recorder_segments WHERE camera = $1 AND start_at < $3 AND end_at > $2
		UNION ALL SELECT segment_id, true, object_key, start_at, end_at, bytes, sha256, prev_chain, chain
			FROM recorder_tombstones WHERE camera = $1 AND start_at < $3 AND end_at > $2
		ORDER BY 4, 1`, camera, Micro(from), Micro(to))
	if err != nil {
		return nil, fmt.Errorf("index: chain of %s: %w", camera, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ChainEntry, error) {
		var e ChainEntry
		var sum, prev, chain []byte
		err := r.Scan(&e.SegmentID, &e.Tombstone, &e.ObjectKey, &e.Start, &e.End, &e.Bytes, &sum, &prev, &chain)
		e.Start, e.End = e.Start.UTC(), e.End.UTC()
		copy(e.SHA256[:], sum)
		copy(e.PrevChain[:], prev)
		copy(e.Chain[:], chain)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("index: chain of %s: %w", camera, err)
	}
	return out, nil
}
