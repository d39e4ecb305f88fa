package viewer

import (
	"crypto/subtle"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/kuzet/kuzet/registry"
)

// Session cookie and CSRF header names.
const (
	sessionCookie = "kuzet_session"
	csrfHeader    = "X-CSRF-Token"
)

// errCSRF: a session's state-changing request without its CSRF token.
var errCSRF = errors.New("missing or wrong CSRF token")

// safeMethod reports whether m changes nothing (no CSRF token needed).
func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// Authenticate says who sent r: an API token (Authorization: Bearer) or a
// session cookie. A session's state-changing request (anything but GET,
// HEAD, OPTIONS) must carry the session's CSRF token in X-CSRF-Token, or it
// is refused. Failures are registry.ErrBadCredentials, or errCSRF; other
// errors are the database's. It implements Authenticator for the rest of
// the viewer (signalling, playback, export, SSE).
func (a *API) Authenticate(r *http.Request) (registry.Principal, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return registry.Principal{}, registry.ErrBadCredentials
		}
		return a.reg.TokenPrincipal(r.Context(), strings.TrimSpace(tok))
	}
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return registry.Principal{}, registry.ErrBadCredentials
	}
	p, csrf, err := a.reg.SessionPrincipal(r.Context(), c.Value)
	if err != nil {
		return registry.Principal{}, err
	}
	if !safeMethod(r.Method) {
		got := r.Header.Get(csrfHeader)
		if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(csrf)) != 1 {
			return registry.Principal{}, errCSRF
		}
	}
	return p, nil
}

// loginRequest is the body of POST /api/v1/login.
type loginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// sessionInfo describes the caller's session: who, the CSRF token to send
// with state-changing requests, and the actions its roles grant somewhere.
type sessionInfo struct {
	User      registry.Principal `json:"user"`
	CSRFToken string             `json:"csrf_token,omitempty"`
	ExpiresAt *time.Time         `json:"expires_at,omitempty"`
	Actions   []registry.Action  `json:"actions"`
}

func (a *API) allowedActions(p registry.Principal) []registry.Action {
	out := []registry.Action{}
	for _, act := range registry.Actions() {
		if a.policy.Allowed(p, act) {
			out = append(out, act)
		}
	}
	return out
}

func (a *API) login(w http.ResponseWriter, r *http.Request, _ registry.Principal) {
	var in loginRequest
	if err := decodeBody(r, &in); err != nil {
		a.refuse(w, r, err)
		return
	}
	s, err := a.reg.Login(r.Context(), in.Username, in.Password, a.client(r))
	if err != nil {
		if errors.Is(err, registry.ErrBadCredentials) {
			a.problem(w, r, http.StatusUnauthorized, "unauthenticated", "invalid user name or password")
			return
		}
		a.fail(w, r, "login", err)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: s.Token, Path: "/", Expires: s.ExpiresAt,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil || a.cfg.SecureCookies,
	})
	exp := s.ExpiresAt
	a.writeJSON(w, http.StatusOK, sessionInfo{User: s.Principal, CSRFToken: s.CSRF, ExpiresAt: &exp, Actions: a.allowedActions(s.Principal)})
}

func (a *API) logout(w http.ResponseWriter, r *http.Request, p registry.Principal) {
	if c, err := r.Cookie(sessionCookie); err == nil && p.TokenID == 0 {
		if err := a.reg.Logout(r.Context(), a.actor(r, p), c.Value); err != nil {
			a.fail(w, r, "logout", err)
			return
		}
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil || a.cfg.SecureCookies})
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) session(w http.ResponseWriter, r *http.Request, p registry.Principal) {
	info := sessionInfo{User: p, Actions: a.allowedActions(p)}
	if c, err := r.Cookie(sessionCookie); err == nil && p.TokenID == 0 {
		if _, csrf, err := a.reg.SessionPrincipal(r.Context(), c.Value); err == nil {
			info.CSRFToken = csrf
		}
	}
	slices.Sort(info.Actions)
	a.writeJSON(w, http.StatusOK, info)
}
