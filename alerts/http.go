package alerts

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kuzet/kuzet/ingest"
	"github.com/kuzet/kuzet/registry"
)

// maxBody bounds request bodies of the alert API.
const maxBody = 64 << 10

// api is the HTTP side of the alert service.
type api struct {
	cfg       Config
	log       *slog.Logger
	store     *store
	hub       *hub
	engine    *engine
	history   *history
	health    HealthSource
	storage   StorageSource
	incidents IncidentCreator
	authn     Authenticator
	client    func(*http.Request) string
	publish   func(...Event)
	metrics   *Metrics
	policy    registry.Policy
}

// Register mounts the alert API:
//
//	GET    /api/v1/alerts                       alerts in scope (state, facility, camera, kind, from, to, limit, offset)
//	GET    /api/v1/alerts/events                server-sent events of alerts in scope, resumable (Last-Event-ID)
//	GET    /api/v1/alerts/{id}                  one alert
//	POST   /api/v1/alerts/{id}/ack              acknowledge {note}
//	POST   /api/v1/alerts/{id}/resolve          resolve by hand {note}
//	POST   /api/v1/alerts/{id}/incident         open an incident from it {type, severity, description}
//	GET    /api/v1/alert-rules                  rules in scope
//	POST   /api/v1/alert-rules                  create a rule
//	PUT    /api/v1/alert-rules/{id}             replace a rule
//	DELETE /api/v1/alert-rules/{id}             delete a rule
//	GET    /api/v1/maintenance                  cameras in maintenance, in scope
//	PUT    /api/v1/maintenance/{camera}         put a camera in maintenance {note, until}
//	DELETE /api/v1/maintenance/{camera}         end it
//	GET    /api/v1/health/cameras               camera health for facility IT, in scope
//	GET    /api/v1/health/cameras/{id}/history  a camera's sampled health (the last hour)
//	GET    /api/v1/health/storage               the recorder's spool and store (all-facility scopes)
func (s *Service) Register(mux *http.ServeMux) {
	a := s.api
	h := func(pattern string, fn func(http.ResponseWriter, *http.Request, registry.Principal)) {
		mux.HandleFunc(pattern, a.wrap(fn))
	}
	h("GET /api/v1/alerts", a.list)
	mux.HandleFunc("GET /api/v1/alerts/events", a.events)
	h("GET /api/v1/alerts/{id}", a.get)
	h("POST /api/v1/alerts/{id}/ack", a.ack)
	h("POST /api/v1/alerts/{id}/resolve", a.resolve)
	h("POST /api/v1/alerts/{id}/incident", a.incident)
	h("GET /api/v1/alert-rules", a.listRules)
	h("POST /api/v1/alert-rules", a.createRule)
	h("PUT /api/v1/alert-rules/{id}", a.replaceRule)
	h("DELETE /api/v1/alert-rules/{id}", a.deleteRule)
	h("GET /api/v1/maintenance", a.listMaintenance)
	h("PUT /api/v1/maintenance/{camera}", a.setMaintenance)
	h("DELETE /api/v1/maintenance/{camera}", a.endMaintenance)
	h("GET /api/v1/health/cameras", a.cameraHealth)
	h("GET /api/v1/health/cameras/{id}/history", a.cameraHistory)
	h("GET /api/v1/health/storage", a.storageHealth)
}

// problem is an RFC 9457 problem details object, as the rest of the API
// answers.
type problem struct {
	Type     string                `json:"type"`
	Title    string                `json:"title"`
	Status   int                   `json:"status"`
	Detail   string                `json:"detail,omitempty"`
	Instance string                `json:"instance,omitempty"`
	Errors   []registry.FieldError `json:"errors,omitempty"`
}

func (a *api) problem(w http.ResponseWriter, r *http.Request, status int, code, detail string, fields ...registry.FieldError) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(problem{Type: "urn:kuzet:problem:" + code, Title: http.StatusText(status), Status: status,
		Detail: detail, Instance: r.URL.Path, Errors: fields})
}

