package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Audit actions written by Kuzet. Other packages add their own with the same
// dotted shape; these are the ones with rules attached.
const (
	AuditLogin        = "login"
	AuditLoginFailed  = "login.failed"
	AuditLogout       = "logout"
	AuditLiveStart    = "live.start"
	AuditLiveStop     = "live.stop"
	AuditPlayback     = "playback"
	AuditExport       = "export"
	AuditHoldPlace    = "hold.place"
	AuditHoldRelease  = "hold.release"
	AuditFootageQuery = "footage.query"
)

// Outcomes of an audited action.
const (
	OutcomeOK      = "ok"      // done
	OutcomeDenied  = "denied"  // refused by the policy or bad credentials
	OutcomeFailed  = "failed"  // attempted, did not succeed
	OutcomeStarted = "started" // begun; a later row says how it ended
)

// reasonRequired lists the actions that must carry a reason.
func reasonRequired(action string) bool {
	switch action {
	case AuditPlayback, AuditExport, AuditHoldRelease:
		return true
	}
	return false
}

// Entry is one audit row as written by a caller.
type Entry struct {
	// Actor is the user name ("system:..." for Kuzet itself). Required.
	Actor string
	// Role is the actor's roles joined with ",".
	Role string
	// Client is the client's network address.
	Client string
	// Action is what was done (AuditLogin, "camera.update", ...). Required.
	Action string
	// Facility is the facility the action concerns, when there is one.
	Facility string
	// Objects are the ids acted on, as "kind:id" ("camera:f16-c01").
	Objects []string
	// From and To bound the footage concerned, when there is some.
	From, To time.Time
	// Reason is why; mandatory for playback, export and hold release.
	Reason string
	// Outcome is OutcomeOK, OutcomeDenied, OutcomeFailed or OutcomeStarted.
	// Default: OutcomeOK.
	Outcome string
	// Detail is free text (a changed field list, an error).
	Detail string
}

// EntryFor starts an entry for actor p at client.
func EntryFor(p Principal, client, action string) Entry {
	return Entry{Actor: p.Username, Role: p.RoleString(), Client: client, Action: action}
}

// AuditRow is one stored row.
type AuditRow struct {
	Seq      int64      `json:"seq"`
	At       time.Time  `json:"at"`
	Actor    string     `json:"actor"`
	Role     string     `json:"role"`
	Client   string     `json:"client"`
	Action   string     `json:"action"`
	Facility string     `json:"facility"`
	Objects  []string   `json:"objects"`
	From     *time.Time `json:"from"`
	To       *time.Time `json:"to"`
	Reason   string     `json:"reason"`
	Outcome  string     `json:"outcome"`
	Detail   string     `json:"detail"`
	PrevHash []byte     `json:"prev_hash"`
	Hash     []byte     `json:"hash"`
}

// Audit writes and reads the hash-chained audit log.
//
// Writers are serialised by a row lock on audit_chain_head taken inside the
// writing transaction, so the chain is linear across every node sharing the
// database; the lock is held only until that transaction commits.
type Audit struct {
	pool *pgxpool.Pool
	now  func() time.Time
}

func newAudit(pool *pgxpool.Pool, now func() time.Time) *Audit {
	return &Audit{pool: pool, now: now}
}

// Record writes one row in its own transaction. An error wraps ErrAudit:
// the caller must then refuse the action it was about to take.
func (a *Audit) Record(ctx context.Context, e Entry) error {
	err := pgx.BeginFunc(ctx, a.pool, func(tx pgx.Tx) error { return a.record(ctx, tx, e) })
	if err != nil && !errors.Is(err, ErrAudit) {
		return fmt.Errorf("%w: %v", ErrAudit, err)
	}
	return err
}

