package registry

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Retention classes and their default days.
func retentionDefault(class string) (int, bool) {
	switch class {
	case "short":
		return 7, true
	case "standard":
		return 31, true
	case "extended":
		return 180, true
	}
	return 0, false
}

// Camera is a camera record. Its credentials are never part of it.
type Camera struct {
	ID       string `json:"id"`
	Facility string `json:"facility"`
	Zone     string `json:"zone"`
	Name     string `json:"name"`
	// URL is the rtsp:// or rtsps:// URL, without credentials.
	URL            string    `json:"url"`
	HasCredentials bool      `json:"has_credentials"`
	RetentionClass string    `json:"retention_class"`
	RetentionDays  int       `json:"retention_days"`
	Enabled        bool      `json:"enabled"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
}

// CameraInput creates (ID, Facility, Zone, URL required) or changes a
// camera; absent fields keep their value (or default on create: Name = ID,
// RetentionClass standard, RetentionDays from the class, Enabled true).
type CameraInput struct {
	ID       string  `json:"id,omitempty"`
	Facility *string `json:"facility,omitempty"`
	Zone     *string `json:"zone,omitempty"`
	Name     *string `json:"name,omitempty"`
	URL      *string `json:"url,omitempty"`
	// Credentials sets the camera's credentials (sealed at rest; needs the
	// secret key). ClearCredentials removes them.
	Credentials      *Credentials `json:"credentials,omitempty"`
	ClearCredentials bool         `json:"clear_credentials,omitempty"`
	RetentionClass   *string      `json:"retention_class,omitempty"`
	RetentionDays    *int         `json:"retention_days,omitempty"`
	Enabled          *bool        `json:"enabled,omitempty"`
}

func (in *CameraInput) check(create bool) error {
	var c checker
	if create {
		if !ValidCameraID(in.ID) {
			c.add("id", "must be 1-64 letters, digits, - or _")
		}
		required(&c, "facility", in.Facility)
		required(&c, "zone", in.Zone)
		required(&c, "url", in.URL)
	} else if in.ID != "" {
		c.add("id", "cannot be changed")
	}
	if in.Facility != nil && !ValidFacilityID(*in.Facility) {
		c.add("facility", "must be a facility id")
	}
	if in.Zone != nil && !ValidFacilityID(*in.Zone) {
		c.add("zone", "must be a zone id")
	}
	if in.Name != nil {
		textLen(&c, "name", *in.Name, 1, 200)
	}
	if in.URL != nil {
		if err := checkRTSPURL(*in.URL); err != nil {
			c.add("url", "%v", err)
		}
	}
	if in.Credentials != nil {
		if in.ClearCredentials {
			c.add("clear_credentials", "cannot be combined with credentials")
		}
		textLen(&c, "credentials.username", in.Credentials.Username, 1, 128)
		textLen(&c, "credentials.password", in.Credentials.Password, 0, 256)
	}
	if in.RetentionClass != nil {
		if _, ok := retentionDefault(*in.RetentionClass); !ok {
			c.add("retention_class", "must be short, standard or extended")
		}
	}
	if in.RetentionDays != nil && (*in.RetentionDays < 1 || *in.RetentionDays > 3650) {
		c.add("retention_days", "must be between 1 and 3650")
	}
	return c.err()
}

func checkRTSPURL(s string) error {
	if len(s) > 2048 || strings.ContainsAny(s, "\x00\r\n\t ") {
		return errors.New("must be a URL of at most 2048 characters without spaces")
	}
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("is not a URL")
	}
	switch {
	case u.Scheme != "rtsp" && u.Scheme != "rtsps":
		return errors.New("scheme must be rtsp:// or rtsps://")
	case u.User != nil:
		return errors.New("put credentials in credentials, not in the URL")
	case u.Hostname() == "":
		return errors.New("needs a host")
	}
	return nil
}

const cameraCols = `id, facility_id, zone_id, name, rtsp_url, credentials IS NOT NULL, retention_class, retention_days,
	enabled, created_at, updated_at`

func scanCamera(row pgx.CollectableRow) (Camera, error) {
	var c Camera
	err := row.Scan(&c.ID, &c.Facility, &c.Zone, &c.Name, &c.URL, &c.HasCredentials, &c.RetentionClass,
		&c.RetentionDays, &c.Enabled, &c.CreatedAt, &c.UpdatedAt)
	return c, err
}

// CreateCamera adds a camera.
func (r *Registry) CreateCamera(ctx context.Context, act Actor, in CameraInput) (Camera, error) {
	if err := in.check(true); err != nil {
		return Camera{}, err
	}
	name := in.ID
	if in.Name != nil {
		name = *in.Name
	}
	class := "standard"
	if in.RetentionClass != nil {
		class = *in.RetentionClass
	}
	days, _ := retentionDefault(class)
	if in.RetentionDays != nil {
		days = *in.RetentionDays
	}
	enabled := true
	if in.Enabled != nil {
		enabled = *in.Enabled
	}
	var sealed []byte
	if in.Credentials != nil {
		var err error
		if sealed, err = r.seal.seal(in.ID, *in.Credentials); err != nil {
			if errors.Is(err, ErrNoSecretKey) {
				return Camera{}, invalid("credentials", "cannot be stored: %v", err)
			}
			return Camera{}, err
		}
	}
	var cam Camera
	err := r.inTx(ctx, func(tx pgx.Tx) (Entry, error) {
		rows, _ := tx.Query(ctx, `INSERT INTO cameras (id, facility_id, zone_id, name, rtsp_url, credentials, retention_class,
			retention_days, enabled, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)
			RETURNING `+cameraCols, in.ID, *in.Facility, *in.Zone, name, *in.URL, sealed, class, days, enabled, r.now())
		var err error
		if cam, err = pgx.CollectExactlyOneRow(rows, scanCamera); err != nil {
			return Entry{}, dbErr("create camera", err)
		}
		e := act.entry("camera.create")
		e.Facility, e.Objects = cam.Facility, []string{"camera:" + cam.ID}
		return e, nil
	})
	return cam, err
}

// UpdateCamera changes a camera. When Facility changes, Zone must name a
// zone of the new facility.
func (r *Registry) UpdateCamera(ctx context.Context, act Actor, id string, in CameraInput) (Camera, error) {
	if err := in.check(false); err != nil {
		return Camera{}, err
	}
	var sealed []byte
	if in.Credentials != nil {
		var err error
		if sealed, err = r.seal.seal(id, *in.Credentials); err != nil {
			if errors.Is(err, ErrNoSecretKey) {
				return Camera{}, invalid("credentials", "cannot be stored: %v", err)
			}
			return Camera{}, err
		}
	}
	var cam Camera
	err := r.inTx(ctx, func(tx pgx.Tx) (Entry, error) {
		var before string
		if err := tx.QueryRow(ctx, "SELECT facility_id FROM cameras WHERE id = $1 FOR UPDATE", id).Scan(&before); err != nil {
			return Entry{}, dbErr("camera "+id, err)
		}
		rows, _ := tx.Query(ctx, `UPDATE cameras SET facility_id = coalesce($2, facility_id), zone_id = coalesce($3, zone_id),
			name = coalesce($4, name), rtsp_url = coalesce($5, rtsp_url),
			credentials = CASE WHEN $6 THEN NULL WHEN $7::bytea IS NOT NULL THEN $7 ELSE credentials END,
			retention_class = coalesce($8, retention_class), retention_days = coalesce($9, retention_days),
			enabled = coalesce($10, enabled), updated_at = $11 WHERE id = $1 RETURNING `+cameraCols,
			id, in.Facility, in.Zone, in.Name, in.URL, in.ClearCredentials, sealed, in.RetentionClass, in.RetentionDays,
			in.Enabled, r.now())
		var err error
		if cam, err = pgx.CollectExactlyOneRow(rows, scanCamera); err != nil {
			return Entry{}, dbErr("camera "+id, err)
		}
		e := act.entry("camera.update")
		e.Facility, e.Objects = cam.Facility, []string{"camera:" + cam.ID}
		e.Detail = "changed: " + strings.Join(in.changed(), ",")
		if before != cam.Facility {
			e.Detail += "; moved from facility " + before
		}
		return e, nil
	})
	return cam, err
}

func (in *CameraInput) changed() []string {
	var out []string
	add := func(name string, set bool) {
		if set {
			out = append(out, name)
		}
	}
	add("facility", in.Facility != nil)
	add("zone", in.Zone != nil)
	add("name", in.Name != nil)
	add("url", in.URL != nil)
	add("credentials", in.Credentials != nil || in.ClearCredentials)
	add("retention_class", in.RetentionClass != nil)
	add("retention_days", in.RetentionDays != nil)
	add("enabled", in.Enabled != nil)
	return out
}

// Camera returns one camera.
func (r *Registry) Camera(ctx context.Context, id string) (Camera, error) {
	if !ValidCameraID(id) {
		return Camera{}, fmt.Errorf("camera %q: %w", id, ErrNotFound)
	}
	rows, _ := r.pool.Query(ctx, "SELECT "+cameraCols+" FROM cameras WHERE id = $1", id)
	c, err := pgx.CollectExactlyOneRow(rows, scanCamera)
	return c, dbErr("camera "+id, err)
}

// CameraFilter selects cameras; zero fields do not filter.
type CameraFilter struct {
	Facility string
	Zone     string
	Enabled  *bool
}

// ListCameras lists cameras in scope, by id.
func (r *Registry) ListCameras(ctx context.Context, s Scope, f CameraFilter, p Page) ([]Camera, error) {
	p = p.norm()
	s = s.narrow(f.Facility)
	rows, _ := r.pool.Query(ctx, "SELECT "+cameraCols+` FROM cameras WHERE ($1 OR facility_id = ANY($2))
		AND ($3 = '' OR zone_id = $3) AND ($4::boolean IS NULL OR enabled = $4) ORDER BY id LIMIT $5 OFFSET $6`,
		s.All, nonNil(s.Facilities), f.Zone, f.Enabled, p.Limit, p.Offset)
	cs, err := pgx.CollectRows(rows, scanCamera)
	return cs, dbErr("list cameras", err)
}

// CameraSource is an enabled camera with what ingest needs to pull it.
type CameraSource struct {
	Camera
	// Credentials are the opened credentials; nil when the camera has none.
	Credentials *Credentials
}

// CameraSources returns every enabled camera with its credentials opened,
// for ingest. A camera whose credentials cannot be opened (no key, wrong
// key) is left out and reported in the joined error; the others are
// returned.
func (r *Registry) CameraSources(ctx context.Context) ([]CameraSource, error) {
	rows, _ := r.pool.Query(ctx, "SELECT "+cameraCols+", credentials FROM cameras WHERE enabled ORDER BY id")
	type row struct {
		cam    Camera
		sealed []byte
	}
	rs, err := pgx.CollectRows(rows, func(cr pgx.CollectableRow) (row, error) {
		var x row
		c := &x.cam
		err := cr.Scan(&c.ID, &c.Facility, &c.Zone, &c.Name, &c.URL, &c.HasCredentials, &c.RetentionClass,
			&c.RetentionDays, &c.Enabled, &c.CreatedAt, &c.UpdatedAt, &x.sealed)
		return x, err
	})
	if err != nil {
		return nil, fmt.Errorf("camera sources: %w", err)
	}
	var out []CameraSource
	var errs []error
	for _, x := range rs {
		src := CameraSource{Camera: x.cam}
		if x.sealed != nil {
			cr, err := r.seal.open(x.cam.ID, x.sealed)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			src.Credentials = &cr
		}
		out = append(out, src)
	}
	return out, errors.Join(errs...)
}
