package registry

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// IncidentTypes lists the types of incident.
func IncidentTypes() []string {
	return []string{"assault", "fight", "self_harm", "escape_attempt", "contraband", "disturbance", "medical",
		"fire", "property_damage", "staff_misconduct", "other"}
}

// Severities lists incident severities, least severe first.
func Severities() []string { return []string{"minor", "moderate", "serious", "critical"} }

// IncidentStatuses lists incident statuses.
func IncidentStatuses() []string { return []string{"open", "under_investigation", "closed"} }

// SeriousOrAbove reports whether severity puts the incident's footage on
// legal hold.
func SeriousOrAbove(severity string) bool { return severity == "serious" || severity == "critical" }

// Incident is an incident record with everything attached to it.
type Incident struct {
	ID          int64      `json:"id"`
	Facility    string     `json:"facility"`
	Type        string     `json:"type"`
	Severity    string     `json:"severity"`
	Status      string     `json:"status"`
	Start       time.Time  `json:"start"`
	End         *time.Time `json:"end"`
	Description string     `json:"description"`
	Zones       []string   `json:"zones"`
	Prisoners   []int64    `json:"prisoners"`
	// InvolvedStaff are users involved in the incident: they may not view or
	// export its footage.
	InvolvedStaff []int64 `json:"involved_staff"`
	Investigators []int64 `json:"investigators"`
	// Cameras are those covering the incident: the cameras of its zones,
	// plus CamerasIncluded, minus CamerasExcluded.
	Cameras         []string  `json:"cameras"`
	CamerasIncluded []string  `json:"cameras_included"`
	CamerasExcluded []string  `json:"cameras_excluded"`
	LegalHold       bool      `json:"legal_hold"`
	HoldReason      string    `json:"hold_reason"`
	CreatedBy       string    `json:"created_by"`
	CreatedAt       time.Time `json:"created_at"`
	UpdatedAt       time.Time `json:"updated_at"`
}

// Resource is the incident as an object of the policy.
func (i Incident) Resource() Resource {
	return Resource{Facilities: []string{i.Facility}, InvolvedStaff: i.InvolvedStaff}
}

// FootageWindow is the span of footage that concerns the incident: from
// before its start to after its end (or now, while it has none).
func (i Incident) FootageWindow(before, after time.Duration, now time.Time) (time.Time, time.Time) {
	end := now
	if i.End != nil {
		end = *i.End
	}
	if end.Before(i.Start) {
		end = i.Start
	}
	return i.Start.Add(-before), end.Add(after)
}

// IncidentInput opens (Facility, Type, Severity, Start and Description
// required; Status defaults to open) or changes an incident. Absent fields
// keep their value; a list given replaces the list. Facility cannot change.
type IncidentInput struct {
	Facility        *string    `json:"facility,omitempty"`
	Type            *string    `json:"type,omitempty"`
	Severity        *string    `json:"severity,omitempty"`
	Status          *string    `json:"status,omitempty"`
	Start           *time.Time `json:"start,omitempty"`
	End             *time.Time `json:"end,omitempty"`
	Description     *string    `json:"description,omitempty"`
	Zones           *[]string  `json:"zones,omitempty"`
	Prisoners       *[]int64   `json:"prisoners,omitempty"`
	InvolvedStaff   *[]int64   `json:"involved_staff,omitempty"`
	Investigators   *[]int64   `json:"investigators,omitempty"`
	CamerasIncluded *[]string  `json:"cameras_included,omitempty"`
	CamerasExcluded *[]string  `json:"cameras_excluded,omitempty"`
}

