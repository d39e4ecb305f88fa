package registry

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kuzet/kuzet/internal/migrate"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations is the registry's schema, for migrate.Apply.
func Migrations() migrate.Set {
	return migrate.Set{Component: "registry", FS: migrationFiles, Dir: "migrations"}
}

// HoldPlacer places and releases legal holds on recorded footage. The
// recorder implements it; cmd/kuzet wires it in. Both calls are idempotent:
// placing a hold for (camera, incidentID) again widens or replaces its
// window; releasing one that is not there is not an error. An implementation
// must not write to the audit log from inside these calls' callers'
// transactions (the registry audits the holds it places).
type HoldPlacer interface {
	PlaceHold(ctx context.Context, camera string, from, to time.Time, reason string, incidentID int64) error
	ReleaseHold(ctx context.Context, camera string, incidentID int64) error
}

// Config configures the registry.
type Config struct {
	// SecretKey is the 32-byte key that seals camera credentials (see
	// LoadSecretKey). Default: none; cameras with credentials are refused.
	SecretKey []byte
	// Password is the argon2id parameter set for new password hashes.
	// Default: DefaultPasswordParams().
	Password PasswordParams
	// SessionIdle ends a session unused for this long. Default: 15m.
	SessionIdle time.Duration
	// SessionMax ends a session this long after login. Default: 12h.
	SessionMax time.Duration
	// LoginMaxFailures failed logins for one user name within LoginWindow
	// lock that name for LoginLockout. Defaults: 5, 15m, 15m.
	LoginMaxFailures int
	LoginWindow      time.Duration
	LoginLockout     time.Duration
	// LoginClientRate is how many login attempts one client address may make
	// per minute (in this process). Default: 20.
	LoginClientRate int
	// HoldBefore and HoldAfter widen an incident's [start, end] into the
	// window of the legal hold placed when it is serious or critical.
	// Defaults: 2h and 2h.
	HoldBefore time.Duration
	HoldAfter  time.Duration
	// Now is the clock. Default: time.Now.
	Now func() time.Time
}

func (c *Config) setDefaults() {
	if c.Password == (PasswordParams{}) {
		c.Password = DefaultPasswordParams()
	}
	if c.SessionIdle == 0 {
		c.SessionIdle = 15 * time.Minute
	}
	if c.SessionMax == 0 {
		c.SessionMax = 12 * time.Hour
	}
	if c.LoginMaxFailures == 0 {
		c.LoginMaxFailures = 5
	}
	if c.LoginWindow == 0 {
		c.LoginWindow = 15 * time.Minute
	}
	if c.LoginLockout == 0 {
		c.LoginLockout = 15 * time.Minute
	}
	if c.LoginClientRate == 0 {
		c.LoginClientRate = 20
	}
	if c.HoldBefore == 0 {
		c.HoldBefore = 2 * time.Hour
	}
	if c.HoldAfter == 0 {
		c.HoldAfter = 2 * time.Hour
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Registry is the store of facilities, zones, cameras, prisoners, incidents
// and users, with authentication and the audit log. It is safe for
// concurrent use. Every change is written together with its audit row in one
// transaction: if the audit row cannot be written, the change is not made.
type Registry struct {
	cfg    Config
	pool   *pgxpool.Pool
	log    *slog.Logger
	seal   *sealer
	audit  *Audit
	holds  HoldPlacer
	limit  *clientLimiter
	policy Policy
	// dummy is a password hash checked for unknown users, to even out the
	// timing of a login; made on first use.
	dummyOnce sync.Once
	dummy     string
}

// dummyHash returns the timing-equaliser hash.
func (r *Registry) dummyHash() string {
	r.dummyOnce.Do(func() {
		h, err := hashPassword("kuzet-timing-equaliser", r.cfg.Password)
		if err != nil {
			r.log.Error("timing-equaliser hash", "err", err)
		}
		r.dummy = h
	})
	return r.dummy
}

// New returns a registry over pool, whose schema must be migrated
// (Migrations). holds receives the legal holds of serious incidents; it is
// required.
func New(cfg Config, pool *pgxpool.Pool, holds HoldPlacer, log *slog.Logger) (*Registry, error) {
	cfg.setDefaults()
	if pool == nil {
		return nil, errors.New("registry: nil pool")
	}
	if holds == nil {
		return nil, errors.New("registry: nil hold placer")
	}
	if log == nil {
		return nil, errors.New("registry: nil logger")
	}
	if cfg.Password.Time == 0 || cfg.Password.Threads == 0 || cfg.Password.MemoryKiB < 8*uint32(cfg.Password.Threads) {
		return nil, fmt.Errorf("registry: password parameters %+v out of range", cfg.Password)
	}
	if cfg.SessionIdle < 0 || cfg.SessionMax < cfg.SessionIdle || cfg.HoldBefore < 0 || cfg.HoldAfter < 0 ||
		cfg.LoginMaxFailures < 1 || cfg.LoginClientRate < 1 {
		return nil, fmt.Errorf("registry: configuration out of range")
	}
	s, err := newSealer(cfg.SecretKey)
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	return &Registry{
		cfg: cfg, pool: pool, log: log, seal: s, holds: holds,
		audit: newAudit(pool, cfg.Now),
		limit: newClientLimiter(cfg.LoginClientRate, time.Minute, 4096),
	}, nil
}

// Audit is the audit log, for other packages to write their rows.
func (r *Registry) Audit() *Audit { return r.audit }

// Policy is the authorisation policy.
func (r *Registry) Policy() Policy { return r.policy }

// Pool is the database the registry uses.
func (r *Registry) Pool() *pgxpool.Pool { return r.pool }

// Actor is who makes a change, and from where, for the audit row.
type Actor struct {
	Principal Principal
	Client    string
}

// System is the actor for changes Kuzet makes itself (name says which part).
func System(name string) Actor {
	return Actor{Principal: Principal{Username: "system:" + name}, Client: "local"}
}

func (a Actor) entry(action string) Entry {
	return EntryFor(a.Principal, a.Client, action)
}

func (r *Registry) now() time.Time { return r.cfg.Now().UTC().Truncate(time.Microsecond) }

// inTx runs fn in a transaction and writes the audit entry it returns last,
// under the chain lock, before committing. If fn or the audit row fails,
// nothing is committed.
func (r *Registry) inTx(ctx context.Context, fn func(tx pgx.Tx) (Entry, error)) error {
	return r.inTxN(ctx, func(tx pgx.Tx) ([]Entry, error) {
		e, err := fn(tx)
		return []Entry{e}, err
	})
}

// inTxN is inTx for a change that writes several audit rows.
func (r *Registry) inTxN(ctx context.Context, fn func(tx pgx.Tx) ([]Entry, error)) error {
	return pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		es, err := fn(tx)
		if err != nil {
			return err
		}
		for _, e := range es {
			if err := r.audit.record(ctx, tx, e); err != nil {
				return err
			}
		}
		return nil
	})
}

