package alerts

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kuzet/kuzet/internal/migrate"
	"github.com/kuzet/kuzet/registry"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations is the alerts schema, for migrate.Apply (after the registry's).
func Migrations() migrate.Set {
	return migrate.Set{Component: "alerts", FS: migrationFiles, Dir: "migrations"}
}

// eventLock is the advisory lock every transaction that writes alert events
// holds, so that event seqs are committed in order.
const eventLock = 0x6b757a6561 // "kuzea"

// notifyChannel is the PostgreSQL channel told about new events.
const notifyChannel = "kuzet_alert_events"

// Errors callers branch on.
var (
	// ErrNotFound: no such alert, rule or maintenance entry.
	ErrNotFound = registry.ErrNotFound
	// ErrConflict: the alert is not in a state that allows the change.
	ErrConflict = registry.ErrConflict
)

// auditor writes audit rows; the registry's Audit implements it.
type auditor interface {
	Record(ctx context.Context, e registry.Entry) error
}

// store keeps alerts, events, rules and maintenance in PostgreSQL.
// Safe for concurrent use.
type store struct {
	pool  *pgxpool.Pool
	audit auditor
	now   func() time.Time
}

func (s *store) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

const alertCols = `id, kind, subject, camera_id, facility_id, zone_id, severity, state, title, detail,
	coalesce(rule_id, 0), since, opened_at, acked_at, acked_by, ack_note, resolved_at, resolved_by, resolve_note,
	escalated_at, escalations, coalesce(incident_id, 0), changed_at`

func scanAlert(row pgx.CollectableRow) (Alert, error) {
	var a Alert
	err := row.Scan(&a.ID, &a.Kind, &a.Subject, &a.Camera, &a.Facility, &a.Zone, &a.Severity, &a.State, &a.Title,
		&a.Detail, &a.RuleID, &a.Since, &a.OpenedAt, &a.AckedAt, &a.AckedBy, &a.AckNote, &a.ResolvedAt, &a.ResolvedBy,
		&a.ResolveNote, &a.EscalatedAt, &a.Escalations, &a.IncidentID, &a.LastChangedAt)
	a.TimelineURL = TimelineURL(a.Camera, a.Since)
	return a, err
}

// eventTx runs fn in a transaction holding the event lock; fn returns the
// events to record (their Seq is filled in) and an audit entry to write
// before commit (nil for none). If the audit row cannot be written nothing
// is committed.
func (s *store) eventTx(ctx context.Context, fn func(tx pgx.Tx) ([]Event, *registry.Entry, error)) ([]Event, error) {
	var out []Event
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", eventLock); err != nil {
			return fmt.Errorf("event lock: %w", err)
		}
		evs, entry, err := fn(tx)
		if err != nil {
			return err
		}
		for i := range evs {
			b, err := json.Marshal(evs[i].Alert)
			if err != nil {
				return err
			}
			if err := tx.QueryRow(ctx, `INSERT INTO alert_events (alert_id, type, at, facility_id, alert)
				VALUES ($1, $2, $3, $4, $5) RETURNING seq`, evs[i].Alert.ID, evs[i].Type, evs[i].At, evs[i].Alert.Facility, b).
				Scan(&evs[i].Seq); err != nil {
				return fmt.Errorf("record event: %w", err)
			}
		}
		if len(evs) > 0 {
			if _, err := tx.Exec(ctx, "SELECT pg_notify($1, $2)", notifyChannel, strconv.FormatInt(evs[len(evs)-1].Seq, 10)); err != nil {
				return fmt.Errorf("notify: %w", err)
			}
		}
		if entry != nil {
			// The audit row has its own transaction; this one commits only
			// if it was written.
			if err := s.audit.Record(ctx, *entry); err != nil {
				return err
			}
		}
		out = evs
		return nil
	})
	return out, err
}

