package viewer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/kuzet/kuzet/registry"
)

// APIConfig configures the /api/v1 JSON API. Zero fields take their default.
type APIConfig struct {
	// MaxBodyBytes caps every request body; a larger one is refused with
	// 413. Default: 1 MiB.
	MaxBodyBytes int64
	// SecureCookies sets the Secure attribute on the session cookie even
	// when the request did not arrive over TLS (behind a TLS-terminating
	// proxy). Requests over TLS always get it. Default: false.
	SecureCookies bool
	// FootageBefore and FootageAfter widen an incident's [start, end] into
	// the default footage window. Defaults: 15m and 15m.
	FootageBefore time.Duration
	FootageAfter  time.Duration
	// MaxFootageSpan is the longest window a footage query may cover.
	// Default: 7 days.
	MaxFootageSpan time.Duration
	// TrustedProxies are the reverse proxies whose X-Forwarded-For is
	// believed: the client address (audit rows, login rate limit) is then
	// the rightmost address in it that is not itself a trusted proxy.
	// Default: none; the peer address is the client.
	TrustedProxies []netip.Prefix
	// Now is the clock. Default: time.Now.
	Now func() time.Time
}

func (c *APIConfig) setDefaults() {
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 1 << 20
	}
	if c.FootageBefore <= 0 {
		c.FootageBefore = 15 * time.Minute
	}
	if c.FootageAfter <= 0 {
		c.FootageAfter = 15 * time.Minute
	}
	if c.MaxFootageSpan <= 0 {
		c.MaxFootageSpan = 7 * 24 * time.Hour
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// FootageRecording is one recorded segment of a camera.
type FootageRecording struct {
	ID    string    `json:"id"`
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	Bytes int64     `json:"bytes"`
}

// FootageGap is a span of a camera without footage, and why.
type FootageGap struct {
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
	Reason string    `json:"reason"`
}

// FootageEvent is something noted on a camera's timeline (an alert, a
// detector event).
type FootageEvent struct {
	ID     string    `json:"id"`
	At     time.Time `json:"at"`
	Kind   string    `json:"kind"`
	Detail string    `json:"detail"`
}

// FootageIndex is the recorder's index of what was recorded. cmd/kuzet
// wires it to the recorder. Both return items overlapping [from, to), in
// time order.
type FootageIndex interface {
	Recordings(ctx context.Context, camera string, from, to time.Time) ([]FootageRecording, error)
	Gaps(ctx context.Context, camera string, from, to time.Time) ([]FootageGap, error)
}

// EventLog is the alerts' record of events per camera. cmd/kuzet wires it
// to alerts. It returns events in [from, to), in time order.
type EventLog interface {
	Events(ctx context.Context, camera string, from, to time.Time) ([]FootageEvent, error)
}

// APIDeps are what the API needs from the rest of Kuzet.
type APIDeps struct {
	Registry *registry.Registry // required
	Footage  FootageIndex       // required
	// Events may be nil: footage then lists no events.
	Events EventLog
	// Playback and Exports serve recorded playback and downloads, and
	// evidence exports; nil answers their routes with 503.
	Playback *Playback
	Exports  *Exporter
	// Log may be nil (discard).
	Log *slog.Logger
}

// API serves /api/v1: the registry's records, sessions and tokens, footage
// by incident and by prisoner, legal holds, and the audit log, with the
// OpenAPI document at /api/v1/openapi.json.
//
// Every route goes through one wrapper: the body is capped at MaxBodyBytes,
// the caller is authenticated (session cookie with CSRF token on
// state-changing requests, or an API token), and the route's action is
// checked against the registry's Policy; the handler then checks the action
// on the record itself (its facility, the staff involved). Errors are RFC
// 9457 problem details. It holds no mutable state of its own.
type API struct {
	cfg      APIConfig
	reg      *registry.Registry
	policy   registry.Policy
	footage  FootageIndex
	events   EventLog
	playback *Playback
	exports  *Exporter
	log      *slog.Logger
	routes   []apiRoute
}

// NewAPI validates the configuration and builds the API.
func NewAPI(cfg APIConfig, deps APIDeps) (*API, error) {
	cfg.setDefaults()
	if deps.Registry == nil {
		return nil, errors.New("api: registry required")
	}
	if deps.Footage == nil {
		return nil, errors.New("api: footage index required")
	}
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	a := &API{cfg: cfg, reg: deps.Registry, policy: deps.Registry.Policy(), footage: deps.Footage, events: deps.Events,
		playback: deps.Playback, exports: deps.Exports, log: deps.Log}
	a.routes = a.routeTable()
	return a, nil
}

// apiAccess says who may call a route before its handler looks closer.
type apiAccess int

const (
	// accessPublic: anyone (log in, the OpenAPI document).
	accessPublic apiAccess = iota
	// accessUser: any authenticated principal.
	accessUser
	// accessAction: a principal one of whose roles grants the route's
	// action; the handler checks the record's facility.
	accessAction
)

// apiRoute is one route: what it does, who may call it, and what it takes
// and gives (for the OpenAPI document).
type apiRoute struct {
	method, path string
	summary      string
	access       apiAccess
	action       registry.Action
	// body and resp are the request and success response types (nil for
	// none); status is the success status.
	body, resp reflect.Type
	status     int
	query      []apiParam
	handle     func(w http.ResponseWriter, r *http.Request, p registry.Principal)
}

// apiParam is a query parameter.
type apiParam struct {
	name, typ, desc string
	required        bool
}

func typeOf[T any]() reflect.Type { return reflect.TypeFor[T]() }

// Register mounts every API route on mux.
func (a *API) Register(mux *http.ServeMux) {
	for _, rt := range a.routes {
		mux.Handle(rt.method+" "+rt.path, a.wrap(rt))
	}
}

// Routes lists the mounted routes as "METHOD /path".
func (a *API) Routes() []string {
	out := make([]string, len(a.routes))
	for i, rt := range a.routes {
		out[i] = rt.method + " " + rt.path
	}
	return out
}

// wrap applies the body cap, authentication and the route's coarse check.
func (a *API) wrap(rt apiRoute) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, a.cfg.MaxBodyBytes)
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		for name := range r.URL.Query() {
			if !slices.ContainsFunc(rt.query, func(p apiParam) bool { return p.name == name }) {
				a.refuse(w, r, badParam(name, "unknown query parameter %q", name))
				return
			}
		}
		if r.URL.RawQuery != "" {
			if _, err := url.ParseQuery(r.URL.RawQuery); err != nil {
				a.refuse(w, r, badParam("", "malformed query string"))
				return
			}
		}
		var p registry.Principal
		if rt.access != accessPublic {
			var err error
			p, err = a.Authenticate(r)
			switch {
			case errors.Is(err, errCSRF):
				a.problem(w, r, http.StatusForbidden, "csrf", "state-changing requests of a session need its CSRF token in the "+csrfHeader+" header")
				return
			case err != nil && !errors.Is(err, registry.ErrBadCredentials):
				a.internal(w, r, "authenticate", err)
				return
			case err != nil:
				w.Header().Set("WWW-Authenticate", `Bearer realm="kuzet"`)
				a.problem(w, r, http.StatusUnauthorized, "unauthenticated", "log in, or send an API token as Authorization: Bearer")
				return
			}
		}
		if rt.access == accessAction && !a.policy.Allowed(p, rt.action) {
			a.problem(w, r, http.StatusForbidden, "forbidden", fmt.Sprintf("none of your roles grants %s", rt.action))
			return
		}
		rt.handle(w, r, p)
	})
}