func (a *api) writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// fail answers err with the matching problem.
func (a *api) fail(w http.ResponseWriter, r *http.Request, what string, err error) {
	var ve *registry.ValidationError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &ve):
		a.problem(w, r, http.StatusUnprocessableEntity, "validation", "the input was not accepted", ve.Fields...)
	case errors.As(err, &mbe):
		a.problem(w, r, http.StatusRequestEntityTooLarge, "too-large", fmt.Sprintf("the body exceeds %d bytes", mbe.Limit))
	case errors.Is(err, registry.ErrNotFound):
		a.problem(w, r, http.StatusNotFound, "not-found", what+": not found")
	case errors.Is(err, registry.ErrConflict):
		a.problem(w, r, http.StatusConflict, "conflict", err.Error())
	case errors.Is(err, registry.ErrForbidden):
		a.problem(w, r, http.StatusForbidden, "forbidden", err.Error())
	case errors.Is(err, registry.ErrAudit):
		a.log.Error("alerts api: audit log unavailable; action refused", "what", what, "err", err)
		a.problem(w, r, http.StatusServiceUnavailable, "audit-unavailable", "the audit log cannot be written, so the action was refused")
	case errors.Is(err, registry.ErrHold):
		a.problem(w, r, http.StatusServiceUnavailable, "hold-unavailable", "the legal hold could not be placed, so the incident was not created; try again")
	default:
		a.log.Error("alerts api: "+what, "method", r.Method, "path", r.URL.Path, "err", err)
		a.problem(w, r, http.StatusInternalServerError, "internal", what+" failed")
	}
}

func badRequest(field, format string, args ...any) error {
	return &registry.ValidationError{Fields: []registry.FieldError{{Field: field, Message: fmt.Sprintf(format, args...)}}}
}

// authenticate answers 401 itself when r is not authenticated.
func (a *api) authenticate(w http.ResponseWriter, r *http.Request) (registry.Principal, bool) {
	p, err := a.authn(r)
	if err != nil || p.UserID == 0 {
		if err != nil && !errors.Is(err, registry.ErrBadCredentials) && !strings.Contains(err.Error(), "CSRF") {
			a.log.Warn("alerts api: authentication", "err", err)
		}
		a.problem(w, r, http.StatusUnauthorized, "unauthenticated", "log in, or send a valid API token (and the CSRF token with a session)")
		return registry.Principal{}, false
	}
	return p, true
}

func (a *api) wrap(fn func(http.ResponseWriter, *http.Request, registry.Principal)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		p, ok := a.authenticate(w, r)
		if !ok {
			return
		}
		fn(w, r, p)
	}
}

func (a *api) actor(r *http.Request, p registry.Principal) registry.Actor {
	if a.client != nil {
		return registry.Actor{Principal: p, Client: a.client(r)}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return registry.Actor{Principal: p, Client: host}
}

// resourceOf is the policy resource of an alert (or rule) of facility f:
// system alerts need a scope of all facilities.
func resourceOf(f string) registry.Resource {
	if f == "" {
		return registry.Resource{AllFacilities: true}
	}
	return registry.InFacility(f)
}

// query checks that r's query has only the allowed parameters, each once.
func query(r *http.Request, allowed ...string) (map[string]string, error) {
	q := r.URL.Query()
	out := map[string]string{}
	for k, vs := range q {
		if !slices.Contains(allowed, k) {
			return nil, badRequest(k, "unknown query parameter")
		}
		if len(vs) != 1 {
			return nil, badRequest(k, "give it once")
		}
		if !utf8.ValidString(vs[0]) || len(vs[0]) > 200 {
			return nil, badRequest(k, "not accepted")
		}
		out[k] = vs[0]
	}
	return out, nil
}

func intParam(q map[string]string, name string, def, lo, hi int) (int, error) {
	v, ok := q[name]
	if !ok {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, badRequest(name, "must be an integer from %d to %d", lo, hi)
	}
	return n, nil
}

func timeParam(q map[string]string, name string) (time.Time, error) {
	v, ok := q[name]
	if !ok {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, badRequest(name, "must be an RFC 3339 time")
	}
	return t, nil
}

func pathID(r *http.Request, name string) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue(name), 10, 64)
	if err != nil || id <= 0 {
		return 0, badRequest(name, "must be a positive integer")
	}
	return id, nil
}

// decode reads one JSON object into v: application/json, no unknown
// fields, no trailing data, valid UTF-8.
func decode(r *http.Request, v any) error {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return badRequest("", "the body must be application/json")
	}
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	if !utf8.Valid(b) {
		return badRequest("", "the body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("", "malformed JSON: %s", jsonErr(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badRequest("", "trailing data after the JSON object")
	}
	return nil
}

// alertList is a page of alerts.
type alertList struct {
	Items []Alert `json:"items"`
}