// open opens an alert for a's condition, or returns the one already active
// (opened is then false and no event is written).
func (s *store) open(ctx context.Context, a Alert) (Alert, []Event, bool, error) {
	now := s.clock()
	var opened bool
	evs, err := s.eventTx(ctx, func(tx pgx.Tx) ([]Event, *registry.Entry, error) {
		rows, err := tx.Query(ctx, `INSERT INTO alerts (kind, subject, camera_id, facility_id, zone_id, severity, state,
			title, detail, rule_id, since, opened_at, changed_at)
			VALUES ($1, $2, $3, $4, $5, $6, 'open', $7, $8, nullif($9, 0), $10, $11, $11)
			ON CONFLICT (kind, subject) WHERE state <> 'resolved' DO NOTHING
			RETURNING `+alertCols,
			a.Kind, a.Subject, a.Camera, a.Facility, a.Zone, a.Severity, a.Title, a.Detail, a.RuleID, a.Since.UTC(), now)
		if err != nil {
			return nil, nil, err
		}
		got, err := pgx.CollectRows(rows, scanAlert)
		if err != nil {
			return nil, nil, err
		}
		if len(got) == 1 {
			a, opened = got[0], true
			return []Event{{Type: EventOpened, At: now, Alert: a}}, nil, nil
		}
		rows, err = tx.Query(ctx, "SELECT "+alertCols+" FROM alerts WHERE kind = $1 AND subject = $2 AND state <> 'resolved'", a.Kind, a.Subject)
		if err != nil {
			return nil, nil, err
		}
		a, err = pgx.CollectExactlyOneRow(rows, scanAlert)
		return nil, nil, err
	})
	if err != nil {
		return Alert{}, nil, false, fmt.Errorf("open %s alert for %s: %w", a.Kind, a.Subject, err)
	}
	return a, evs, opened, nil
}

// change applies a change to active alert id under a row lock: mutate gets
// the current alert and returns the SQL SET clause with its arguments
// (from $2 on), the event type, and the audit entry (nil for none). It
// refuses (ErrConflict) when the alert is resolved.
func (s *store) change(ctx context.Context, id int64, mutate func(cur Alert, now time.Time) (set string, args []any, ev EventType, entry *registry.Entry, err error)) (Alert, []Event, error) {
	now := s.clock()
	var out Alert
	evs, err := s.eventTx(ctx, func(tx pgx.Tx) ([]Event, *registry.Entry, error) {
		rows, err := tx.Query(ctx, "SELECT "+alertCols+" FROM alerts WHERE id = $1 FOR UPDATE", id)
		if err != nil {
			return nil, nil, err
		}
		cur, err := pgx.CollectExactlyOneRow(rows, scanAlert)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, nil, fmt.Errorf("alert %d: %w", id, ErrNotFound)
		}
		if err != nil {
			return nil, nil, err
		}
		set, args, ev, entry, err := mutate(cur, now)
		if err != nil {
			return nil, nil, err
		}
		rows, err = tx.Query(ctx, "UPDATE alerts SET "+set+", changed_at = $1 WHERE id = "+strconv.FormatInt(id, 10)+" RETURNING "+alertCols,
			append([]any{now}, args...)...)
		if err != nil {
			return nil, nil, err
		}
		out, err = pgx.CollectExactlyOneRow(rows, scanAlert)
		if err != nil {
			return nil, nil, err
		}
		return []Event{{Type: ev, At: now, Alert: out}}, entry, nil
	})
	return out, evs, err
}

func active(cur Alert) error {
	if cur.State == StateResolved {
		return fmt.Errorf("alert %d is resolved: %w", cur.ID, ErrConflict)
	}
	return nil
}

// raise sets a higher severity and new detail on an active alert (no
// audit: the system does it).
func (s *store) raise(ctx context.Context, id int64, sev Severity, detail string) (Alert, []Event, error) {
	return s.change(ctx, id, func(cur Alert, _ time.Time) (string, []any, EventType, *registry.Entry, error) {
		if err := active(cur); err != nil {
			return "", nil, "", nil, err
		}
		return "severity = $2, detail = $3", []any{sev, detail}, EventUpdated, nil, nil
	})
}

// escalate raises an unacknowledged alert one severity and counts it.
func (s *store) escalate(ctx context.Context, id int64) (Alert, []Event, error) {
	return s.change(ctx, id, func(cur Alert, now time.Time) (string, []any, EventType, *registry.Entry, error) {
		if cur.State != StateOpen {
			return "", nil, "", nil, fmt.Errorf("alert %d is %s: %w", cur.ID, cur.State, ErrConflict)
		}
		return "severity = $2, escalated_at = $3, escalations = escalations + 1", []any{cur.Severity.Raise(), now}, EventEscalated, nil, nil
	})
}