// authorize checks p may take action on res, answering 403 if not. Footage
// refusals are audited.
func (a *API) authorize(w http.ResponseWriter, r *http.Request, p registry.Principal, action registry.Action, res registry.Resource) bool {
	err := a.policy.Check(p, action, res)
	if err == nil {
		return true
	}
	if action == registry.ActionFootageView || action == registry.ActionFootageExport || action == registry.ActionPrisonerFootage ||
		action == registry.ActionHoldChange {
		e := registry.EntryFor(p, a.client(r), registry.AuditFootageQuery)
		if action == registry.ActionHoldChange {
			e.Action = "hold.change"
		}
		e.Outcome, e.Detail = registry.OutcomeDenied, r.Method+" "+r.URL.Path+": "+err.Error()
		if len(res.Facilities) == 1 {
			e.Facility = res.Facilities[0]
		}
		if aerr := a.reg.Audit().Record(r.Context(), e); aerr != nil {
			a.log.Error("audit of a denial failed", "err", aerr)
		}
	}
	a.problem(w, r, http.StatusForbidden, "forbidden", strings.TrimPrefix(err.Error(), registry.ErrForbidden.Error()+": "))
	return false
}

// client is the request's client address without the port: the peer, or
// behind trusted proxies the rightmost untrusted X-Forwarded-For address.
func (a *API) client(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if !a.trusted(host) {
		return host
	}
	var hops []string
	for _, h := range r.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(h, ",")...)
	}
	for i := len(hops) - 1; i >= 0; i-- {
		hop := strings.TrimSpace(hops[i])
		ip, err := netip.ParseAddr(hop)
		if err != nil {
			return host // a malformed hop: trust nothing beyond the proxy
		}
		if !a.trusted(hop) {
			return ip.String()
		}
	}
	return host
}