func (a *api) list(w http.ResponseWriter, r *http.Request, p registry.Principal) {
	if err := a.policy.Check(p, registry.ActionAlertView, registry.Resource{}); err != nil {
		a.fail(w, r, "list alerts", err)
		return
	}
	q, err := query(r, "state", "facility", "camera", "kind", "from", "to", "limit", "offset")
	if err != nil {
		a.fail(w, r, "list alerts", err)
		return
	}
	f := Filter{State: q["state"], Facility: q["facility"], Camera: q["camera"], Kind: Kind(q["kind"])}
	switch f.State {
	case "", "active", string(StateOpen), string(StateAcknowledged), string(StateResolved):
	default:
		a.fail(w, r, "list alerts", badRequest("state", "must be open, acknowledged, resolved or active"))
		return
	}
	if f.Kind != "" && !f.Kind.Valid() {
		a.fail(w, r, "list alerts", badRequest("kind", "unknown kind"))
		return
	}
	if f.Facility != "" && !registry.ValidFacilityID(f.Facility) {
		a.fail(w, r, "list alerts", badRequest("facility", "not a facility id"))
		return
	}
	if f.Camera != "" && !registry.ValidCameraID(f.Camera) {
		a.fail(w, r, "list alerts", badRequest("camera", "not a camera id"))
		return
	}
	var errs []error
	var e error
	f.From, e = timeParam(q, "from")
	errs = append(errs, e)
	f.To, e = timeParam(q, "to")
	errs = append(errs, e)
	f.Limit, e = intParam(q, "limit", 100, 1, 1000)
	errs = append(errs, e)
	f.Offset, e = intParam(q, "offset", 0, 0, 1<<30)
	errs = append(errs, e)
	if err := errors.Join(errs...); err != nil {
		a.fail(w, r, "list alerts", err)
		return
	}
	as, err := a.store.list(r.Context(), registry.ScopeOf(p), f)
	if err != nil {
		a.fail(w, r, "list alerts", err)
		return
	}
	if as == nil {
		as = []Alert{}
	}
	a.writeJSON(w, http.StatusOK, alertList{Items: as})
}

// alertFor loads alert id and checks that p may take action on it; a
// missing alert and one outside p's scope are both not found.
func (a *api) alertFor(w http.ResponseWriter, r *http.Request, p registry.Principal, action registry.Action) (Alert, bool) {
	id, err := pathID(r, "id")
	if err != nil {
		a.fail(w, r, "alert", err)
		return Alert{}, false
	}
	al, err := a.store.get(r.Context(), id)
	if err != nil {
		a.fail(w, r, "alert", err)
		return Alert{}, false
	}
	if !a.policy.Can(p, registry.ActionAlertView, resourceOf(al.Facility)) {
		a.fail(w, r, "alert", ErrNotFound)
		return Alert{}, false
	}
	if err := a.policy.Check(p, action, resourceOf(al.Facility)); err != nil {
		a.fail(w, r, "alert", err)
		return Alert{}, false
	}
	return al, true
}

func (a *api) get(w http.ResponseWriter, r *http.Request, p registry.Principal) {
	if al, ok := a.alertFor(w, r, p, registry.ActionAlertView); ok {
		a.writeJSON(w, http.StatusOK, al)
	}
}

// noteInput is the body of acknowledge and resolve.
type noteInput struct {
	Note string `json:"note"`
}

func (in noteInput) check() error {
	var f fieldErrs
	text(&f, "note", in.Note, 0, 2000)
	if len(f) > 0 {
		return &registry.ValidationError{Fields: f}
	}
	return nil
}

func (a *api) ack(w http.ResponseWriter, r *http.Request, p registry.Principal) {
	a.noteChange(w, r, p, "acknowledge alert", a.store.acknowledge)
}

func (a *api) resolve(w http.ResponseWriter, r *http.Request, p registry.Principal) {
	a.noteChange(w, r, p, "resolve alert", a.store.resolveBy)
}

func (a *api) noteChange(w http.ResponseWriter, r *http.Request, p registry.Principal, what string,
	fn func(context.Context, registry.Actor, int64, string) (Alert, []Event, error)) {
	al, ok := a.alertFor(w, r, p, registry.ActionAlertAck)
	if !ok {
		return
	}
	var in noteInput
	if err := decode(r, &in); err != nil {
		a.fail(w, r, what, err)
		return
	}
	if err := in.check(); err != nil {
		a.fail(w, r, what, err)
		return
	}
	got, evs, err := fn(r.Context(), a.actor(r, p), al.ID, in.Note)
	if err != nil {
		a.fail(w, r, what, err)
		return
	}
	a.publish(evs...)
	a.writeJSON(w, http.StatusOK, got)
}

// incidentInput is the body of "create incident from alert": the camera,
// zone, facility and time come from the alert.
type incidentInput struct {
	Type        string `json:"type"`
	Severity    string `json:"severity"`
	Description string `json:"description"`
}