// resolveAuto resolves an alert whose condition cleared.
func (s *store) resolveAuto(ctx context.Context, id int64, note string) (Alert, []Event, error) {
	return s.change(ctx, id, func(cur Alert, now time.Time) (string, []any, EventType, *registry.Entry, error) {
		if err := active(cur); err != nil {
			return "", nil, "", nil, err
		}
		return "state = 'resolved', resolved_at = $2, resolved_by = 'system', resolve_note = $3", []any{now, note}, EventResolved, nil, nil
	})
}

// auditEntry starts the audit row of a person's change to alert a.
func auditEntry(act registry.Actor, action string, a Alert) *registry.Entry {
	e := registry.EntryFor(act.Principal, act.Client, action)
	e.Facility = a.Facility
	e.Objects = []string{fmt.Sprintf("alert:%d", a.ID)}
	if a.Camera != "" {
		e.Objects = append(e.Objects, "camera:"+a.Camera)
	}
	return &e
}

// acknowledge records who acknowledged an open alert, when, with a note.
func (s *store) acknowledge(ctx context.Context, act registry.Actor, id int64, note string) (Alert, []Event, error) {
	return s.change(ctx, id, func(cur Alert, now time.Time) (string, []any, EventType, *registry.Entry, error) {
		if cur.State != StateOpen {
			return "", nil, "", nil, fmt.Errorf("alert %d is %s: %w", cur.ID, cur.State, ErrConflict)
		}
		e := auditEntry(act, "alert.ack", cur)
		e.Detail = fmt.Sprintf("%s %s; note: %s", cur.Kind, cur.Subject, note)
		return "state = 'acknowledged', acked_at = $2, acked_by = $3, ack_note = $4", []any{now, act.Principal.Username, note},
			EventAcknowledged, e, nil
	})
}

// resolveBy resolves an active alert by hand.
func (s *store) resolveBy(ctx context.Context, act registry.Actor, id int64, note string) (Alert, []Event, error) {
	return s.change(ctx, id, func(cur Alert, now time.Time) (string, []any, EventType, *registry.Entry, error) {
		if err := active(cur); err != nil {
			return "", nil, "", nil, err
		}
		e := auditEntry(act, "alert.resolve", cur)
		e.Detail = fmt.Sprintf("%s %s; note: %s", cur.Kind, cur.Subject, note)
		return "state = 'resolved', resolved_at = $2, resolved_by = $3, resolve_note = $4", []any{now, act.Principal.Username, note},
			EventResolved, e, nil
	})
}

// linkIncident records the incident created from an alert.
func (s *store) linkIncident(ctx context.Context, act registry.Actor, id, incident int64) (Alert, []Event, error) {
	return s.change(ctx, id, func(cur Alert, _ time.Time) (string, []any, EventType, *registry.Entry, error) {
		if cur.IncidentID != 0 {
			return "", nil, "", nil, fmt.Errorf("alert %d already has incident %d: %w", cur.ID, cur.IncidentID, ErrConflict)
		}
		e := auditEntry(act, "alert.incident", cur)
		e.Objects = append(e.Objects, fmt.Sprintf("incident:%d", incident))
		e.From = cur.Since
		e.Detail = fmt.Sprintf("incident %d created from %s %s", incident, cur.Kind, cur.Subject)
		return "incident_id = $2", []any{incident}, EventIncident, e, nil
	})
}

