package registry

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// User is a person or machine client of Kuzet (never with its password).
type User struct {
	ID                int64      `json:"id"`
	Username          string     `json:"username"`
	DisplayName       string     `json:"display_name"`
	Roles             []Role     `json:"roles"`
	Facilities        []string   `json:"facilities"`
	AllFacilities     bool       `json:"all_facilities"`
	Disabled          bool       `json:"disabled"`
	HasPassword       bool       `json:"has_password"`
	PasswordChangedAt *time.Time `json:"password_changed_at"`
	CreatedAt         time.Time  `json:"created_at"`
	UpdatedAt         time.Time  `json:"updated_at"`
}

// Resource is the user as an object of the policy: acting on a user needs
// every facility of its scope in one's own (all facilities for a user
// scoped to all, or to none).
func (u User) Resource() Resource {
	if u.AllFacilities || len(u.Facilities) == 0 {
		return Resource{AllFacilities: true}
	}
	return Resource{Facilities: u.Facilities}
}

// UserInput creates (Username and at least one role required) or changes a
// user. A user without a password can only use API tokens.
type UserInput struct {
	Username      string    `json:"username,omitempty"`
	DisplayName   *string   `json:"display_name,omitempty"`
	Password      *string   `json:"password,omitempty"`
	Roles         *[]Role   `json:"roles,omitempty"`
	Facilities    *[]string `json:"facilities,omitempty"`
	AllFacilities *bool     `json:"all_facilities,omitempty"`
	Disabled      *bool     `json:"disabled,omitempty"`
}

// Check validates the input for a create (create true) or a change.
func (in *UserInput) Check(create bool) error {
	var c checker
	if create {
		if !ValidUsername(in.Username) {
			c.add("username", "must be 1-64 lower-case letters, digits, '.', '_' or '-'")
		}
		if in.Roles == nil {
			c.add("roles", "required")
		}
	} else if in.Username != "" {
		c.add("username", "cannot be changed")
	}
	if in.DisplayName != nil {
		textLen(&c, "display_name", *in.DisplayName, 0, 200)
	}
	if in.Password != nil {
		if err := checkPasswordPolicy("password", *in.Password); err != nil {
			c.fields = append(c.fields, err.(*ValidationError).Fields...)
		}
	}
	if in.Roles != nil {
		if len(*in.Roles) == 0 {
			c.add("roles", "at least one role")
		}
		for i, r := range *in.Roles {
			if !r.Valid() {
				c.add(fmt.Sprintf("roles[%d]", i), "must be operator, investigator, it, auditor or admin")
			} else if slices.Index(*in.Roles, r) != i {
				c.add(fmt.Sprintf("roles[%d]", i), "duplicate")
			}
		}
	}
	if in.Facilities != nil {
		if len(*in.Facilities) > 100 {
			c.add("facilities", "at most 100")
		}
		for i, f := range *in.Facilities {
			if !ValidFacilityID(f) {
				c.add(fmt.Sprintf("facilities[%d]", i), "must be a facility id")
			} else if slices.Index(*in.Facilities, f) != i {
				c.add(fmt.Sprintf("facilities[%d]", i), "duplicate")
			}
		}
	}
	return c.err()
}

const userCols = `u.id, u.username, u.display_name, u.roles, u.all_facilities, u.disabled, u.password_hash IS NOT NULL,
	u.password_changed_at, u.created_at, u.updated_at,
	coalesce((SELECT array_agg(facility_id ORDER BY facility_id) FROM user_facilities WHERE user_id = u.id), '{}')`

func scanUser(row pgx.CollectableRow) (User, error) {
	var u User
	var roles []string
	err := row.Scan(&u.ID, &u.Username, &u.DisplayName, &roles, &u.AllFacilities, &u.Disabled, &u.HasPassword,
		&u.PasswordChangedAt, &u.CreatedAt, &u.UpdatedAt, &u.Facilities)
	for _, r := range roles {
		u.Roles = append(u.Roles, Role(r))
	}
	return u, err
}

func roleStrings(rs []Role) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = string(r)
	}
	return out
}