// incidentResult is the incident created and the alert now linked to it.
type incidentResult struct {
	Incident registry.Incident `json:"incident"`
	Alert    Alert             `json:"alert"`
}

func (a *api) incident(w http.ResponseWriter, r *http.Request, p registry.Principal) {
	al, ok := a.alertFor(w, r, p, registry.ActionIncidentCreate)
	if !ok {
		return
	}
	var in incidentInput
	if err := decode(r, &in); err != nil {
		a.fail(w, r, "create incident", err)
		return
	}
	if al.Facility == "" {
		a.fail(w, r, "create incident", badRequest("", "a system alert belongs to no facility; open the incident by hand"))
		return
	}
	if al.IncidentID != 0 {
		a.fail(w, r, "create incident", fmt.Errorf("alert %d already has incident %d: %w", al.ID, al.IncidentID, ErrConflict))
		return
	}
	if in.Type == "" {
		in.Type = "other"
	}
	if in.Severity == "" {
		in.Severity = "moderate"
	}
	if in.Description == "" {
		in.Description = fmt.Sprintf("From alert %d: %s. %s", al.ID, al.Title, al.Detail)
		if al.Camera != "" {
			in.Description += fmt.Sprintf(" Camera %s, since %s.", al.Camera, al.Since.UTC().Format(time.RFC3339))
		}
	}
	start := al.Since.UTC()
	ii := registry.IncidentInput{Facility: &al.Facility, Type: &in.Type, Severity: &in.Severity, Start: &start,
		Description: &in.Description}
	if al.Zone != "" {
		ii.Zones = &[]string{al.Zone}
	}
	if al.Camera != "" {
		ii.CamerasIncluded = &[]string{al.Camera}
	}
	if err := ii.Check(true, a.cfg.Now()); err != nil {
		a.fail(w, r, "create incident", err)
		return
	}
	act := a.actor(r, p)
	inc, err := a.incidents.CreateIncident(r.Context(), act, ii)
	if err != nil {
		a.fail(w, r, "create incident", err)
		return
	}
	got, evs, err := a.store.linkIncident(r.Context(), act, al.ID, inc.ID)
	if err != nil {
		a.log.Error("alerts api: incident created but not linked to its alert", "incident", inc.ID, "alert", al.ID, "err", err)
		a.fail(w, r, fmt.Sprintf("incident %d was created; linking it to the alert", inc.ID), err)
		return
	}
	a.publish(evs...)
	a.writeJSON(w, http.StatusCreated, incidentResult{Incident: inc, Alert: got})
}

// events streams the alerts in p's scope as server-sent events: one
// "alert" event per change, with the event's seq as its id. A client that
// reconnects with Last-Event-ID (or ?last_event_id=) gets every event it
// missed first; a new client gets only new events (it lists the active
// alerts with GET /api/v1/alerts). Events that could not be stored (the
// database being down) come without an id.
func (a *api) events(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	p, ok := a.authenticate(w, r)
	if !ok {
		return
	}
	if err := a.policy.Check(p, registry.ActionAlertView, registry.Resource{}); err != nil {
		a.fail(w, r, "alert events", err)
		return
	}
	q, err := query(r, "last_event_id")
	if err != nil {
		a.fail(w, r, "alert events", err)
		return
	}
	cursor := int64(-1)
	lastID := r.Header.Get("Last-Event-ID")
	if lastID == "" {
		lastID = q["last_event_id"]
	}
	if lastID != "" {
		n, err := strconv.ParseInt(lastID, 10, 64)
		if err != nil || n < 0 {
			a.fail(w, r, "alert events", badRequest("Last-Event-ID", "must be an event id"))
			return
		}
		cursor = n
	}
	filter := func(e Event) bool { return visible(p.AllFacilities, p.Facilities, e.Alert.Facility) }
	sub, last, ready := a.hub.subscribe(filter)
	defer a.hub.unsubscribe(sub)
	ctx := r.Context()
	if !ready {
		if last, err = a.store.lastSeq(ctx); err != nil {
			a.fail(w, r, "alert events", err)
			return
		}
	}
	if cursor < 0 || cursor > last {
		cursor = last
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func(e Event) error {
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		_ = rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		var buf bytes.Buffer
		if e.Seq > 0 {
			fmt.Fprintf(&buf, "id: %d\n", e.Seq)
		}
		fmt.Fprintf(&buf, "event: alert\ndata: %s\n\n", b)
		if _, err := w.Write(buf.Bytes()); err != nil {
			return err
		}
		return rc.Flush()
	}
	if _, err := io.WriteString(w, "retry: 2000\n\n"); err != nil {
		return
	}
	if err := rc.Flush(); err != nil {
		return
	}
	// The backlog up to last, from the ring or the database.
	if cursor < last {
		evs, ok := a.hub.backlog(cursor, last)
		if !ok {
			evs = nil
			for after := cursor; after < last; {
				page, err := a.store.eventsAfter(ctx, after, 500)
				if err != nil || len(page) == 0 {
					break
				}
				for _, e := range page {
					if e.Seq <= last {
						evs = append(evs, e)
					}
				}
				after = page[len(page)-1].Seq
				if len(evs) > 20000 {
					break // a client that far behind reloads the list
				}
			}
		}
		for _, e := range evs {
			if filter(e) {
				if err := send(e); err != nil {
					return
				}
			}
			cursor = e.Seq
		}
		cursor = max(cursor, last)
	}
	keep := time.NewTicker(a.cfg.SSEKeepalive)
	defer keep.Stop()
	reauth := time.NewTicker(a.cfg.SSEReauth)
	defer reauth.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-sub.done:
			return // fell behind: the client resumes from its last id
		case e := <-sub.ch:
			if e.Seq != 0 && e.Seq <= cursor {
				continue
			}
			if err := send(e); err != nil {
				return
			}
			if e.Seq != 0 {
				cursor = e.Seq
			}
		case <-keep.C:
			_ = rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.WriteString(w, ": keepalive\n\n"); err != nil {
				return
			}
			if rc.Flush() != nil {
				return
			}
		case <-reauth.C:
			// A revoked session or a changed scope ends the stream; the
			// client reconnects with what it may now see.
			np, err := a.authn(r)
			if err != nil || np.UserID != p.UserID || np.AllFacilities != p.AllFacilities ||
				!slices.Equal(np.Facilities, p.Facilities) || !a.policy.Allowed(np, registry.ActionAlertView) {
				return
			}
		}
	}
}