// Check validates the input for an open (create true) or a change.
func (in *IncidentInput) Check(create bool, now time.Time) error {
	var c checker
	if create {
		required(&c, "facility", in.Facility)
		required(&c, "type", in.Type)
		required(&c, "severity", in.Severity)
		required(&c, "start", in.Start)
		required(&c, "description", in.Description)
	} else if in.Facility != nil {
		c.add("facility", "cannot be changed")
	}
	if in.Facility != nil && !ValidFacilityID(*in.Facility) {
		c.add("facility", "must be a facility id")
	}
	oneOf := func(field string, v *string, allowed []string) {
		if v != nil && !slices.Contains(allowed, *v) {
			c.add(field, "must be one of %s", strings.Join(allowed, ", "))
		}
	}
	oneOf("type", in.Type, IncidentTypes())
	oneOf("severity", in.Severity, Severities())
	oneOf("status", in.Status, IncidentStatuses())
	horizon := now.Add(24 * time.Hour)
	if in.Start != nil && (in.Start.Year() < 2000 || in.Start.After(horizon)) {
		c.add("start", "must be a time after 2000 and not in the future")
	}
	if in.End != nil && (in.End.Year() < 2000 || in.End.After(horizon)) {
		c.add("end", "must be a time after 2000 and not in the future")
	}
	if in.Start != nil && in.End != nil && in.End.Before(*in.Start) {
		c.add("end", "must not be before start")
	}
	if in.Description != nil {
		textLen(&c, "description", *in.Description, 1, 20000)
	}
	codes := func(field string, v *[]string, valid func(string) bool) {
		if v == nil {
			return
		}
		if len(*v) > 200 {
			c.add(field, "at most 200")
		}
		for i, s := range *v {
			if !valid(s) {
				c.add(fmt.Sprintf("%s[%d]", field, i), "not a valid id")
			} else if slices.Index(*v, s) != i {
				c.add(fmt.Sprintf("%s[%d]", field, i), "duplicate")
			}
		}
	}
	codes("zones", in.Zones, ValidFacilityID)
	codes("cameras_included", in.CamerasIncluded, ValidCameraID)
	codes("cameras_excluded", in.CamerasExcluded, ValidCameraID)
	if in.CamerasIncluded != nil && in.CamerasExcluded != nil {
		for _, id := range *in.CamerasIncluded {
			if slices.Contains(*in.CamerasExcluded, id) {
				c.add("cameras_excluded", "camera %s is also in cameras_included", id)
			}
		}
	}
	ids := func(field string, v *[]int64) {
		if v == nil {
			return
		}
		if len(*v) > 200 {
			c.add(field, "at most 200")
		}
		for i, id := range *v {
			if id <= 0 {
				c.add(fmt.Sprintf("%s[%d]", field, i), "not a valid id")
			} else if slices.Index(*v, id) != i {
				c.add(fmt.Sprintf("%s[%d]", field, i), "duplicate")
			}
		}
	}
	ids("prisoners", in.Prisoners)
	ids("involved_staff", in.InvolvedStaff)
	ids("investigators", in.Investigators)
	return c.err()
}

const incidentCols = `i.id, i.facility_id, i.type, i.severity, i.status, i.started_at, i.ended_at, i.description,
	i.legal_hold, i.hold_reason, i.created_by, i.created_at, i.updated_at,
	coalesce((SELECT array_agg(zone_id ORDER BY zone_id) FROM incident_zones WHERE incident_id = i.id), '{}'),
	coalesce((SELECT array_agg(prisoner_id ORDER BY prisoner_id) FROM incident_prisoners WHERE incident_id = i.id), '{}'),
	coalesce((SELECT array_agg(user_id ORDER BY user_id) FROM incident_staff WHERE incident_id = i.id), '{}'),
	coalesce((SELECT array_agg(user_id ORDER BY user_id) FROM incident_investigators WHERE incident_id = i.id), '{}'),
	coalesce((SELECT array_agg(camera_id ORDER BY camera_id) FROM incident_cameras WHERE incident_id = i.id), '{}'),
	coalesce((SELECT array_agg(camera_id ORDER BY camera_id) FROM incident_camera_overrides WHERE incident_id = i.id AND included), '{}'),
	coalesce((SELECT array_agg(camera_id ORDER BY camera_id) FROM incident_camera_overrides WHERE incident_id = i.id AND NOT included), '{}')`

func scanIncident(row pgx.CollectableRow) (Incident, error) {
	var i Incident
	err := row.Scan(&i.ID, &i.Facility, &i.Type, &i.Severity, &i.Status, &i.Start, &i.End, &i.Description,
		&i.LegalHold, &i.HoldReason, &i.CreatedBy, &i.CreatedAt, &i.UpdatedAt,
		&i.Zones, &i.Prisoners, &i.InvolvedStaff, &i.Investigators, &i.Cameras, &i.CamerasIncluded, &i.CamerasExcluded)
	i.Start = i.Start.UTC()
	if i.End != nil {
		*i.End = i.End.UTC()
	}
	return i, err
}

