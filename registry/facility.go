package registry

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Facility is a site: a correctional facility or a monitoring centre.
type Facility struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Timezone  string    `json:"timezone"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// FacilityInput creates (ID, Name required) or changes (fields present are
// changed; ID cannot change) a facility.
type FacilityInput struct {
	ID       string  `json:"id,omitempty"`
	Name     *string `json:"name,omitempty"`
	Timezone *string `json:"timezone,omitempty"`
}

func (in *FacilityInput) check(create bool) error {
	var c checker
	if create {
		if !ValidFacilityID(in.ID) {
			c.add("id", "must be 1-32 lower-case letters, digits or -")
		}
		if in.Name == nil {
			c.add("name", "required")
		}
	} else if in.ID != "" {
		c.add("id", "cannot be changed")
	}
	if in.Name != nil {
		textLen(&c, "name", *in.Name, 1, 200)
	}
	if in.Timezone != nil {
		if _, err := time.LoadLocation(*in.Timezone); err != nil || *in.Timezone == "" || *in.Timezone == "Local" || strings.ContainsAny(*in.Timezone, "\x00") || len(*in.Timezone) > 64 {
			c.add("timezone", "must be an IANA time zone name such as Europe/Vilnius")
		}
	}
	return c.err()
}

const facilityCols = "id, name, timezone, created_at, updated_at"

func scanFacility(row pgx.CollectableRow) (Facility, error) {
	var f Facility
	err := row.Scan(&f.ID, &f.Name, &f.Timezone, &f.CreatedAt, &f.UpdatedAt)
	return f, err
}

// CreateFacility adds a facility.
func (r *Registry) CreateFacility(ctx context.Context, act Actor, in FacilityInput) (Facility, error) {
	if err := in.check(true); err != nil {
		return Facility{}, err
	}
	tz := "UTC"
	if in.Timezone != nil {
		tz = *in.Timezone
	}
	var f Facility
	err := r.inTx(ctx, func(tx pgx.Tx) (Entry, error) {
		now := r.now()
		rows, _ := tx.Query(ctx, `INSERT INTO facilities (id, name, timezone, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $4) RETURNING `+facilityCols, in.ID, *in.Name, tz, now)
		var err error
		if f, err = pgx.CollectExactlyOneRow(rows, scanFacility); err != nil {
			return Entry{}, dbErr("create facility", err)
		}
		e := act.entry("facility.create")
		e.Facility, e.Objects = f.ID, []string{"facility:" + f.ID}
		return e, nil
	})
	return f, err
}

// UpdateFacility changes a facility.
func (r *Registry) UpdateFacility(ctx context.Context, act Actor, id string, in FacilityInput) (Facility, error) {
	if err := in.check(false); err != nil {
		return Facility{}, err
	}
	var f Facility
	err := r.inTx(ctx, func(tx pgx.Tx) (Entry, error) {
		rows, _ := tx.Query(ctx, `UPDATE facilities SET name = coalesce($2, name), timezone = coalesce($3, timezone),
			updated_at = $4 WHERE id = $1 RETURNING `+facilityCols, id, in.Name, in.Timezone, r.now())
		var err error
		if f, err = pgx.CollectExactlyOneRow(rows, scanFacility); err != nil {
			return Entry{}, dbErr("facility "+id, err)
		}
		e := act.entry("facility.update")
		e.Facility, e.Objects = f.ID, []string{"facility:" + f.ID}
		return e, nil
	})
	return f, err
}

// Facility returns one facility.
func (r *Registry) Facility(ctx context.Context, id string) (Facility, error) {
	if !ValidFacilityID(id) {
		return Facility{}, fmt.Errorf("facility %q: %w", id, ErrNotFound)
	}
	rows, _ := r.pool.Query(ctx, "SELECT "+facilityCols+" FROM facilities WHERE id = $1", id)
	f, err := pgx.CollectExactlyOneRow(rows, scanFacility)
	return f, dbErr("facility "+id, err)
}

// ListFacilities lists the facilities in scope, by id.
func (r *Registry) ListFacilities(ctx context.Context, s Scope, p Page) ([]Facility, error) {
	p = p.norm()
	rows, _ := r.pool.Query(ctx, "SELECT "+facilityCols+" FROM facilities WHERE ($1 OR id = ANY($2)) ORDER BY id LIMIT $3 OFFSET $4",
		s.All, nonNil(s.Facilities), p.Limit, p.Offset)
	fs, err := pgx.CollectRows(rows, scanFacility)
	return fs, dbErr("list facilities", err)
}

// ZoneKinds are the kinds of zone.
func ZoneKinds() []string {
	return []string{"cell_block", "corridor", "yard", "workshop", "visiting_room", "medical", "kitchen", "entrance", "control_room", "other"}
}

// Zone is an area of a facility: a cell block, a corridor, the yard, ...
type Zone struct {
	Facility  string    `json:"facility"`
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Kind      string    `json:"kind"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// ZoneInput creates (ID, Name, Kind required) or changes a zone.
type ZoneInput struct {
	ID   string  `json:"id,omitempty"`
	Name *string `json:"name,omitempty"`
	Kind *string `json:"kind,omitempty"`
}