// record appends e inside tx. Take it last in a transaction: it holds the
// chain lock until commit.
func (a *Audit) record(ctx context.Context, tx pgx.Tx, e Entry) error {
	if e.Outcome == "" {
		e.Outcome = OutcomeOK
	}
	switch {
	case e.Actor == "":
		return fmt.Errorf("%w: entry without actor", ErrAudit)
	case e.Action == "":
		return fmt.Errorf("%w: entry without action", ErrAudit)
	case reasonRequired(e.Action) && e.Reason == "" && e.Outcome != OutcomeDenied:
		return fmt.Errorf("%w: %s needs a reason", ErrAudit, e.Action)
	}
	if e.Objects == nil {
		e.Objects = []string{}
	}
	var seq int64
	var prev []byte
	if err := tx.QueryRow(ctx, "SELECT seq, hash FROM audit_chain_head WHERE id FOR UPDATE").Scan(&seq, &prev); err != nil {
		return fmt.Errorf("%w: lock chain head: %v", ErrAudit, err)
	}
	row := AuditRow{
		Seq: seq + 1, At: a.now().UTC().Truncate(time.Microsecond),
		Actor: e.Actor, Role: e.Role, Client: e.Client, Action: e.Action, Facility: e.Facility,
		Objects: e.Objects, Reason: e.Reason, Outcome: e.Outcome, Detail: e.Detail, PrevHash: prev,
	}
	if !e.From.IsZero() {
		f := e.From.UTC().Truncate(time.Microsecond)
		row.From = &f
	}
	if !e.To.IsZero() {
		t := e.To.UTC().Truncate(time.Microsecond)
		row.To = &t
	}
	row.Hash = row.chainHash()
	if _, err := tx.Exec(ctx, `INSERT INTO audit_log (seq, at, actor, role, client, action, facility, objects,
		range_from, range_to, reason, outcome, detail, prev_hash, hash)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
		row.Seq, row.At, row.Actor, row.Role, row.Client, row.Action, row.Facility, row.Objects,
		row.From, row.To, row.Reason, row.Outcome, row.Detail, row.PrevHash, row.Hash); err != nil {
		return fmt.Errorf("%w: insert: %v", ErrAudit, err)
	}
	if _, err := tx.Exec(ctx, "UPDATE audit_chain_head SET seq = $1, hash = $2 WHERE id", row.Seq, row.Hash); err != nil {
		return fmt.Errorf("%w: advance chain head: %v", ErrAudit, err)
	}
	return nil
}

// canonical is the row's encoding that the hash covers: a version tag, then
// every field in a fixed order as decimal length, ':', bytes. Times are UTC
// with microseconds (what PostgreSQL keeps); a missing time is empty.
func (r *AuditRow) canonical() []byte {
	var b bytes.Buffer
	b.WriteString("kuzet-audit-v1")
	field := func(s string) {
		b.WriteByte('|')
		b.WriteString(strconv.Itoa(len(s)))
		b.WriteByte(':')
		b.WriteString(s)
	}
	ts := func(t *time.Time) string {
		if t == nil {
			return ""
		}
		return t.UTC().Format("2006-01-02T15:04:05.000000Z")
	}
	field(strconv.FormatInt(r.Seq, 10))
	field(ts(&r.At))
	field(r.Actor)
	field(r.Role)
	field(r.Client)
	field(r.Action)
	field(r.Facility)
	field(strconv.Itoa(len(r.Objects)))
	for _, o := range r.Objects {
		field(o)
	}
	field(ts(r.From))
	field(ts(r.To))
	field(r.Reason)
	field(r.Outcome)
	field(r.Detail)
	return b.Bytes()
}

// chainHash is SHA-256(prev_hash || canonical).
func (r *AuditRow) chainHash() []byte {
	h := sha256.New()
	h.Write(r.PrevHash)
	h.Write(r.canonical())
	return h.Sum(nil)
}

// AuditFilter selects audit rows. Zero fields do not filter.
type AuditFilter struct {
	From, To time.Time
	Actor    string
	Action   string
	// Facilities keeps rows of these facilities only; AnyFacility lifts the
	// restriction (rows without a facility are then included too).
	Facilities  []string
	AnyFacility bool
	// AfterSeq pages: rows with seq > AfterSeq. Limit caps the rows (default
	// and maximum 1000).
	AfterSeq int64
	Limit    int
}

// List returns rows in chain order.
func (a *Audit) List(ctx context.Context, f AuditFilter) ([]AuditRow, error) {
	if f.Limit <= 0 || f.Limit > 1000 {
		f.Limit = 1000
	}
	q := `SELECT seq, at, actor, role, client, action, facility, objects, range_from, range_to, reason, outcome,
		detail, prev_hash, hash FROM audit_log WHERE seq > $1
		AND ($2::timestamptz IS NULL OR at >= $2) AND ($3::timestamptz IS NULL OR at < $3)
		AND ($4 = '' OR actor = $4) AND ($5 = '' OR action = $5)
		AND ($6 OR facility = ANY($7))
		ORDER BY seq LIMIT $8`
	rows, err := a.pool.Query(ctx, q, f.AfterSeq, nullTime(f.From), nullTime(f.To), f.Actor, f.Action,
		f.AnyFacility, nonNil(f.Facilities), f.Limit)
	if err != nil {
		return nil, fmt.Errorf("audit list: %w", err)
	}
	out, err := pgx.CollectRows(rows, scanAuditRow)
	if err != nil {
		return nil, fmt.Errorf("audit list: %w", err)
	}
	return out, nil
}

func scanAuditRow(row pgx.CollectableRow) (AuditRow, error) {
	var r AuditRow
	err := row.Scan(&r.Seq, &r.At, &r.Actor, &r.Role, &r.Client, &r.Action, &r.Facility, &r.Objects,
		&r.From, &r.To, &r.Reason, &r.Outcome, &r.Detail, &r.PrevHash, &r.Hash)
	r.At = r.At.UTC()
	if r.From != nil {
		*r.From = r.From.UTC()
	}
	if r.To != nil {
		*r.To = r.To.UTC()
	}
	return r, err
}

// ChainError names the first row at which the audit chain is broken.
type ChainError struct {
	Seq     int64  // the first bad (or missing) row
	Problem string // what is wrong with it
}

func (e *ChainError) Error() string {
	return fmt.Sprintf("audit chain broken at row %d: %s", e.Seq, e.Problem)
}

// VerifyResult is the state of a sound chain.
type VerifyResult struct {
	Rows     int64  // rows checked
	HeadSeq  int64  // the last row
	HeadHash []byte // its hash: note it to detect a rewritten chain later
}

// Querier is what VerifyAudit reads through (a pool, a connection, a tx).
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// VerifyAudit walks the whole chain in order and checks that the rows are
// numbered 1, 2, 3, ... without gaps, that each row's prev_hash is the hash
// of the row before, that each hash matches the row's content, and that the
// chain head names the last row. A broken chain is a *ChainError naming the
// first bad row; other errors are failures to read.
func VerifyAudit(ctx context.Context, q Querier) (VerifyResult, error) {
	var res VerifyResult
	var headSeq int64
	var headHash []byte
	if err := q.QueryRow(ctx, "SELECT seq, hash FROM audit_chain_head WHERE id").Scan(&headSeq, &headHash); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return res, &ChainError{Seq: 1, Problem: "the chain head row is missing"}
		}
		return res, fmt.Errorf("audit verify: read head: %w", err)
	}
	rows, err := q.Query(ctx, `SELECT seq, at, actor, role, client, action, facility, objects, range_from, range_to,
		reason, outcome, detail, prev_hash, hash FROM audit_log ORDER BY seq`)
	if err != nil {
		return res, fmt.Errorf("audit verify: %w", err)
	}
	defer rows.Close()
	prev := make([]byte, sha256.Size)
	want := int64(1)
	for rows.Next() {
		r, err := scanAuditRow(rows)
		if err != nil {
			return res, fmt.Errorf("audit verify: row after %d: %w", want-1, err)
		}
		switch {
		case r.Seq != want:
			if r.Seq > want {
				return res, &ChainError{Seq: want, Problem: fmt.Sprintf("row is missing (next row present is %d)", r.Seq)}
			}
			return res, &ChainError{Seq: r.Seq, Problem: fmt.Sprintf("out of order (expected row %d)", want)}
		case !bytes.Equal(r.PrevHash, prev):
			return res, &ChainError{Seq: r.Seq, Problem: "prev_hash does not match the hash of the row before (rows removed, inserted or reordered)"}
		case !bytes.Equal(r.chainHash(), r.Hash):
			return res, &ChainError{Seq: r.Seq, Problem: "content does not match its hash (row altered)"}
		}
		prev = r.Hash
		res.Rows++
		want++
	}
	if err := rows.Err(); err != nil {
		return res, fmt.Errorf("audit verify: %w", err)
	}
	res.HeadSeq = want - 1
	res.HeadHash = prev
	if headSeq != res.HeadSeq || !bytes.Equal(headHash, prev) {
		if headSeq > res.HeadSeq {
			return res, &ChainError{Seq: res.HeadSeq + 1, Problem: fmt.Sprintf("row is missing: the chain head names row %d but the log ends at %d", headSeq, res.HeadSeq)}
		}
		return res, &ChainError{Seq: res.HeadSeq, Problem: fmt.Sprintf("the chain head (row %d) does not match the last row", headSeq)}
	}
	return res, nil
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