func getIncident(ctx context.Context, q Querier, id int64, lock bool) (Incident, error) {
	sql := "SELECT " + incidentCols + " FROM incidents i WHERE i.id = $1"
	if lock {
		sql += " FOR UPDATE OF i"
	}
	rows, _ := q.Query(ctx, sql, id)
	i, err := pgx.CollectExactlyOneRow(rows, scanIncident)
	return i, dbErr(fmt.Sprintf("incident %d", id), err)
}

// Incident returns one incident.
func (r *Registry) Incident(ctx context.Context, id int64) (Incident, error) {
	return getIncident(ctx, r.pool, id, false)
}

// IncidentFilter selects incidents; zero fields do not filter. From and To
// keep incidents whose [start, end] overlaps [From, To).
type IncidentFilter struct {
	Facility string
	Status   string
	Severity string
	Type     string
	From, To time.Time
}

// ListIncidents lists incidents in scope, newest first.
func (r *Registry) ListIncidents(ctx context.Context, s Scope, f IncidentFilter, p Page) ([]Incident, error) {
	p = p.norm()
	s = s.narrow(f.Facility)
	rows, _ := r.pool.Query(ctx, "SELECT "+incidentCols+` FROM incidents i WHERE ($1 OR i.facility_id = ANY($2))
		AND ($3 = '' OR i.status = $3) AND ($4 = '' OR i.severity = $4) AND ($5 = '' OR i.type = $5)
		AND ($6::timestamptz IS NULL OR coalesce(i.ended_at, 'infinity'::timestamptz) >= $6)
		AND ($7::timestamptz IS NULL OR i.started_at < $7)
		ORDER BY i.started_at DESC, i.id DESC LIMIT $8 OFFSET $9`,
		s.All, nonNil(s.Facilities), f.Status, f.Severity, f.Type, nullTime(f.From), nullTime(f.To), p.Limit, p.Offset)
	is, err := pgx.CollectRows(rows, scanIncident)
	return is, dbErr("list incidents", err)
}