// recordPast writes an alert that opened and resolved while the database
// could not be reached (the database outage itself).
func (s *store) recordPast(ctx context.Context, a Alert, resolvedAt time.Time, note string) ([]Event, error) {
	now := s.clock()
	return s.eventTx(ctx, func(tx pgx.Tx) ([]Event, *registry.Entry, error) {
		rows, err := tx.Query(ctx, `INSERT INTO alerts (kind, subject, camera_id, facility_id, zone_id, severity, state,
			title, detail, rule_id, since, opened_at, resolved_at, resolved_by, resolve_note, changed_at)
			VALUES ($1, $2, $3, $4, $5, $6, 'resolved', $7, $8, nullif($9, 0), $10, $10, $11, 'system', $12, $13)
			RETURNING `+alertCols,
			a.Kind, a.Subject, a.Camera, a.Facility, a.Zone, a.Severity, a.Title, a.Detail, a.RuleID, a.Since.UTC(),
			resolvedAt.UTC(), note, now)
		if err != nil {
			return nil, nil, err
		}
		got, err := pgx.CollectExactlyOneRow(rows, scanAlert)
		if err != nil {
			return nil, nil, err
		}
		return []Event{{Type: EventOpened, At: got.OpenedAt, Alert: got}, {Type: EventResolved, At: now, Alert: got}}, nil, nil
	})
}

// get returns one alert.
func (s *store) get(ctx context.Context, id int64) (Alert, error) {
	rows, err := s.pool.Query(ctx, "SELECT "+alertCols+" FROM alerts WHERE id = $1", id)
	if err != nil {
		return Alert{}, fmt.Errorf("alert %d: %w", id, err)
	}
	a, err := pgx.CollectExactlyOneRow(rows, scanAlert)
	if errors.Is(err, pgx.ErrNoRows) {
		return Alert{}, fmt.Errorf("alert %d: %w", id, ErrNotFound)
	}
	return a, err
}

// activeAlerts returns every open or acknowledged alert.
func (s *store) activeAlerts(ctx context.Context) ([]Alert, error) {
	rows, err := s.pool.Query(ctx, "SELECT "+alertCols+" FROM alerts WHERE state <> 'resolved' ORDER BY id")
	if err != nil {
		return nil, fmt.Errorf("active alerts: %w", err)
	}
	as, err := pgx.CollectRows(rows, scanAlert)
	if err != nil {
		return nil, fmt.Errorf("active alerts: %w", err)
	}
	return as, nil
}

// Filter selects alerts to list.
type Filter struct {
	// State: open, acknowledged, resolved, or "active" (open or
	// acknowledged); empty for all.
	State    string
	Facility string
	Camera   string
	Kind     Kind
	// From and To bound opened_at.
	From, To time.Time
	Limit    int // default 100, at most 1000
	Offset   int
}

// list returns alerts in scope, newest first.
func (s *store) list(ctx context.Context, sc registry.Scope, f Filter) ([]Alert, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	f.Limit = min(f.Limit, 1000)
	f.Offset = max(f.Offset, 0)
	var from, to *time.Time
	if !f.From.IsZero() {
		from = &f.From
	}
	if !f.To.IsZero() {
		to = &f.To
	}
	facs := sc.Facilities
	if facs == nil {
		facs = []string{}
	}
	rows, err := s.pool.Query(ctx, "SELECT "+alertCols+` FROM alerts
		WHERE ($1 OR (facility_id <> '' AND facility_id = ANY($2)))
		AND ($3 = '' OR ($3 = 'active' AND state <> 'resolved') OR state = $3)
		AND ($4 = '' OR facility_id = $4) AND ($5 = '' OR camera_id = $5) AND ($6 = '' OR kind = $6)
		AND ($7::timestamptz IS NULL OR opened_at >= $7) AND ($8::timestamptz IS NULL OR opened_at < $8)
		ORDER BY opened_at DESC, id DESC LIMIT $9 OFFSET $10`,
		sc.All, facs, f.State, f.Facility, f.Camera, string(f.Kind), from, to, f.Limit, f.Offset)
	if err != nil {
		return nil, fmt.Errorf("list alerts: %w", err)
	}
	as, err := pgx.CollectRows(rows, scanAlert)
	if err != nil {
		return nil, fmt.Errorf("list alerts: %w", err)
	}
	return as, nil
}

// eventsAfter returns up to limit events with seq > after, in order.
func (s *store) eventsAfter(ctx context.Context, after int64, limit int) ([]Event, error) {
	rows, err := s.pool.Query(ctx, "SELECT seq, type, at, alert FROM alert_events WHERE seq > $1 ORDER BY seq LIMIT $2", after, limit)
	if err != nil {
		return nil, fmt.Errorf("alert events after %d: %w", after, err)
	}
	evs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Event, error) {
		var e Event
		var b []byte
		if err := row.Scan(&e.Seq, &e.Type, &e.At, &b); err != nil {
			return e, err
		}
		if err := json.Unmarshal(b, &e.Alert); err != nil {
			return e, fmt.Errorf("event %d: %w", e.Seq, err)
		}
		return e, nil
	})
	if err != nil {
		return nil, fmt.Errorf("alert events after %d: %w", after, err)
	}
	return evs, nil
}