// ruleList is the rules in scope.
type ruleList struct {
	Items []Rule `json:"items"`
}

func (a *api) listRules(w http.ResponseWriter, r *http.Request, p registry.Principal) {
	if err := a.policy.Check(p, registry.ActionAlertView, registry.Resource{}); err != nil {
		a.fail(w, r, "list rules", err)
		return
	}
	if _, err := query(r); err != nil {
		a.fail(w, r, "list rules", err)
		return
	}
	rs, err := a.store.rules(r.Context())
	if err != nil {
		a.fail(w, r, "list rules", err)
		return
	}
	out := []Rule{}
	for _, x := range rs {
		if visible(p.AllFacilities, p.Facilities, x.Facility) {
			out = append(out, x)
		}
	}
	a.writeJSON(w, http.StatusOK, ruleList{Items: out})
}

// readRule decodes a rule body, places a camera rule in its camera's
// facility, and checks that p may change rules there.
func (a *api) readRule(w http.ResponseWriter, r *http.Request, p registry.Principal) (Rule, bool) {
	if ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || ct != "application/json" {
		a.fail(w, r, "rule", badRequest("", "the body must be application/json"))
		return Rule{}, false
	}
	b, err := io.ReadAll(r.Body)
	if err != nil {
		a.fail(w, r, "rule", err)
		return Rule{}, false
	}
	rule, err := ParseRule(b)
	if err != nil {
		a.fail(w, r, "rule", err)
		return Rule{}, false
	}
	if rule.Camera != "" {
		pl, known := a.engine.lookup(rule.Camera, a.ingestFacility(rule.Camera))
		if !known && pl.facility == "" {
			a.fail(w, r, "rule", badRequest("camera", "unknown camera"))
			return Rule{}, false
		}
		if rule.Facility == "" {
			rule.Facility = pl.facility
		} else if rule.Facility != pl.facility {
			a.fail(w, r, "rule", badRequest("facility", "the camera is in facility %s", pl.facility))
			return Rule{}, false
		}
	}
	if err := a.policy.Check(p, registry.ActionCameraWrite, resourceOf(rule.Facility)); err != nil {
		a.fail(w, r, "rule", err)
		return Rule{}, false
	}
	return rule, true
}