// CreateUser adds a user.
func (r *Registry) CreateUser(ctx context.Context, act Actor, in UserInput) (User, error) {
	if err := in.Check(true); err != nil {
		return User{}, err
	}
	var hash *string
	var changed *time.Time
	now := r.now()
	if in.Password != nil {
		h, err := hashPassword(*in.Password, r.cfg.Password)
		if err != nil {
			return User{}, err
		}
		hash, changed = &h, &now
	}
	display := ""
	if in.DisplayName != nil {
		display = *in.DisplayName
	}
	all := in.AllFacilities != nil && *in.AllFacilities
	var u User
	err := r.inTx(ctx, func(tx pgx.Tx) (Entry, error) {
		var id int64
		if err := tx.QueryRow(ctx, `INSERT INTO users (username, display_name, password_hash, roles, all_facilities,
			disabled, password_changed_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING id`,
			in.Username, display, hash, roleStrings(*in.Roles), all, in.Disabled != nil && *in.Disabled, changed, now).Scan(&id); err != nil {
			return Entry{}, dbErr("create user", err)
		}
		if in.Facilities != nil {
			if err := setUserFacilities(ctx, tx, id, *in.Facilities); err != nil {
				return Entry{}, err
			}
		}
		var err error
		if u, err = getUser(ctx, tx, id); err != nil {
			return Entry{}, err
		}
		e := act.entry("user.create")
		e.Objects = []string{fmt.Sprintf("user:%d", id)}
		e.Detail = fmt.Sprintf("username %s; roles %s; facilities %s", u.Username, strings.Join(roleStrings(u.Roles), ","), scopeString(u))
		return e, nil
	})
	return u, err
}

func scopeString(u User) string {
	if u.AllFacilities {
		return "all"
	}
	return strings.Join(u.Facilities, ",")
}

func setUserFacilities(ctx context.Context, tx pgx.Tx, id int64, fs []string) error {
	if _, err := tx.Exec(ctx, "DELETE FROM user_facilities WHERE user_id = $1", id); err != nil {
		return dbErr("user facilities", err)
	}
	for _, f := range fs {
		if _, err := tx.Exec(ctx, "INSERT INTO user_facilities (user_id, facility_id) VALUES ($1, $2)", id, f); err != nil {
			return dbErr("user facilities", err)
		}
	}
	return nil
}

func getUser(ctx context.Context, q Querier, id int64) (User, error) {
	rows, _ := q.Query(ctx, "SELECT "+userCols+" FROM users u WHERE u.id = $1", id)
	u, err := pgx.CollectExactlyOneRow(rows, scanUser)
	return u, dbErr(fmt.Sprintf("user %d", id), err)
}

// UpdateUser changes a user. Changing the password, or disabling the user,
// ends its sessions.
func (r *Registry) UpdateUser(ctx context.Context, act Actor, id int64, in UserInput) (User, error) {
	if err := in.Check(false); err != nil {
		return User{}, err
	}
	now := r.now()
	var hash *string
	if in.Password != nil {
		h, err := hashPassword(*in.Password, r.cfg.Password)
		if err != nil {
			return User{}, err
		}
		hash = &h
	}
	var roles []string
	if in.Roles != nil {
		roles = roleStrings(*in.Roles)
	}
	var u User
	err := r.inTx(ctx, func(tx pgx.Tx) (Entry, error) {
		tag, err := tx.Exec(ctx, `UPDATE users SET display_name = coalesce($2, display_name),
			password_hash = coalesce($3, password_hash),
			password_changed_at = CASE WHEN $3::text IS NULL THEN password_changed_at ELSE $7 END,
			roles = coalesce($4, roles), all_facilities = coalesce($5, all_facilities),
			disabled = coalesce($6, disabled), updated_at = $7 WHERE id = $1`,
			id, in.DisplayName, hash, roles, in.AllFacilities, in.Disabled, now)
		if err != nil {
			return Entry{}, dbErr(fmt.Sprintf("user %d", id), err)
		}
		if tag.RowsAffected() == 0 {
			return Entry{}, fmt.Errorf("user %d: %w", id, ErrNotFound)
		}
		if in.Facilities != nil {
			if err := setUserFacilities(ctx, tx, id, *in.Facilities); err != nil {
				return Entry{}, err
			}
		}
		if in.Password != nil || (in.Disabled != nil && *in.Disabled) {
			if _, err := tx.Exec(ctx, "DELETE FROM sessions WHERE user_id = $1", id); err != nil {
				return Entry{}, dbErr("end sessions", err)
			}
		}
		if u, err = getUser(ctx, tx, id); err != nil {
			return Entry{}, err
		}
		e := act.entry("user.update")
		e.Objects = []string{fmt.Sprintf("user:%d", id)}
		e.Detail = "changed: " + strings.Join(in.changed(), ",") +
			fmt.Sprintf("; now roles %s; facilities %s; disabled %t", strings.Join(roleStrings(u.Roles), ","), scopeString(u), u.Disabled)
		return e, nil
	})
	return u, err
}