func (in *ZoneInput) check(create bool) error {
	var c checker
	if create {
		if !ValidFacilityID(in.ID) {
			c.add("id", "must be 1-32 lower-case letters, digits or -")
		}
		if in.Name == nil {
			c.add("name", "required")
		}
		if in.Kind == nil {
			c.add("kind", "required")
		}
	} else if in.ID != "" {
		c.add("id", "cannot be changed")
	}
	if in.Name != nil {
		textLen(&c, "name", *in.Name, 1, 200)
	}
	if in.Kind != nil && !contains(ZoneKinds(), *in.Kind) {
		c.add("kind", "must be one of %s", strings.Join(ZoneKinds(), ", "))
	}
	return c.err()
}

const zoneCols = "facility_id, id, name, kind, created_at, updated_at"

func scanZone(row pgx.CollectableRow) (Zone, error) {
	var z Zone
	err := row.Scan(&z.Facility, &z.ID, &z.Name, &z.Kind, &z.CreatedAt, &z.UpdatedAt)
	return z, err
}

// CreateZone adds a zone to a facility.
func (r *Registry) CreateZone(ctx context.Context, act Actor, facility string, in ZoneInput) (Zone, error) {
	if err := in.check(true); err != nil {
		return Zone{}, err
	}
	var z Zone
	err := r.inTx(ctx, func(tx pgx.Tx) (Entry, error) {
		rows, _ := tx.Query(ctx, `INSERT INTO zones (facility_id, id, name, kind, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $5) RETURNING `+zoneCols, facility, in.ID, *in.Name, *in.Kind, r.now())
		var err error
		if z, err = pgx.CollectExactlyOneRow(rows, scanZone); err != nil {
			return Entry{}, dbErr("create zone", err)
		}
		e := act.entry("zone.create")
		e.Facility, e.Objects = facility, []string{"zone:" + facility + "/" + z.ID}
		return e, nil
	})
	return z, err
}

// UpdateZone changes a zone.
func (r *Registry) UpdateZone(ctx context.Context, act Actor, facility, id string, in ZoneInput) (Zone, error) {
	if err := in.check(false); err != nil {
		return Zone{}, err
	}
	var z Zone
	err := r.inTx(ctx, func(tx pgx.Tx) (Entry, error) {
		rows, _ := tx.Query(ctx, `UPDATE zones SET name = coalesce($3, name), kind = coalesce($4, kind), updated_at = $5
			WHERE facility_id = $1 AND id = $2 RETURNING `+zoneCols, facility, id, in.Name, in.Kind, r.now())
		var err error
		if z, err = pgx.CollectExactlyOneRow(rows, scanZone); err != nil {
			return Entry{}, dbErr("zone "+facility+"/"+id, err)
		}
		e := act.entry("zone.update")
		e.Facility, e.Objects = facility, []string{"zone:" + facility + "/" + z.ID}
		return e, nil
	})
	return z, err
}

// Zone returns one zone.
func (r *Registry) Zone(ctx context.Context, facility, id string) (Zone, error) {
	rows, _ := r.pool.Query(ctx, "SELECT "+zoneCols+" FROM zones WHERE facility_id = $1 AND id = $2", facility, id)
	z, err := pgx.CollectExactlyOneRow(rows, scanZone)
	return z, dbErr("zone "+facility+"/"+id, err)
}

// ListZones lists a facility's zones.
func (r *Registry) ListZones(ctx context.Context, facility string, p Page) ([]Zone, error) {
	p = p.norm()
	rows, _ := r.pool.Query(ctx, "SELECT "+zoneCols+" FROM zones WHERE facility_id = $1 ORDER BY id LIMIT $2 OFFSET $3",
		facility, p.Limit, p.Offset)
	zs, err := pgx.CollectRows(rows, scanZone)
	return zs, dbErr("list zones", err)
}