// CreateIncident opens an incident. One of severity serious or above puts
// its cameras' footage from start-HoldBefore to end+HoldAfter on legal hold
// through the HoldPlacer before the incident is committed: if a hold cannot
// be placed, the incident is not created (ErrHold).
func (r *Registry) CreateIncident(ctx context.Context, act Actor, in IncidentInput) (Incident, error) {
	now := r.now()
	if err := in.Check(true, now); err != nil {
		return Incident{}, err
	}
	status := "open"
	if in.Status != nil {
		status = *in.Status
	}
	var inc Incident
	err := r.inTxN(ctx, func(tx pgx.Tx) ([]Entry, error) {
		var id int64
		if err := tx.QueryRow(ctx, `INSERT INTO incidents (facility_id, type, severity, status, started_at, ended_at,
			description, created_by, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) RETURNING id`,
			*in.Facility, *in.Type, *in.Severity, status, in.Start.UTC(), utcPtr(in.End), *in.Description,
			act.Principal.Username, now).Scan(&id); err != nil {
			return nil, dbErr("create incident", err)
		}
		if err := r.setIncidentLinks(ctx, tx, id, *in.Facility, &in); err != nil {
			return nil, err
		}
		if err := setIncidentCameras(ctx, tx, id); err != nil {
			return nil, err
		}
		var err error
		if inc, err = getIncident(ctx, tx, id, true); err != nil {
			return nil, err
		}
		e := act.entry("incident.create")
		e.Facility, e.Objects = inc.Facility, []string{fmt.Sprintf("incident:%d", id)}
		e.From = inc.Start
		if inc.End != nil {
			e.To = *inc.End
		}
		e.Detail = fmt.Sprintf("type %s; severity %s; zones %s; cameras %s", inc.Type, inc.Severity,
			strings.Join(inc.Zones, ","), strings.Join(inc.Cameras, ","))
		entries := []Entry{e}
		if SeriousOrAbove(inc.Severity) {
			reason := fmt.Sprintf("incident %d opened with severity %s", id, inc.Severity)
			hs, err := r.placeHolds(ctx, tx, act, &inc, reason, now)
			if err != nil {
				return nil, err
			}
			entries = append(entries, hs...)
		}
		return entries, nil
	})
	return inc, err
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// setIncidentLinks replaces the lists present in in.
func (r *Registry) setIncidentLinks(ctx context.Context, tx pgx.Tx, id int64, facility string, in *IncidentInput) error {
	var c checker
	if in.Zones != nil {
		if _, err := tx.Exec(ctx, "DELETE FROM incident_zones WHERE incident_id = $1", id); err != nil {
			return dbErr("incident zones", err)
		}
		rows, _ := tx.Query(ctx, "SELECT z FROM unnest($2::text[]) z WHERE NOT EXISTS (SELECT 1 FROM zones WHERE facility_id = $1 AND id = z)",
			facility, *in.Zones)
		missing, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return dbErr("incident zones", err)
		}
		if len(missing) > 0 {
			c.add("zones", "no zone %s in facility %s", strings.Join(missing, ", "), facility)
		} else if _, err := tx.Exec(ctx, "INSERT INTO incident_zones (incident_id, facility_id, zone_id) SELECT $1, $2, unnest($3::text[])",
			id, facility, *in.Zones); err != nil {
			return dbErr("incident zones", err)
		}
	}
	if in.Prisoners != nil {
		if _, err := tx.Exec(ctx, "DELETE FROM incident_prisoners WHERE incident_id = $1", id); err != nil {
			return dbErr("incident prisoners", err)
		}
		rows, _ := tx.Query(ctx, "SELECT x FROM unnest($1::bigint[]) x WHERE NOT EXISTS (SELECT 1 FROM prisoners WHERE id = x)", *in.Prisoners)
		missing, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return dbErr("incident prisoners", err)
		}
		if len(missing) > 0 {
			c.add("prisoners", "no prisoner %v", missing)
		} else if _, err := tx.Exec(ctx, "INSERT INTO incident_prisoners (incident_id, prisoner_id) SELECT $1, unnest($2::bigint[])",
			id, *in.Prisoners); err != nil {
			return dbErr("incident prisoners", err)
		}
	}
	if in.InvolvedStaff != nil {
		if _, err := tx.Exec(ctx, "DELETE FROM incident_staff WHERE incident_id = $1", id); err != nil {
			return dbErr("incident staff", err)
		}
		missing, err := missingUsers(ctx, tx, *in.InvolvedStaff)
		if err != nil {
			return err
		}
		if len(missing) > 0 {
			c.add("involved_staff", "no user %v", missing)
		} else if _, err := tx.Exec(ctx, "INSERT INTO incident_staff (incident_id, user_id) SELECT $1, unnest($2::bigint[])",
			id, *in.InvolvedStaff); err != nil {
			return dbErr("incident staff", err)
		}
	}
	if in.Investigators != nil {
		if _, err := tx.Exec(ctx, "DELETE FROM incident_investigators WHERE incident_id = $1", id); err != nil {
			return dbErr("incident investigators", err)
		}
		// An investigator must be an enabled investigator of the facility.
		rows, _ := tx.Query(ctx, `SELECT x FROM unnest($1::bigint[]) x WHERE NOT EXISTS (SELECT 1 FROM users u
			WHERE u.id = x AND NOT u.disabled AND 'investigator' = ANY(u.roles)
			AND (u.all_facilities OR EXISTS (SELECT 1 FROM user_facilities WHERE user_id = u.id AND facility_id = $2)))`,
			*in.Investigators, facility)
		bad, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return dbErr("incident investigators", err)
		}
		if len(bad) > 0 {
			c.add("investigators", "users %v are not investigators of facility %s", bad, facility)
		} else if _, err := tx.Exec(ctx, "INSERT INTO incident_investigators (incident_id, user_id) SELECT $1, unnest($2::bigint[])",
			id, *in.Investigators); err != nil {
			return dbErr("incident investigators", err)
		}
	}
	for _, o := range []struct {
		field    string
		ids      *[]string
		included bool
	}{{"cameras_included", in.CamerasIncluded, true}, {"cameras_excluded", in.CamerasExcluded, false}} {
		if o.ids == nil {
			continue
		}
		if _, err := tx.Exec(ctx, "DELETE FROM incident_camera_overrides WHERE incident_id = $1 AND included = $2", id, o.included); err != nil {
			return dbErr("incident cameras", err)
		}
		rows, _ := tx.Query(ctx, "SELECT x FROM unnest($2::text[]) x WHERE NOT EXISTS (SELECT 1 FROM cameras WHERE id = x AND facility_id = $1)",
			facility, *o.ids)
		missing, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return dbErr("incident cameras", err)
		}
		if len(missing) > 0 {
			c.add(o.field, "no camera %s in facility %s", strings.Join(missing, ", "), facility)
			continue
		}
		if _, err := tx.Exec(ctx, `INSERT INTO incident_camera_overrides (incident_id, camera_id, included)
			SELECT $1, unnest($2::text[]), $3 ON CONFLICT (incident_id, camera_id) DO UPDATE SET included = excluded.included`,
			id, *o.ids, o.included); err != nil {
			return dbErr("incident cameras", err)
		}
	}
	return c.err()
}