// ruleByID finds a stored rule p may change.
func (a *api) ruleByID(w http.ResponseWriter, r *http.Request, p registry.Principal) (Rule, bool) {
	id, err := pathID(r, "id")
	if err != nil {
		a.fail(w, r, "rule", err)
		return Rule{}, false
	}
	rs, err := a.store.rules(r.Context())
	if err != nil {
		a.fail(w, r, "rule", err)
		return Rule{}, false
	}
	for _, x := range rs {
		if x.ID == id {
			if !visible(p.AllFacilities, p.Facilities, x.Facility) {
				break
			}
			if err := a.policy.Check(p, registry.ActionCameraWrite, resourceOf(x.Facility)); err != nil {
				a.fail(w, r, "rule", err)
				return Rule{}, false
			}
			return x, true
		}
	}
	a.fail(w, r, "rule", fmt.Errorf("rule %d: %w", id, ErrNotFound))
	return Rule{}, false
}

func (a *api) createRule(w http.ResponseWriter, r *http.Request, p registry.Principal) {
	rule, ok := a.readRule(w, r, p)
	if !ok {
		return
	}
	got, err := a.store.putRule(r.Context(), a.actor(r, p), rule)
	if err != nil {
		a.fail(w, r, "create rule", err)
		return
	}
	a.engine.refresh()
	a.writeJSON(w, http.StatusCreated, got)
}

func (a *api) replaceRule(w http.ResponseWriter, r *http.Request, p registry.Principal) {
	old, ok := a.ruleByID(w, r, p)
	if !ok {
		return
	}
	rule, ok := a.readRule(w, r, p)
	if !ok {
		return
	}
	rule.ID = old.ID
	got, err := a.store.putRule(r.Context(), a.actor(r, p), rule)
	if err != nil {
		a.fail(w, r, "replace rule", err)
		return
	}
	a.engine.refresh()
	a.writeJSON(w, http.StatusOK, got)
}

func (a *api) deleteRule(w http.ResponseWriter, r *http.Request, p registry.Principal) {
	old, ok := a.ruleByID(w, r, p)
	if !ok {
		return
	}
	if err := a.store.deleteRule(r.Context(), a.actor(r, p), old); err != nil {
		a.fail(w, r, "delete rule", err)
		return
	}
	a.engine.refresh()
	w.WriteHeader(http.StatusNoContent)
}

// ingestFacility is a camera's facility as ingest knows it ("" when this
// node does not pull it).
func (a *api) ingestFacility(camera string) string {
	for _, h := range a.health.Health() {
		if h.Camera == camera {
			return h.Facility
		}
	}
	return ""
}

// maintenanceList is the cameras in maintenance.
type maintenanceList struct {
	Items []Maintenance `json:"items"`
}

func (a *api) listMaintenance(w http.ResponseWriter, r *http.Request, p registry.Principal) {
	if !a.policy.Allowed(p, registry.ActionCameraHealth) && !a.policy.Allowed(p, registry.ActionAlertView) {
		a.fail(w, r, "maintenance", fmt.Errorf("%w: no role grants camera health or alerts", registry.ErrForbidden))
		return
	}
	if _, err := query(r); err != nil {
		a.fail(w, r, "maintenance", err)
		return
	}
	ms, err := a.store.maintenance(r.Context(), a.cfg.Now())
	if err != nil {
		a.fail(w, r, "maintenance", err)
		return
	}
	out := []Maintenance{}
	for _, m := range ms {
		if visible(p.AllFacilities, p.Facilities, m.Facility) {
			out = append(out, m)
		}
	}
	a.writeJSON(w, http.StatusOK, maintenanceList{Items: out})
}

// maintenanceInput is the body of PUT /api/v1/maintenance/{camera}.
type maintenanceInput struct {
	Note  string     `json:"note"`
	Until *time.Time `json:"until"`
}

// cameraFor checks the camera path parameter and p's right to act on it.
func (a *api) cameraFor(w http.ResponseWriter, r *http.Request, p registry.Principal, action registry.Action) (place, bool) {
	id := r.PathValue("camera")
	if id == "" {
		id = r.PathValue("id")
	}
	if !registry.ValidCameraID(id) {
		a.fail(w, r, "camera", badRequest("camera", "not a camera id"))
		return place{}, false
	}
	pl, known := a.engine.lookup(id, a.ingestFacility(id))
	if (!known && pl.facility == "") || !visible(p.AllFacilities, p.Facilities, pl.facility) {
		a.fail(w, r, "camera", fmt.Errorf("camera %s: %w", id, ErrNotFound))
		return place{}, false
	}
	if err := a.policy.Check(p, action, resourceOf(pl.facility)); err != nil {
		a.fail(w, r, "camera", err)
		return place{}, false
	}
	return pl, true
}

