package registry

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Session is a logged-in browser session.
type Session struct {
	// Token is the session cookie's value; only its hash is stored.
	Token string
	// CSRF must accompany every state-changing request of the session.
	CSRF string
	// ExpiresAt is the absolute end; the session also ends when idle for
	// Config.SessionIdle.
	ExpiresAt time.Time
	Principal Principal
}

// TokenPrefix starts every API token.
const TokenPrefix = "kzt_"

func randomToken(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func secretHash(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// Login checks a user name and password from client and opens a session.
// Failures are ErrBadCredentials (whatever the cause: unknown user, wrong
// password, disabled user) or a *ThrottleError when the client or the user
// name made too many attempts. Every attempt is audited; when the audit row
// cannot be written the login is refused (ErrAudit).
func (r *Registry) Login(ctx context.Context, username, password, client string) (Session, error) {
	now := r.now()
	actor := username
	if !ValidUsername(username) {
		actor = "(invalid user name)"
	}
	failed := func(outcome, detail string, cause error) (Session, error) {
		e := Entry{Actor: actor, Client: client, Action: AuditLoginFailed, Outcome: outcome, Detail: detail}
		if err := r.audit.Record(ctx, e); err != nil {
			return Session{}, err
		}
		return Session{}, cause
	}
	if ok, first, wait := r.limit.allow(client, now); !ok {
		te := &ThrottleError{RetryAfter: wait}
		if first {
			return failed(OutcomeDenied, "client throttled", te)
		}
		return Session{}, te
	}
	if len(password) > MaxPasswordLen*4 {
		password = password[:MaxPasswordLen*4]
	}
	if actor != username {
		_, _ = checkPassword(password, r.dummyHash())
		return failed(OutcomeDenied, "bad credentials", ErrBadCredentials)
	}
	var lockedUntil *time.Time
	err := r.pool.QueryRow(ctx, "SELECT locked_until FROM login_failures WHERE username = $1", username).Scan(&lockedUntil)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return Session{}, fmt.Errorf("login: %w", err)
	}
	if lockedUntil != nil && lockedUntil.After(now) {
		return failed(OutcomeDenied, "user name locked", &ThrottleError{RetryAfter: lockedUntil.Sub(now)})
	}
	var id int64
	var hash *string
	var disabled bool
	err = r.pool.QueryRow(ctx, "SELECT id, password_hash, disabled FROM users WHERE username = $1", username).Scan(&id, &hash, &disabled)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return Session{}, fmt.Errorf("login: %w", err)
	}
	ok := false
	if hash != nil {
		ok, err = checkPassword(password, *hash)
		if err != nil {
			r.log.Warn("stored password hash unreadable", "user", username, "err", err)
		}
	} else {
		_, _ = checkPassword(password, r.dummyHash())
	}
	if !ok || disabled {
		detail := "bad credentials"
		if ok && disabled {
			detail = "user disabled"
		}
		var locked bool
		err := r.inTx(ctx, func(tx pgx.Tx) (Entry, error) {
			var failures int
			err := tx.QueryRow(ctx, `INSERT INTO login_failures AS f (username, failures, window_start) VALUES ($1, 1, $2)
				ON CONFLICT (username) DO UPDATE SET
				  failures = CASE WHEN f.window_start < $3 THEN 1 ELSE f.failures + 1 END,
				  window_start = CASE WHEN f.window_start < $3 THEN $2 ELSE f.window_start END
				RETURNING failures`, username, now, now.Add(-r.cfg.LoginWindow)).Scan(&failures)
			if err != nil {
				return Entry{}, fmt.Errorf("login: count failure: %w", err)
			}
			if failures >= r.cfg.LoginMaxFailures {
				locked = true
				if _, err := tx.Exec(ctx, "UPDATE login_failures SET locked_until = $2, failures = 0, window_start = $3 WHERE username = $1",
					username, now.Add(r.cfg.LoginLockout), now); err != nil {
					return Entry{}, fmt.Errorf("login: lock: %w", err)
				}
				detail += "; user name locked for " + r.cfg.LoginLockout.String()
			}
			e := Entry{Actor: actor, Client: client, Action: AuditLoginFailed, Outcome: OutcomeDenied, Detail: detail}
			return e, nil
		})
		if err != nil {
			return Session{}, err
		}
		if locked {
			return Session{}, &ThrottleError{RetryAfter: r.cfg.LoginLockout}
		}
		return Session{}, ErrBadCredentials
	}
	p, err := loadPrincipal(ctx, r.pool, id)
	if err != nil {
		return Session{}, fmt.Errorf("login: %w", err)
	}
	tok, err := randomToken(32)
	if err != nil {
		return Session{}, err
	}
	csrf, err := randomToken(24)
	if err != nil {
		return Session{}, err
	}
	s := Session{Token: tok, CSRF: csrf, ExpiresAt: now.Add(r.cfg.SessionMax), Principal: p}
	err = r.inTx(ctx, func(tx pgx.Tx) (Entry, error) {
		if _, err := tx.Exec(ctx, "DELETE FROM login_failures WHERE username = $1", username); err != nil {
			return Entry{}, err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO sessions (id_hash, user_id, csrf_token, client, created_at, last_seen_at, expires_at)
			VALUES ($1, $2, $3, $4, $5, $5, $6)`, secretHash(tok), id, csrf, client, now, s.ExpiresAt); err != nil {
			return Entry{}, err
		}
		// Sweep this user's ended sessions while here.
		if _, err := tx.Exec(ctx, "DELETE FROM sessions WHERE user_id = $1 AND (expires_at < $2 OR last_seen_at < $3)",
			id, now, now.Add(-r.cfg.SessionIdle)); err != nil {
			return Entry{}, err
		}
		return EntryFor(p, client, AuditLogin), nil
	})
	if err != nil {
		if errors.Is(err, ErrAudit) {
			return Session{}, err
		}
		return Session{}, fmt.Errorf("login: %w", err)
	}
	return s, nil
}

// SessionPrincipal returns the principal of a live session and its CSRF
// token, and marks the session used. An unknown, expired or idle session,
// or one of a disabled user, is ErrBadCredentials.
func (r *Registry) SessionPrincipal(ctx context.Context, token string) (Principal, string, error) {
	if token == "" || len(token) > 128 {
		return Principal{}, "", ErrBadCredentials
	}
	now := r.now()
	h := secretHash(token)
	var userID int64
	var csrf string
	var lastSeen, expires time.Time
	err := r.pool.QueryRow(ctx, "SELECT user_id, csrf_token, last_seen_at, expires_at FROM sessions WHERE id_hash = $1", h).
		Scan(&userID, &csrf, &lastSeen, &expires)
	if errors.Is(err, pgx.ErrNoRows) {
		return Principal{}, "", ErrBadCredentials
	}
	if err != nil {
		return Principal{}, "", fmt.Errorf("session: %w", err)
	}
	if !now.Before(expires) || now.Sub(lastSeen) >= r.cfg.SessionIdle {
		if _, err := r.pool.Exec(ctx, "DELETE FROM sessions WHERE id_hash = $1", h); err != nil {
			return Principal{}, "", fmt.Errorf("session: %w", err)
		}
		return Principal{}, "", ErrBadCredentials
	}
	p, err := loadPrincipal(ctx, r.pool, userID)
	if errors.Is(err, ErrBadCredentials) {
		return Principal{}, "", err
	}
	if err != nil {
		return Principal{}, "", fmt.Errorf("session: %w", err)
	}
	if now.Sub(lastSeen) >= min(r.cfg.SessionIdle/10, 10*time.Second) {
		if _, err := r.pool.Exec(ctx, "UPDATE sessions SET last_seen_at = $2 WHERE id_hash = $1 AND last_seen_at < $2", h, now); err != nil {
			return Principal{}, "", fmt.Errorf("session: %w", err)
		}
	}
	return p, csrf, nil
}

// Logout ends a session. Ending an unknown session is not an error.
func (r *Registry) Logout(ctx context.Context, act Actor, token string) error {
	return r.inTx(ctx, func(tx pgx.Tx) (Entry, error) {
		if _, err := tx.Exec(ctx, "DELETE FROM sessions WHERE id_hash = $1", secretHash(token)); err != nil {
			return Entry{}, fmt.Errorf("logout: %w", err)
		}
		return act.entry(AuditLogout), nil
	})
}

// loadPrincipal reads an enabled user with roles and scope; a disabled or
// missing user is ErrBadCredentials.
func loadPrincipal(ctx context.Context, q Querier, id int64) (Principal, error) {
	var p Principal
	var roles []string
	var disabled bool
	err := q.QueryRow(ctx, `SELECT u.id, u.username, u.roles, u.all_facilities, u.disabled,
		coalesce((SELECT array_agg(facility_id ORDER BY facility_id) FROM user_facilities WHERE user_id = u.id), '{}')
		FROM users u WHERE u.id = $1`, id).Scan(&p.UserID, &p.Username, &roles, &p.AllFacilities, &disabled, &p.Facilities)
	if errors.Is(err, pgx.ErrNoRows) {
		return p, ErrBadCredentials
	}
	if err != nil {
		return p, err
	}
	if disabled {
		return Principal{}, ErrBadCredentials
	}
	for _, r := range roles {
		p.Roles = append(p.Roles, Role(r))
	}
	return p, nil
}

// APIToken is a machine client's credential (without the secret).
type APIToken struct {
	ID         int64      `json:"id"`
	UserID     int64      `json:"user_id"`
	Name       string     `json:"name"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  *time.Time `json:"expires_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
}

// TokenInput describes a new API token.
type TokenInput struct {
	Name      string     `json:"name"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// CreateToken issues an API token for user userID and returns its secret,
// which is not stored and cannot be shown again.
func (r *Registry) CreateToken(ctx context.Context, act Actor, userID int64, in TokenInput) (string, APIToken, error) {
	var c checker
	textLen(&c, "name", in.Name, 1, 100)
	now := r.now()
	if in.ExpiresAt != nil && !in.ExpiresAt.After(now) {
		c.add("expires_at", "must be in the future")
	}
	if err := c.err(); err != nil {
		return "", APIToken{}, err
	}
	raw, err := randomToken(32)
	if err != nil {
		return "", APIToken{}, err
	}
	secret := TokenPrefix + raw
	t := APIToken{UserID: userID, Name: in.Name, CreatedAt: now, ExpiresAt: in.ExpiresAt}
	err = r.inTx(ctx, func(tx pgx.Tx) (Entry, error) {
		var one int
		if err := tx.QueryRow(ctx, "SELECT 1 FROM users WHERE id = $1", userID).Scan(&one); err != nil {
			return Entry{}, dbErr(fmt.Sprintf("user %d", userID), err)
		}
		if err := tx.QueryRow(ctx, `INSERT INTO api_tokens (user_id, name, token_hash, created_at, expires_at)
			VALUES ($1, $2, $3, $4, $5) RETURNING id`, userID, in.Name, secretHash(secret), now, in.ExpiresAt).Scan(&t.ID); err != nil {
			return Entry{}, dbErr("create token", err)
		}
		e := act.entry("token.create")
		e.Objects = []string{fmt.Sprintf("user:%d", userID), fmt.Sprintf("token:%d", t.ID)}
		return e, nil
	})
	if err != nil {
		return "", APIToken{}, err
	}
	return secret, t, nil
}

// ListTokens lists a user's tokens.
func (r *Registry) ListTokens(ctx context.Context, userID int64) ([]APIToken, error) {
	rows, err := r.pool.Query(ctx, `SELECT id, user_id, name, created_at, expires_at, last_used_at, revoked_at
		FROM api_tokens WHERE user_id = $1 ORDER BY id`, userID)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	ts, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (APIToken, error) {
		var t APIToken
		err := row.Scan(&t.ID, &t.UserID, &t.Name, &t.CreatedAt, &t.ExpiresAt, &t.LastUsedAt, &t.RevokedAt)
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	return ts, nil
}

// RevokeToken revokes token tokenID of user userID.
func (r *Registry) RevokeToken(ctx context.Context, act Actor, userID, tokenID int64) error {
	return r.inTx(ctx, func(tx pgx.Tx) (Entry, error) {
		tag, err := tx.Exec(ctx, "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, $3) WHERE id = $1 AND user_id = $2",
			tokenID, userID, r.now())
		if err != nil {
			return Entry{}, dbErr("revoke token", err)
		}
		if tag.RowsAffected() == 0 {
			return Entry{}, fmt.Errorf("token %d: %w", tokenID, ErrNotFound)
		}
		e := act.entry("token.revoke")
		e.Objects = []string{fmt.Sprintf("user:%d", userID), fmt.Sprintf("token:%d", tokenID)}
		return e, nil
	})
}

// TokenPrincipal returns the principal of an API token. An unknown, expired
// or revoked token, or one of a disabled user, is ErrBadCredentials.
func (r *Registry) TokenPrincipal(ctx context.Context, secret string) (Principal, error) {
	if !strings.HasPrefix(secret, TokenPrefix) || len(secret) > 128 {
		return Principal{}, ErrBadCredentials
	}
	now := r.now()
	var id, userID int64
	var expires, revoked, lastUsed *time.Time
	err := r.pool.QueryRow(ctx, "SELECT id, user_id, expires_at, revoked_at, last_used_at FROM api_tokens WHERE token_hash = $1",
		secretHash(secret)).Scan(&id, &userID, &expires, &revoked, &lastUsed)
	if errors.Is(err, pgx.ErrNoRows) {
		return Principal{}, ErrBadCredentials
	}
	if err != nil {
		return Principal{}, fmt.Errorf("token: %w", err)
	}
	if revoked != nil || (expires != nil && !now.Before(*expires)) {
		return Principal{}, ErrBadCredentials
	}
	p, err := loadPrincipal(ctx, r.pool, userID)
	if errors.Is(err, ErrBadCredentials) {
		return Principal{}, err
	}
	if err != nil {
		return Principal{}, fmt.Errorf("token: %w", err)
	}
	p.TokenID = id
	if lastUsed == nil || now.Sub(*lastUsed) > time.Minute {
		if _, err := r.pool.Exec(ctx, "UPDATE api_tokens SET last_used_at = $2 WHERE id = $1", id, now); err != nil {
			return Principal{}, fmt.Errorf("token: %w", err)
		}
	}
	return p, nil
}

// clientLimiter caps login attempts per client address in fixed windows. It
// holds at most max clients; when full, ended windows are swept and, if
// still full, the oldest window is dropped.
type clientLimiter struct {
	mu      sync.Mutex
	rate    int
	window  time.Duration
	max     int
	clients map[string]*clientWindow
}

type clientWindow struct {
	start    time.Time
	count    int
	reported bool
}

func newClientLimiter(rate int, window time.Duration, max int) *clientLimiter {
	return &clientLimiter{rate: rate, window: window, max: max, clients: map[string]*clientWindow{}}
}

// allow counts an attempt by client at now. When refused, first says whether
// this is the first refusal of the window, and wait how long until the next.
func (l *clientLimiter) allow(client string, now time.Time) (ok, first bool, wait time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.clients[client]
	if w == nil || now.Sub(w.start) >= l.window {
		if w == nil && len(l.clients) >= l.max {
			l.sweep(now)
		}
		w = &clientWindow{start: now}
		l.clients[client] = w
	}
	w.count++
	if w.count <= l.rate {
		return true, false, 0
	}
	first = !w.reported
	w.reported = true
	return false, first, w.start.Add(l.window).Sub(now)
}

func (l *clientLimiter) sweep(now time.Time) {
	var oldest string
	var oldestAt time.Time
	for k, w := range l.clients {
		if now.Sub(w.start) >= l.window {
			delete(l.clients, k)
			continue
		}
		if oldest == "" || w.start.Before(oldestAt) {
			oldest, oldestAt = k, w.start
		}
	}
	if len(l.clients) >= l.max && oldest != "" {
		delete(l.clients, oldest)
	}
}