// lastSeq is the newest event's seq (0 for none).
func (s *store) lastSeq(ctx context.Context) (int64, error) {
	var seq int64
	err := s.pool.QueryRow(ctx, "SELECT coalesce(max(seq), 0) FROM alert_events").Scan(&seq)
	if err != nil {
		return 0, fmt.Errorf("last alert event: %w", err)
	}
	return seq, nil
}

// pruneEvents deletes events older than before (resolved alerts keep
// their rows; only the feed is trimmed).
func (s *store) pruneEvents(ctx context.Context, before time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, "DELETE FROM alert_events WHERE at < $1", before)
	if err != nil {
		return 0, fmt.Errorf("prune alert events: %w", err)
	}
	return tag.RowsAffected(), nil
}

// rules returns every stored rule.
func (s *store) rules(ctx context.Context) ([]Rule, error) {
	rows, err := s.pool.Query(ctx, "SELECT id, rule, updated_at, updated_by FROM alert_rules ORDER BY id")
	if err != nil {
		return nil, fmt.Errorf("alert rules: %w", err)
	}
	rs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Rule, error) {
		var id int64
		var b []byte
		var at time.Time
		var by string
		if err := row.Scan(&id, &b, &at, &by); err != nil {
			return Rule{}, err
		}
		r, err := ParseRule(b)
		if err != nil {
			return Rule{}, fmt.Errorf("rule %d: %w", id, err)
		}
		r.ID, r.UpdatedAt, r.UpdatedBy = id, at, by
		return r, nil
	})
	if err != nil {
		return nil, fmt.Errorf("alert rules: %w", err)
	}
	return rs, nil
}

func ruleDoc(r Rule) ([]byte, error) {
	r.ID, r.UpdatedAt, r.UpdatedBy = 0, time.Time{}, ""
	return json.Marshal(r)
}

func ruleEntry(act registry.Actor, action string, r Rule) registry.Entry {
	e := registry.EntryFor(act.Principal, act.Client, action)
	e.Facility = r.Facility
	e.Objects = []string{fmt.Sprintf("alert_rule:%d", r.ID)}
	if r.Camera != "" {
		e.Objects = append(e.Objects, "camera:"+r.Camera)
	}
	b, _ := ruleDoc(r)
	e.Detail = string(b)
	return e
}

// putRule creates (r.ID 0) or replaces a rule, audited.
func (s *store) putRule(ctx context.Context, act registry.Actor, r Rule) (Rule, error) {
	now := s.clock()
	doc, err := ruleDoc(r)
	if err != nil {
		return Rule{}, err
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		action := "alert.rule.update"
		if r.ID == 0 {
			action = "alert.rule.create"
			if err := tx.QueryRow(ctx, `INSERT INTO alert_rules (facility_id, rule, updated_at, updated_by) VALUES ($1, $2, $3, $4) RETURNING id`,
				r.Facility, doc, now, act.Principal.Username).Scan(&r.ID); err != nil {
				return err
			}
		} else {
			tag, err := tx.Exec(ctx, `UPDATE alert_rules SET facility_id = $2, rule = $3, updated_at = $4, updated_by = $5 WHERE id = $1`,
				r.ID, r.Facility, doc, now, act.Principal.Username)
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 0 {
				return fmt.Errorf("rule %d: %w", r.ID, ErrNotFound)
			}
		}
		r.UpdatedAt, r.UpdatedBy = now, act.Principal.Username
		return s.audit.Record(ctx, ruleEntry(act, action, r))
	})
	if err != nil {
		return Rule{}, fmt.Errorf("save alert rule: %w", err)
	}
	return r, nil
}