func (a *api) setMaintenance(w http.ResponseWriter, r *http.Request, p registry.Principal) {
	pl, ok := a.cameraFor(w, r, p, registry.ActionCameraWrite)
	if !ok {
		return
	}
	var in maintenanceInput
	if err := decode(r, &in); err != nil {
		a.fail(w, r, "maintenance", err)
		return
	}
	var f fieldErrs
	text(&f, "note", in.Note, 1, 2000)
	if in.Until != nil && !in.Until.After(a.cfg.Now()) {
		f.add("until", "must be in the future")
	}
	if len(f) > 0 {
		a.fail(w, r, "maintenance", &registry.ValidationError{Fields: f})
		return
	}
	m, err := a.store.setMaintenance(r.Context(), a.actor(r, p), Maintenance{Camera: pl.camera, Facility: pl.facility,
		Until: in.Until, Note: in.Note})
	if err != nil {
		a.fail(w, r, "maintenance", err)
		return
	}
	a.engine.refresh()
	a.writeJSON(w, http.StatusOK, m)
}

func (a *api) endMaintenance(w http.ResponseWriter, r *http.Request, p registry.Principal) {
	pl, ok := a.cameraFor(w, r, p, registry.ActionCameraWrite)
	if !ok {
		return
	}
	if err := a.store.endMaintenance(r.Context(), a.actor(r, p), pl.camera, pl.facility); err != nil {
		a.fail(w, r, "maintenance", err)
		return
	}
	a.engine.refresh()
	w.WriteHeader(http.StatusNoContent)
}

// CameraHealth is one camera's health as facility IT sees it.
type CameraHealth struct {
	ID               string       `json:"id"`
	Facility         string       `json:"facility"`
	Zone             string       `json:"zone,omitempty"`
	State            ingest.State `json:"state"`
	Reason           string       `json:"reason,omitempty"`
	Detail           string       `json:"detail,omitempty"`
	Since            *time.Time   `json:"since,omitempty"`
	Transport        string       `json:"transport,omitempty"`
	Codec            string       `json:"codec,omitempty"`
	Width            int          `json:"width,omitempty"`
	Height           int          `json:"height,omitempty"`
	FPS              float64      `json:"fps"`
	Bitrate          float64      `json:"bitrate"`
	KeyframeInterval float64      `json:"keyframe_interval_seconds"`
	LastFrameAge     *float64     `json:"last_frame_age_seconds"`
	ClockOffset      *float64     `json:"clock_offset_seconds"`
	PacketsReceived  uint64       `json:"packets_received"`
	PacketsLost      uint64       `json:"packets_lost"`
	Reconnects       uint64       `json:"reconnects"`
	QueueDrops       uint64       `json:"queue_drops"`
	Maintenance      bool         `json:"maintenance"`
	LastError        *LastError   `json:"last_error,omitempty"`
	ActivityScore    *float64     `json:"activity_score,omitempty"`
	Conditions       []string     `json:"conditions"`
}

type cameraHealthList struct {
	Items []CameraHealth `json:"items"`
}

func (a *api) cameraHealth(w http.ResponseWriter, r *http.Request, p registry.Principal) {
	if err := a.policy.Check(p, registry.ActionCameraHealth, registry.Resource{}); err != nil {
		a.fail(w, r, "camera health", err)
		return
	}
	q, err := query(r, "facility")
	if err != nil {
		a.fail(w, r, "camera health", err)
		return
	}
	out := []CameraHealth{}
	for _, h := range a.health.Health() {
		pl := a.engine.placeOf(h.Camera, h.Facility)
		if !visible(p.AllFacilities, p.Facilities, pl.facility) || (q["facility"] != "" && q["facility"] != pl.facility) {
			continue
		}
		out = append(out, a.describe(h, pl))
	}
	a.writeJSON(w, http.StatusOK, cameraHealthList{Items: out})
}

func (a *api) describe(h ingest.Health, pl place) CameraHealth {
	c := CameraHealth{ID: h.Camera, Facility: pl.facility, Zone: pl.zone, State: h.State, Reason: string(h.Reason),
		Detail: h.Detail, Transport: h.Transport, Codec: string(h.VideoCodec), Width: h.Width, Height: h.Height,
		FPS: h.FPS, Bitrate: h.Bitrate, KeyframeInterval: h.KeyframeInterval.Seconds(), PacketsReceived: h.PacketsReceived,
		PacketsLost: h.PacketsLost, Reconnects: h.Reconnects, QueueDrops: h.QueueDrops, LastError: a.history.lastError(h.Camera),
		Conditions: a.engine.conditionsOf(h.Camera)}
	if !h.Since.IsZero() {
		s := h.Since.UTC()
		c.Since = &s
	}
	if !h.LastFrame.IsZero() {
		v := h.LastFrameAge.Seconds()
		c.LastFrameAge = &v
	}
	if h.ClockOffsetKnown {
		v := h.ClockOffset.Seconds()
		c.ClockOffset = &v
	}
	c.Maintenance = a.engine.inMaintenance(h.Camera)
	if s, ok := a.engine.activityScore(h.Camera); ok {
		c.ActivityScore = &s
	}
	return c
}

