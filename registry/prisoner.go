package registry

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Risk classes and statuses of prisoners.
func RiskClasses() []string { return []string{"low", "medium", "high"} }

// PrisonerStatuses lists the statuses of a prisoner.
func PrisonerStatuses() []string {
	return []string{"in_custody", "hospital", "court", "transferred", "released"}
}

// DateLayout is how dates without a time are written.
const DateLayout = "2006-01-02"

// Prisoner is a prisoner record.
type Prisoner struct {
	ID                 int64  `json:"id"`
	RegistrationNumber string `json:"registration_number"`
	FullName           string `json:"full_name"`
	Risk               string `json:"risk"`
	// RiskAssessedOn is the date (YYYY-MM-DD) of the risk assessment.
	RiskAssessedOn string `json:"risk_assessed_on"`
	RiskAssessor   string `json:"risk_assessor"`
	Facility       string `json:"facility"`
	// HousingZone is where the prisoner is housed ("" when unassigned).
	HousingZone string    `json:"housing_zone"`
	Status      string    `json:"status"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// PrisonerInput creates (every field but HousingZone required; Status
// defaults to in_custody) or changes a prisoner. Changing Risk needs a new
// RiskAssessedOn and RiskAssessor with it. Changing Facility (a transfer)
// needs HousingZone in the new facility, or "" for none.
type PrisonerInput struct {
	RegistrationNumber string  `json:"registration_number,omitempty"`
	FullName           *string `json:"full_name,omitempty"`
	Risk               *string `json:"risk,omitempty"`
	RiskAssessedOn     *string `json:"risk_assessed_on,omitempty"`
	RiskAssessor       *string `json:"risk_assessor,omitempty"`
	Facility           *string `json:"facility,omitempty"`
	HousingZone        *string `json:"housing_zone,omitempty"`
	Status             *string `json:"status,omitempty"`
}

func (in *PrisonerInput) check(create bool, today time.Time) error {
	var c checker
	if create {
		if !regNoRE.MatchString(in.RegistrationNumber) {
			c.add("registration_number", "must be 1-32 letters, digits, / or -")
		}
		required(&c, "full_name", in.FullName)
		required(&c, "risk", in.Risk)
		required(&c, "risk_assessed_on", in.RiskAssessedOn)
		required(&c, "risk_assessor", in.RiskAssessor)
		required(&c, "facility", in.Facility)
	} else {
		if in.RegistrationNumber != "" {
			c.add("registration_number", "cannot be changed")
		}
		if in.Risk != nil && (in.RiskAssessedOn == nil || in.RiskAssessor == nil) {
			c.add("risk", "a new risk class needs risk_assessed_on and risk_assessor")
		}
		if in.Facility != nil && in.HousingZone == nil {
			c.add("housing_zone", "required when the facility changes")
		}
	}
	if in.FullName != nil {
		textLen(&c, "full_name", *in.FullName, 1, 200)
	}
	if in.Risk != nil && !slices.Contains(RiskClasses(), *in.Risk) {
		c.add("risk", "must be low, medium or high")
	}
	if in.RiskAssessedOn != nil {
		d, err := time.Parse(DateLayout, *in.RiskAssessedOn)
		switch {
		case err != nil:
			c.add("risk_assessed_on", "must be a date YYYY-MM-DD")
		case d.After(today) || d.Year() < 1900:
			c.add("risk_assessed_on", "must not be in the future")
		}
	}
	if in.RiskAssessor != nil {
		textLen(&c, "risk_assessor", *in.RiskAssessor, 1, 200)
	}
	if in.Facility != nil && !ValidFacilityID(*in.Facility) {
		c.add("facility", "must be a facility id")
	}
	if in.HousingZone != nil && *in.HousingZone != "" && !ValidFacilityID(*in.HousingZone) {
		c.add("housing_zone", "must be a zone id")
	}
	if in.Status != nil && !slices.Contains(PrisonerStatuses(), *in.Status) {
		c.add("status", "must be one of %s", strings.Join(PrisonerStatuses(), ", "))
	}
	return c.err()
}

const prisonerCols = `id, registration_number, full_name, risk, risk_assessed_on, risk_assessor, facility_id,
	coalesce(housing_zone_id, ''), status, created_at, updated_at`

func scanPrisoner(row pgx.CollectableRow) (Prisoner, error) {
	var p Prisoner
	var d time.Time
	err := row.Scan(&p.ID, &p.RegistrationNumber, &p.FullName, &p.Risk, &d, &p.RiskAssessor, &p.Facility,
		&p.HousingZone, &p.Status, &p.CreatedAt, &p.UpdatedAt)
	p.RiskAssessedOn = d.Format(DateLayout)
	return p, err
}

func emptyNil(s *string) *string {
	if s == nil || *s == "" {
		return nil
	}
	return s
}

// CreatePrisoner adds a prisoner.
func (r *Registry) CreatePrisoner(ctx context.Context, act Actor, in PrisonerInput) (Prisoner, error) {
	now := r.now()
	if err := in.check(true, now); err != nil {
		return Prisoner{}, err
	}
	status := "in_custody"
	if in.Status != nil {
		status = *in.Status
	}
	var p Prisoner
	err := r.inTx(ctx, func(tx pgx.Tx) (Entry, error) {
		rows, _ := tx.Query(ctx, `INSERT INTO prisoners (registration_number, full_name, risk, risk_assessed_on, risk_assessor,
			facility_id, housing_zone_id, status, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)
			RETURNING `+prisonerCols, in.RegistrationNumber, *in.FullName, *in.Risk, *in.RiskAssessedOn, *in.RiskAssessor,
			*in.Facility, emptyNil(in.HousingZone), status, now)
		var err error
		if p, err = pgx.CollectExactlyOneRow(rows, scanPrisoner); err != nil {
			return Entry{}, dbErr("create prisoner", err)
		}
		e := act.entry("prisoner.create")
		e.Facility, e.Objects = p.Facility, []string{fmt.Sprintf("prisoner:%d", p.ID)}
		return e, nil
	})
	return p, err
}

// UpdatePrisoner changes a prisoner.
func (r *Registry) UpdatePrisoner(ctx context.Context, act Actor, id int64, in PrisonerInput) (Prisoner, error) {
	if err := in.check(false, r.now()); err != nil {
		return Prisoner{}, err
	}
	var p Prisoner
	err := r.inTx(ctx, func(tx pgx.Tx) (Entry, error) {
		var before string
		if err := tx.QueryRow(ctx, "SELECT facility_id FROM prisoners WHERE id = $1 FOR UPDATE", id).Scan(&before); err != nil {
			return Entry{}, dbErr(fmt.Sprintf("prisoner %d", id), err)
		}
		rows, _ := tx.Query(ctx, `UPDATE prisoners SET full_name = coalesce($2, full_name), risk = coalesce($3, risk),
			risk_assessed_on = coalesce($4::date, risk_assessed_on), risk_assessor = coalesce($5, risk_assessor),
			facility_id = coalesce($6, facility_id),
			housing_zone_id = CASE WHEN $7::text IS NULL THEN housing_zone_id ELSE nullif($7, '') END,
			status = coalesce($8, status), updated_at = $9 WHERE id = $1 RETURNING `+prisonerCols,
			id, in.FullName, in.Risk, in.RiskAssessedOn, in.RiskAssessor, in.Facility, in.HousingZone, in.Status, r.now())
		var err error
		if p, err = pgx.CollectExactlyOneRow(rows, scanPrisoner); err != nil {
			return Entry{}, dbErr(fmt.Sprintf("prisoner %d", id), err)
		}
		e := act.entry("prisoner.update")
		e.Facility, e.Objects = p.Facility, []string{fmt.Sprintf("prisoner:%d", p.ID)}
		e.Detail = "changed: " + strings.Join(in.changed(), ",")
		if before != p.Facility {
			e.Detail += "; transferred from facility " + before
		}
		return e, nil
	})
	return p, err
}

func (in *PrisonerInput) changed() []string {
	var out []string
	for _, f := range []struct {
		name string
		set  bool
	}{
		{"full_name", in.FullName != nil}, {"risk", in.Risk != nil}, {"risk_assessed_on", in.RiskAssessedOn != nil},
		{"risk_assessor", in.RiskAssessor != nil}, {"facility", in.Facility != nil},
		{"housing_zone", in.HousingZone != nil}, {"status", in.Status != nil},
	} {
		if f.set {
			out = append(out, f.name)
		}
	}
	return out
}

// Prisoner returns one prisoner.
func (r *Registry) Prisoner(ctx context.Context, id int64) (Prisoner, error) {
	rows, _ := r.pool.Query(ctx, "SELECT "+prisonerCols+" FROM prisoners WHERE id = $1", id)
	p, err := pgx.CollectExactlyOneRow(rows, scanPrisoner)
	return p, dbErr(fmt.Sprintf("prisoner %d", id), err)
}

// PrisonerFilter selects prisoners; zero fields do not filter.
type PrisonerFilter struct {
	Facility string
	Risk     string
	// Zone is the housing zone.
	Zone   string
	Status string
}

// ListPrisoners lists prisoners in scope, by id.
func (r *Registry) ListPrisoners(ctx context.Context, s Scope, f PrisonerFilter, p Page) ([]Prisoner, error) {
	p = p.norm()
	s = s.narrow(f.Facility)
	rows, _ := r.pool.Query(ctx, "SELECT "+prisonerCols+` FROM prisoners WHERE ($1 OR facility_id = ANY($2))
		AND ($3 = '' OR risk = $3) AND ($4 = '' OR housing_zone_id = $4) AND ($5 = '' OR status = $5)
		ORDER BY id LIMIT $6 OFFSET $7`, s.All, nonNil(s.Facilities), f.Risk, f.Zone, f.Status, p.Limit, p.Offset)
	ps, err := pgx.CollectRows(rows, scanPrisoner)
	return ps, dbErr("list prisoners", err)
}

// Movement is one stay of a prisoner in a zone; To is nil for the current
// stay.
type Movement struct {
	ID       int64      `json:"id"`
	Prisoner int64      `json:"prisoner"`
	Facility string     `json:"facility"`
	Zone     string     `json:"zone"`
	From     time.Time  `json:"from"`
	To       *time.Time `json:"to"`
}

// MovementInput records a stay. Facility defaults to the prisoner's. With
// To nil it is the prisoner's new current stay: the previous current stay
// ends at From. Stays may not overlap.
type MovementInput struct {
	Facility string     `json:"facility,omitempty"`
	Zone     string     `json:"zone"`
	From     time.Time  `json:"from"`
	To       *time.Time `json:"to,omitempty"`
}

func (in *MovementInput) check(now time.Time) error {
	var c checker
	if in.Facility != "" && !ValidFacilityID(in.Facility) {
		c.add("facility", "must be a facility id")
	}
	if !ValidFacilityID(in.Zone) {
		c.add("zone", "must be a zone id")
	}
	if in.From.IsZero() || in.From.Year() < 1900 {
		c.add("from", "required")
	} else if in.From.After(now.Add(time.Minute)) {
		c.add("from", "must not be in the future")
	}
	if in.To != nil && !in.To.After(in.From) {
		c.add("to", "must be after from")
	}
	if in.To != nil && in.To.After(now.Add(time.Minute)) {
		c.add("to", "must not be in the future")
	}
	return c.err()
}

const movementCols = "id, prisoner_id, facility_id, zone_id, from_at, to_at"

func scanMovement(row pgx.CollectableRow) (Movement, error) {
	var m Movement
	err := row.Scan(&m.ID, &m.Prisoner, &m.Facility, &m.Zone, &m.From, &m.To)
	m.From = m.From.UTC()
	if m.To != nil {
		*m.To = m.To.UTC()
	}
	return m, err
}

// MovementFacility is the facility a movement input refers to, for
// authorisation before recording it.
func (r *Registry) MovementFacility(ctx context.Context, prisonerID int64, in MovementInput) (string, error) {
	if in.Facility != "" {
		return in.Facility, nil
	}
	p, err := r.Prisoner(ctx, prisonerID)
	return p.Facility, err
}

// RecordMovement records a stay of a prisoner. A current stay (To nil) also
// sets the prisoner's facility to the stay's.
func (r *Registry) RecordMovement(ctx context.Context, act Actor, prisonerID int64, in MovementInput) (Movement, error) {
	now := r.now()
	if err := in.check(now); err != nil {
		return Movement{}, err
	}
	in.From = in.From.UTC().Truncate(time.Microsecond)
	if in.To != nil {
		t := in.To.UTC().Truncate(time.Microsecond)
		in.To = &t
	}
	var m Movement
	err := r.inTx(ctx, func(tx pgx.Tx) (Entry, error) {
		var facility string
		if err := tx.QueryRow(ctx, "SELECT facility_id FROM prisoners WHERE id = $1 FOR UPDATE", prisonerID).Scan(&facility); err != nil {
			return Entry{}, dbErr(fmt.Sprintf("prisoner %d", prisonerID), err)
		}
		if in.Facility == "" {
			in.Facility = facility
		}
		if in.To == nil {
			// The new stay is current: end the open one at its start.
			var openID int64
			var openFrom time.Time
			err := tx.QueryRow(ctx, "SELECT id, from_at FROM prisoner_movements WHERE prisoner_id = $1 AND to_at IS NULL", prisonerID).
				Scan(&openID, &openFrom)
			switch {
			case errors.Is(err, pgx.ErrNoRows):
			case err != nil:
				return Entry{}, dbErr("movements", err)
			case !openFrom.Before(in.From):
				return Entry{}, invalid("from", "must be after the start of the current stay (%s)", openFrom.UTC().Format(time.RFC3339))
			default:
				if _, err := tx.Exec(ctx, "UPDATE prisoner_movements SET to_at = $2 WHERE id = $1", openID, in.From); err != nil {
					return Entry{}, dbErr("movements", err)
				}
			}
		}
		var overlaps bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM prisoner_movements WHERE prisoner_id = $1
			AND from_at < coalesce($3, 'infinity'::timestamptz) AND coalesce(to_at, 'infinity'::timestamptz) > $2)`,
			prisonerID, in.From, in.To).Scan(&overlaps); err != nil {
			return Entry{}, dbErr("movements", err)
		}
		if overlaps {
			return Entry{}, invalid("from", "overlaps another stay of the prisoner")
		}
		rows, _ := tx.Query(ctx, `INSERT INTO prisoner_movements (prisoner_id, facility_id, zone_id, from_at, to_at)
			VALUES ($1, $2, $3, $4, $5) RETURNING `+movementCols, prisonerID, in.Facility, in.Zone, in.From, in.To)
		var err error
		if m, err = pgx.CollectExactlyOneRow(rows, scanMovement); err != nil {
			return Entry{}, dbErr("record movement", err)
		}
		if in.To == nil && in.Facility != facility {
			if _, err := tx.Exec(ctx, "UPDATE prisoners SET facility_id = $2, housing_zone_id = NULL, updated_at = $3 WHERE id = $1",
				prisonerID, in.Facility, now); err != nil {
				return Entry{}, dbErr("transfer prisoner", err)
			}
		}
		e := act.entry("prisoner.movement")
		e.Facility = in.Facility
		e.Objects = []string{fmt.Sprintf("prisoner:%d", prisonerID), fmt.Sprintf("movement:%d", m.ID), "zone:" + in.Facility + "/" + in.Zone}
		e.From = in.From
		if in.To != nil {
			e.To = *in.To
		}
		return e, nil
	})
	return m, err
}

// Movements returns the prisoner's stays that overlap [from, to) (zero
// times do not bound), in time order.
func (r *Registry) Movements(ctx context.Context, prisonerID int64, from, to time.Time) ([]Movement, error) {
	rows, _ := r.pool.Query(ctx, "SELECT "+movementCols+` FROM prisoner_movements WHERE prisoner_id = $1
		AND ($3::timestamptz IS NULL OR from_at < $3) AND ($2::timestamptz IS NULL OR coalesce(to_at, 'infinity'::timestamptz) > $2)
		ORDER BY from_at LIMIT 10000`, prisonerID, nullTime(from), nullTime(to))
	ms, err := pgx.CollectRows(rows, scanMovement)
	return ms, dbErr("movements", err)
}