var (
	codeRE     = regexp.MustCompile(`^[a-z0-9-]{1,32}$`)
	cameraIDRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	usernameRE = regexp.MustCompile(`^[a-z0-9._-]{1,64}$`)
	regNoRE    = regexp.MustCompile(`^[A-Za-z0-9/-]{1,32}$`)
)

// ValidFacilityID reports whether s is a facility (or zone) code.
func ValidFacilityID(s string) bool { return codeRE.MatchString(s) }

// ValidCameraID reports whether s is a camera id.
func ValidCameraID(s string) bool { return cameraIDRE.MatchString(s) }

// ValidUsername reports whether s is a user name.
func ValidUsername(s string) bool { return usernameRE.MatchString(s) }

// Page bounds a list.
type Page struct {
	// Limit is the most items returned: default 50, at most 500.
	Limit int
	// Offset skips that many items.
	Offset int
}

func (p Page) norm() Page {
	if p.Limit <= 0 {
		p.Limit = 50
	}
	if p.Limit > 500 {
		p.Limit = 500
	}
	if p.Offset < 0 {
		p.Offset = 0
	}
	return p
}

// Scope restricts lists to facilities; All lifts the restriction.
type Scope struct {
	All        bool
	Facilities []string
}

// ScopeOf is the scope of principal p.
func ScopeOf(p Principal) Scope { return Scope{All: p.AllFacilities, Facilities: p.Facilities} }

// narrow intersects the scope with one facility filter ("" for none).
func (s Scope) narrow(facility string) Scope {
	if facility == "" {
		return s
	}
	if s.All || contains(s.Facilities, facility) {
		return Scope{Facilities: []string{facility}}
	}
	return Scope{Facilities: []string{}}
}

func contains[T comparable](s []T, v T) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func textLen(c *checker, field, s string, minLen, maxLen int) {
	if !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
		c.add(field, "must be UTF-8 text without NUL characters")
		return
	}
	n := utf8.RuneCountInString(s)
	if n < minLen || n > maxLen {
		if minLen > 0 && n == 0 {
			c.add(field, "required")
			return
		}
		c.add(field, "must be %d to %d characters", minLen, maxLen)
	}
}

func required[T any](c *checker, field string, v *T) {
	if v == nil {
		c.add(field, "required")
	}
}