// cameraHistory is a camera's sampled health.
type cameraHistory struct {
	Camera          string       `json:"camera"`
	IntervalSeconds float64      `json:"interval_seconds"`
	Current         CameraHealth `json:"current"`
	Samples         []Sample     `json:"samples"`
}

func (a *api) cameraHistory(w http.ResponseWriter, r *http.Request, p registry.Principal) {
	pl, ok := a.cameraFor(w, r, p, registry.ActionCameraHealth)
	if !ok {
		return
	}
	if _, err := query(r); err != nil {
		a.fail(w, r, "camera history", err)
		return
	}
	var cur *ingest.Health
	for _, h := range a.health.Health() {
		if h.Camera == pl.camera {
			cur = &h
			break
		}
	}
	if cur == nil {
		a.fail(w, r, "camera history", fmt.Errorf("camera %s is not pulled by this node: %w", pl.camera, ErrNotFound))
		return
	}
	a.writeJSON(w, http.StatusOK, cameraHistory{Camera: pl.camera, IntervalSeconds: a.cfg.HistoryInterval.Seconds(),
		Current: a.describe(*cur, pl), Samples: a.history.get(pl.camera)})
}

// storageHealth is the recorder's state, for all-facility IT.
type storageHealth struct {
	Node                 string   `json:"node"`
	Available            bool     `json:"available"`
	SpoolUsed            int64    `json:"spool_used_bytes"`
	SpoolQuota           int64    `json:"spool_quota_bytes"`
	SpoolRatio           float64  `json:"spool_ratio"`
	UploadBacklog        int64    `json:"upload_backlog_segments"`
	UploadBacklogBytes   int64    `json:"upload_backlog_bytes"`
	RecordingLagSeconds  float64  `json:"recording_lag_seconds"`
	UploadFailures       uint64   `json:"upload_failures"`
	StoreUp              bool     `json:"store_up"`
	StoreError           string   `json:"store_error,omitempty"`
	DatabaseUp           bool     `json:"database_up"`
	DatabaseError        string   `json:"database_error,omitempty"`
	ActiveSystemAlerts   []Alert  `json:"active_alerts"`
	NodeConditionsActive []string `json:"conditions"`
}

func (a *api) storageHealth(w http.ResponseWriter, r *http.Request, p registry.Principal) {
	if err := a.policy.Check(p, registry.ActionMetricsRead, registry.Resource{AllFacilities: true}); err != nil {
		a.fail(w, r, "storage health", err)
		return
	}
	if _, err := query(r); err != nil {
		a.fail(w, r, "storage health", err)
		return
	}
	out := storageHealth{Node: a.cfg.Node, ActiveSystemAlerts: []Alert{}, NodeConditionsActive: a.engine.conditionsOf(a.cfg.Node + "/")}
	if a.storage != nil {
		h := a.storage.StorageHealth()
		out.Available = true
		out.SpoolUsed, out.SpoolQuota = h.SpoolUsed, h.SpoolQuota
		if h.SpoolQuota > 0 {
			out.SpoolRatio = float64(h.SpoolUsed) / float64(h.SpoolQuota)
		}
		out.UploadBacklog, out.UploadBacklogBytes = h.UploadBacklog, h.UploadBacklogBytes
		out.RecordingLagSeconds, out.UploadFailures = h.RecordingLag.Seconds(), h.UploadFailures
		out.StoreUp, out.StoreError, out.DatabaseUp, out.DatabaseError = h.StoreUp, h.StoreError, h.DatabaseUp, h.DatabaseError
	}
	as, err := a.store.list(r.Context(), registry.Scope{All: true}, Filter{State: "active", Limit: 1000})
	if err != nil {
		a.fail(w, r, "storage health", err)
		return
	}
	for _, x := range as {
		if x.Facility == "" {
			out.ActiveSystemAlerts = append(out.ActiveSystemAlerts, x)
		}
	}
	sort.Slice(out.ActiveSystemAlerts, func(i, j int) bool { return out.ActiveSystemAlerts[i].ID < out.ActiveSystemAlerts[j].ID })
	a.writeJSON(w, http.StatusOK, out)
}