func (in *UserInput) changed() []string {
	var out []string
	for _, f := range []struct {
		name string
		set  bool
	}{
		{"display_name", in.DisplayName != nil}, {"password", in.Password != nil}, {"roles", in.Roles != nil},
		{"facilities", in.Facilities != nil}, {"all_facilities", in.AllFacilities != nil}, {"disabled", in.Disabled != nil},
	} {
		if f.set {
			out = append(out, f.name)
		}
	}
	return out
}

// User returns one user.
func (r *Registry) User(ctx context.Context, id int64) (User, error) {
	return getUser(ctx, r.pool, id)
}

// UserFilter selects users; zero fields do not filter.
type UserFilter struct {
	Role     Role
	Facility string
}

// ListUsers lists the users whose whole scope lies within s (users scoped
// to all facilities or to none only when s is all), by id.
func (r *Registry) ListUsers(ctx context.Context, s Scope, f UserFilter, p Page) ([]User, error) {
	p = p.norm()
	rows, _ := r.pool.Query(ctx, "SELECT "+userCols+` FROM users u WHERE
		($1 OR (NOT u.all_facilities AND EXISTS (SELECT 1 FROM user_facilities WHERE user_id = u.id)
		    AND NOT EXISTS (SELECT 1 FROM user_facilities uf WHERE uf.user_id = u.id AND NOT uf.facility_id = ANY($2))))
		AND ($3 = '' OR $3 = ANY(u.roles))
		AND ($4 = '' OR EXISTS (SELECT 1 FROM user_facilities WHERE user_id = u.id AND facility_id = $4))
		ORDER BY u.id LIMIT $5 OFFSET $6`, s.All, nonNil(s.Facilities), string(f.Role), f.Facility, p.Limit, p.Offset)
	us, err := pgx.CollectRows(rows, scanUser)
	return us, dbErr("list users", err)
}

// missingUsers returns the ids among ids that are not users.
func missingUsers(ctx context.Context, tx pgx.Tx, ids []int64) ([]int64, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	rows, _ := tx.Query(ctx, "SELECT x FROM unnest($1::bigint[]) x WHERE NOT EXISTS (SELECT 1 FROM users WHERE id = x)", ids)
	out, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	return out, dbErr("users", err)
}

// BootstrapAdmin creates the first user of an empty registry: an admin
// scoped to all facilities, named username, with a random password that is
// returned (and shown nowhere else). When any user exists it does nothing
// and created is false, so it is safe to run at every start or install.
func (r *Registry) BootstrapAdmin(ctx context.Context, act Actor, username string) (password string, created bool, err error) {
	if !ValidUsername(username) {
		return "", false, invalid("username", "must be 1-64 lower-case letters, digits, '.', '_' or '-'")
	}
	pw, err := randomToken(18)
	if err != nil {
		return "", false, err
	}
	hash, err := hashPassword(pw, r.cfg.Password)
	if err != nil {
		return "", false, err
	}
	now := r.now()
	err = r.inTxN(ctx, func(tx pgx.Tx) ([]Entry, error) {
		// Serialise concurrent bootstraps; see whether anyone exists.
		if _, err := tx.Exec(ctx, "LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE"); err != nil {
			return nil, dbErr("bootstrap", err)
		}
		var any bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM users)").Scan(&any); err != nil {
			return nil, dbErr("bootstrap", err)
		}
		if any {
			return nil, nil
		}
		var id int64
		if err := tx.QueryRow(ctx, `INSERT INTO users (username, display_name, password_hash, roles, all_facilities,
			password_changed_at, created_at, updated_at) VALUES ($1, 'First administrator', $2, '{admin}', true, $3, $3, $3)
			RETURNING id`, username, hash, now).Scan(&id); err != nil {
			return nil, dbErr("bootstrap", err)
		}
		created = true
		e := act.entry("user.create")
		e.Objects, e.Detail = []string{fmt.Sprintf("user:%d", id)}, "first administrator "+username+"; roles admin; facilities all"
		return []Entry{e}, nil
	})
	if err != nil || !created {
		return "", false, err
	}
	return pw, true, nil
}