// setIncidentCameras recomputes the effective camera set.
func setIncidentCameras(ctx context.Context, tx pgx.Tx, id int64) error {
	if _, err := tx.Exec(ctx, "DELETE FROM incident_cameras WHERE incident_id = $1", id); err != nil {
		return dbErr("incident cameras", err)
	}
	_, err := tx.Exec(ctx, `INSERT INTO incident_cameras (incident_id, camera_id)
		SELECT $1, c.id FROM cameras c JOIN incident_zones z ON z.facility_id = c.facility_id AND z.zone_id = c.zone_id
		WHERE z.incident_id = $1
		UNION SELECT $1, camera_id FROM incident_camera_overrides WHERE incident_id = $1 AND included
		EXCEPT SELECT $1, camera_id FROM incident_camera_overrides WHERE incident_id = $1 AND NOT included`, id)
	return dbErr("incident cameras", err)
}

// placeHolds places (or widens) the legal hold of inc on each of its
// cameras and marks it held. Holds are only ever widened here; releasing is
// explicit (ReleaseHold).
func (r *Registry) placeHolds(ctx context.Context, tx pgx.Tx, act Actor, inc *Incident, reason string, now time.Time) ([]Entry, error) {
	from, to := inc.FootageWindow(r.cfg.HoldBefore, r.cfg.HoldAfter, now)
	from, to = from.UTC().Truncate(time.Microsecond), to.UTC().Truncate(time.Microsecond)
	type held struct{ from, to time.Time }
	rows, _ := tx.Query(ctx, "SELECT camera_id, from_at, to_at FROM incident_holds WHERE incident_id = $1", inc.ID)
	existing := map[string]held{}
	_, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (struct{}, error) {
		var cam string
		var h held
		err := row.Scan(&cam, &h.from, &h.to)
		existing[cam] = h
		return struct{}{}, err
	})
	if err != nil {
		return nil, dbErr("incident holds", err)
	}
	var entries []Entry
	for _, cam := range inc.Cameras {
		f, t := from, to
		if h, ok := existing[cam]; ok {
			if !h.from.After(f) && !h.to.Before(t) {
				continue // already covers the window
			}
			f, t = minTime(h.from, f), maxTime(h.to, t)
		}
		if err := r.holds.PlaceHold(ctx, cam, f, t, reason, inc.ID); err != nil {
			return nil, fmt.Errorf("%w: incident %d camera %s: %v", ErrHold, inc.ID, cam, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO incident_holds (incident_id, camera_id, from_at, to_at, placed_at)
			VALUES ($1, $2, $3, $4, $5) ON CONFLICT (incident_id, camera_id) DO UPDATE
			SET from_at = excluded.from_at, to_at = excluded.to_at, placed_at = excluded.placed_at`,
			inc.ID, cam, f, t, now); err != nil {
			return nil, dbErr("incident holds", err)
		}
		e := act.entry(AuditHoldPlace)
		e.Facility = inc.Facility
		e.Objects = []string{fmt.Sprintf("incident:%d", inc.ID), "camera:" + cam}
		e.From, e.To, e.Reason = f, t, reason
		entries = append(entries, e)
	}
	if !inc.LegalHold || inc.HoldReason == "" {
		if _, err := tx.Exec(ctx, "UPDATE incidents SET legal_hold = true, hold_reason = $2 WHERE id = $1", inc.ID, reason); err != nil {
			return nil, dbErr("incident hold", err)
		}
		inc.LegalHold, inc.HoldReason = true, reason
	}
	return entries, nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// UpdateIncident changes an incident. When the incident is (or becomes)
// serious or above, or is already on hold, the hold is placed or widened to
// cover its cameras and window now, before the change is committed.
func (r *Registry) UpdateIncident(ctx context.Context, act Actor, id int64, in IncidentInput) (Incident, error) {
	now := r.now()
	if err := in.Check(false, now); err != nil {
		return Incident{}, err
	}
	var inc Incident
	err := r.inTxN(ctx, func(tx pgx.Tx) ([]Entry, error) {
		before, err := getIncident(ctx, tx, id, true)
		if err != nil {
			return nil, err
		}
		start, end := before.Start, before.End
		if in.Start != nil {
			start = in.Start.UTC()
		}
		if in.End != nil {
			end = utcPtr(in.End)
		}
		if end != nil && end.Before(start) {
			return nil, invalid("end", "must not be before start")
		}
		if _, err := tx.Exec(ctx, `UPDATE incidents SET type = coalesce($2, type), severity = coalesce($3, severity),
			status = coalesce($4, status), started_at = $5, ended_at = $6, description = coalesce($7, description),
			updated_at = $8 WHERE id = $1`, id, in.Type, in.Severity, in.Status, start, end, in.Description, now); err != nil {
			return nil, dbErr(fmt.Sprintf("incident %d", id), err)
		}
		if err := r.setIncidentLinks(ctx, tx, id, before.Facility, &in); err != nil {
			return nil, err
		}
		if err := setIncidentCameras(ctx, tx, id); err != nil {
			return nil, err
		}
		if inc, err = getIncident(ctx, tx, id, false); err != nil {
			return nil, err
		}
		e := act.entry("incident.update")
		e.Facility, e.Objects = inc.Facility, []string{fmt.Sprintf("incident:%d", id)}
		e.Detail = "changed: " + strings.Join(in.changed(), ",")
		if before.Severity != inc.Severity {
			e.Detail += fmt.Sprintf("; severity %s -> %s", before.Severity, inc.Severity)
		}
		if before.Status != inc.Status {
			e.Detail += fmt.Sprintf("; status %s -> %s", before.Status, inc.Status)
		}
		entries := []Entry{e}
		if SeriousOrAbove(inc.Severity) || inc.LegalHold {
			reason := inc.HoldReason
			if reason == "" {
				reason = fmt.Sprintf("incident %d raised to severity %s", id, inc.Severity)
			}
			hs, err := r.placeHolds(ctx, tx, act, &inc, reason, now)
			if err != nil {
				return nil, err
			}
			entries = append(entries, hs...)
		}
		return entries, nil
	})
	return inc, err
}

func (in *IncidentInput) changed() []string {
	var out []string
	for _, f := range []struct {
		name string
		set  bool
	}{
		{"type", in.Type != nil}, {"severity", in.Severity != nil}, {"status", in.Status != nil},
		{"start", in.Start != nil}, {"end", in.End != nil}, {"description", in.Description != nil},
		{"zones", in.Zones != nil}, {"prisoners", in.Prisoners != nil}, {"involved_staff", in.InvolvedStaff != nil},
		{"investigators", in.Investigators != nil}, {"cameras_included", in.CamerasIncluded != nil},
		{"cameras_excluded", in.CamerasExcluded != nil},
	} {
		if f.set {
			out = append(out, f.name)
		}
	}
	return out
}

// PlaceHold puts the incident's footage on legal hold by hand, for reason.
func (r *Registry) PlaceHold(ctx context.Context, act Actor, id int64, reason string) (Incident, error) {
	var c checker
	textLen(&c, "reason", reason, 1, 1000)
	if err := c.err(); err != nil {
		return Incident{}, err
	}
	now := r.now()
	var inc Incident
	err := r.inTxN(ctx, func(tx pgx.Tx) ([]Entry, error) {
		var err error
		if inc, err = getIncident(ctx, tx, id, true); err != nil {
			return nil, err
		}
		if _, err := tx.Exec(ctx, "UPDATE incidents SET legal_hold = true, hold_reason = $2, updated_at = $3 WHERE id = $1",
			id, reason, now); err != nil {
			return nil, dbErr("incident hold", err)
		}
		inc.LegalHold, inc.HoldReason, inc.UpdatedAt = true, reason, now
		// Re-place on every camera with the new reason.
		if _, err := tx.Exec(ctx, "DELETE FROM incident_holds WHERE incident_id = $1 AND camera_id = ANY($2)", id, inc.Cameras); err != nil {
			return nil, dbErr("incident hold", err)
		}
		hs, err := r.placeHolds(ctx, tx, act, &inc, reason, now)
		if err != nil {
			return nil, err
		}
		if len(hs) == 0 {
			e := act.entry(AuditHoldPlace)
			e.Facility, e.Objects, e.Reason, e.Detail = inc.Facility, []string{fmt.Sprintf("incident:%d", id)}, reason, "no cameras"
			hs = append(hs, e)
		}
		return hs, nil
	})
	return inc, err
}

// ReleaseHold releases every legal hold placed for the incident, for
// reason. A release the recorder refuses aborts the change (the incident
// stays held; releasing again retries).
func (r *Registry) ReleaseHold(ctx context.Context, act Actor, id int64, reason string) (Incident, error) {
	var c checker
	textLen(&c, "reason", reason, 1, 1000)
	if err := c.err(); err != nil {
		return Incident{}, err
	}
	now := r.now()
	var inc Incident
	err := r.inTxN(ctx, func(tx pgx.Tx) ([]Entry, error) {
		var err error
		if inc, err = getIncident(ctx, tx, id, true); err != nil {
			return nil, err
		}
		rows, _ := tx.Query(ctx, "SELECT camera_id FROM incident_holds WHERE incident_id = $1 ORDER BY camera_id", id)
		cams, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return nil, dbErr("incident holds", err)
		}
		var entries []Entry
		for _, cam := range cams {
			if err := r.holds.ReleaseHold(ctx, cam, id); err != nil {
				return nil, fmt.Errorf("%w: release incident %d camera %s: %v", ErrHold, id, cam, err)
			}
			e := act.entry(AuditHoldRelease)
			e.Facility, e.Objects, e.Reason = inc.Facility, []string{fmt.Sprintf("incident:%d", id), "camera:" + cam}, reason
			entries = append(entries, e)
		}
		if _, err := tx.Exec(ctx, "DELETE FROM incident_holds WHERE incident_id = $1", id); err != nil {
			return nil, dbErr("incident holds", err)
		}
		if _, err := tx.Exec(ctx, "UPDATE incidents SET legal_hold = false, hold_reason = '', updated_at = $2 WHERE id = $1", id, now); err != nil {
			return nil, dbErr("incident hold", err)
		}
		inc.LegalHold, inc.HoldReason, inc.UpdatedAt = false, "", now
		if len(entries) == 0 {
			e := act.entry(AuditHoldRelease)
			e.Facility, e.Objects, e.Reason, e.Detail = inc.Facility, []string{fmt.Sprintf("incident:%d", id)}, reason, "no holds placed"
			entries = append(entries, e)
		}
		return entries, nil
	})
	return inc, err
}

// Holds returns the holds placed for an incident: camera → [from, to].
func (r *Registry) Holds(ctx context.Context, id int64) (map[string][2]time.Time, error) {
	rows, _ := r.pool.Query(ctx, "SELECT camera_id, from_at, to_at FROM incident_holds WHERE incident_id = $1", id)
	out := map[string][2]time.Time{}
	_, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (struct{}, error) {
		var cam string
		var f, t time.Time
		err := row.Scan(&cam, &f, &t)
		out[cam] = [2]time.Time{f.UTC(), t.UTC()}
		return struct{}{}, err
	})
	return out, dbErr("incident holds", err)
}

// CamerasInZone returns the cameras of one zone.
func (r *Registry) CamerasInZone(ctx context.Context, facility, zone string) ([]Camera, error) {
	rows, _ := r.pool.Query(ctx, "SELECT "+cameraCols+" FROM cameras WHERE facility_id = $1 AND zone_id = $2 ORDER BY id", facility, zone)
	cs, err := pgx.CollectRows(rows, scanCamera)
	return cs, dbErr("cameras in zone", err)
}