func (a *API) trusted(host string) bool {
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	for _, p := range a.cfg.TrustedProxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func (a *API) actor(r *http.Request, p registry.Principal) registry.Actor {
	return registry.Actor{Principal: p, Client: a.client(r)}
}

type principalKey struct{}

// PrincipalFrom returns the principal that Require admitted for the request.
func PrincipalFrom(ctx context.Context) (registry.Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(registry.Principal)
	return p, ok
}

// Require wraps h for routes outside the API (playback, export, event
// streams): the request is authenticated as by Authenticate; resolve (when
// not nil) names the resource from the request, and the policy must allow
// action on it, else the request is answered with a problem (400 for a bad
// request, 401, 403, 404 for an unknown resource). h finds the principal
// with PrincipalFrom. Bodies are capped at MaxBodyBytes.
func (a *API) Require(action registry.Action, resolve func(r *http.Request) (registry.Resource, error), h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, a.cfg.MaxBodyBytes)
		p, err := a.Authenticate(r)
		switch {
		case errors.Is(err, errCSRF):
			a.problem(w, r, http.StatusForbidden, "csrf", "state-changing requests of a session need its CSRF token in the "+csrfHeader+" header")
			return
		case errors.Is(err, registry.ErrBadCredentials):
			w.Header().Set("WWW-Authenticate", `Bearer realm="kuzet"`)
			a.problem(w, r, http.StatusUnauthorized, "unauthenticated", "log in, or send an API token as Authorization: Bearer")
			return
		case err != nil:
			a.internal(w, r, "authenticate", err)
			return
		}
		if !a.policy.Allowed(p, action) {
			a.problem(w, r, http.StatusForbidden, "forbidden", fmt.Sprintf("none of your roles grants %s", action))
			return
		}
		if resolve != nil {
			res, err := resolve(r)
			if err != nil {
				a.refuse(w, r, err)
				return
			}
			if !a.authorize(w, r, p, action, res) {
				return
			}
		}
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	})
}

// IncidentResource resolves the {incident} path parameter (the name given)
// to the incident's resource (its facility and involved staff), for
// Require.
func (a *API) IncidentResource(param string) func(r *http.Request) (registry.Resource, error) {
	return func(r *http.Request) (registry.Resource, error) {
		id, err := pathInt(r, param)
		if err != nil {
			return registry.Resource{}, err
		}
		inc, err := a.reg.Incident(r.Context(), id)
		if err != nil {
			return registry.Resource{}, err
		}
		return inc.Resource(), nil
	}
}

// CameraResource resolves the camera path parameter (the name given) to the
// camera's facility, for Require.
func (a *API) CameraResource(param string) func(r *http.Request) (registry.Resource, error) {
	return func(r *http.Request) (registry.Resource, error) {
		id, err := pathCamera(r, param)
		if err != nil {
			return registry.Resource{}, err
		}
		c, err := a.reg.Camera(r.Context(), id)
		if err != nil {
			return registry.Resource{}, err
		}
		return registry.InFacility(c.Facility), nil
	}
}