// deleteRule removes a rule, audited.
func (s *store) deleteRule(ctx context.Context, act registry.Actor, r Rule) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, "DELETE FROM alert_rules WHERE id = $1", r.ID)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("rule %d: %w", r.ID, ErrNotFound)
		}
		return s.audit.Record(ctx, ruleEntry(act, "alert.rule.delete", r))
	})
	if err != nil {
		return fmt.Errorf("delete alert rule: %w", err)
	}
	return nil
}

// Maintenance is a camera whose alerts are silenced.
type Maintenance struct {
	Camera   string     `json:"camera"`
	Facility string     `json:"facility"`
	Until    *time.Time `json:"until"` // nil: until ended by hand
	Note     string     `json:"note"`
	SetBy    string     `json:"set_by"`
	SetAt    time.Time  `json:"set_at"`
}

// maintenance returns the cameras in maintenance at now.
func (s *store) maintenance(ctx context.Context, now time.Time) ([]Maintenance, error) {
	rows, err := s.pool.Query(ctx, `SELECT camera_id, facility_id, until, note, set_by, set_at FROM alert_maintenance
		WHERE until IS NULL OR until > $1 ORDER BY camera_id`, now)
	if err != nil {
		return nil, fmt.Errorf("maintenance: %w", err)
	}
	ms, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Maintenance, error) {
		var m Maintenance
		err := row.Scan(&m.Camera, &m.Facility, &m.Until, &m.Note, &m.SetBy, &m.SetAt)
		return m, err
	})
	if err != nil {
		return nil, fmt.Errorf("maintenance: %w", err)
	}
	return ms, nil
}

// setMaintenance puts a camera in maintenance (or changes it), audited.
func (s *store) setMaintenance(ctx context.Context, act registry.Actor, m Maintenance) (Maintenance, error) {
	m.SetAt, m.SetBy = s.clock(), act.Principal.Username
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO alert_maintenance (camera_id, facility_id, until, note, set_by, set_at)
			VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (camera_id) DO UPDATE SET facility_id = $2, until = $3, note = $4, set_by = $5, set_at = $6`,
			m.Camera, m.Facility, m.Until, m.Note, m.SetBy, m.SetAt); err != nil {
			return err
		}
		e := registry.EntryFor(act.Principal, act.Client, "alert.maintenance.start")
		e.Facility, e.Objects, e.Reason = m.Facility, []string{"camera:" + m.Camera}, m.Note
		if m.Until != nil {
			e.Detail = "until " + m.Until.UTC().Format(time.RFC3339)
		}
		return s.audit.Record(ctx, e)
	})
	if err != nil {
		return Maintenance{}, fmt.Errorf("camera %s: set maintenance: %w", m.Camera, err)
	}
	return m, nil
}

// endMaintenance takes a camera out of maintenance, audited.
func (s *store) endMaintenance(ctx context.Context, act registry.Actor, camera, facility string) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, "DELETE FROM alert_maintenance WHERE camera_id = $1", camera)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("camera %s is not in maintenance: %w", camera, ErrNotFound)
		}
		e := registry.EntryFor(act.Principal, act.Client, "alert.maintenance.end")
		e.Facility, e.Objects = facility, []string{"camera:" + camera}
		return s.audit.Record(ctx, e)
	})
	if err != nil {
		return fmt.Errorf("camera %s: end maintenance: %w", camera, err)
	}
	return nil
}

// openCounts returns the number of active alerts by facility and severity.
func (s *store) openCounts(ctx context.Context) (map[[2]string]int, error) {
	rows, err := s.pool.Query(ctx, "SELECT facility_id, severity, count(*) FROM alerts WHERE state <> 'resolved' GROUP BY 1, 2")
	if err != nil {
		return nil, fmt.Errorf("open alert counts: %w", err)
	}
	out := map[[2]string]int{}
	var f, sev string
	var n int
	_, err = pgx.ForEachRow(rows, []any{&f, &sev, &n}, func() error {
		out[[2]string{f, sev}] = n
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("open alert counts: %w", err)
	}
	return out, nil
}

// isUnavailable reports whether err says PostgreSQL could not be reached
// (rather than refusing a statement).
func isUnavailable(err error) bool {
	if err == nil {
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return false
	}
	return !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrConflict) && !errors.Is(err, registry.ErrAudit) &&
		!errors.Is(err, context.Canceled)
}
