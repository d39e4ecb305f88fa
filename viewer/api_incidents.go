package viewer

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/kuzet/kuzet/registry"
)

func (a *API) listIncidents(w http.ResponseWriter, r *http.Request, p registry.Principal) {
	q := apiQuery{r: r}
	f, ok := a.filterFacility(w, r, p, &q, registry.ActionIncidentRead)
	if !ok {
		return
	}
	filter := registry.IncidentFilter{Facility: f, Status: q.oneOf("status", registry.IncidentStatuses()),
		Severity: q.oneOf("severity", registry.Severities()), Type: q.oneOf("type", registry.IncidentTypes()),
		From: q.time("from", false), To: q.time("to", false)}
	pg := q.page()
	if q.err != nil {
		a.refuse(w, r, q.err)
		return
	}
	is, err := a.reg.ListIncidents(r.Context(), registry.ScopeOf(p), filter, pg)
	if err != nil {
		a.fail(w, r, "list incidents", err)
		return
	}
	a.writeJSON(w, http.StatusOK, listOf(is, pg))
}

// decodeIncident decodes and validates an incident input from untrusted
// bytes.
func decodeIncident(b []byte, create bool, now time.Time) (registry.IncidentInput, error) {
	var in registry.IncidentInput
	if err := decodeJSON(b, &in); err != nil {
		return in, err
	}
	return in, in.Check(create, now)
}

func (a *API) readIncidentInput(w http.ResponseWriter, r *http.Request, create bool) (registry.IncidentInput, bool) {
	b, err := readBody(r)
	if err == nil {
		var in registry.IncidentInput
		if in, err = decodeIncident(b, create, a.cfg.Now()); err == nil {
			return in, true
		}
	}
	a.refuse(w, r, err)
	return registry.IncidentInput{}, false
}

func (a *API) createIncident(w http.ResponseWriter, r *http.Request, p registry.Principal) {
	in, ok := a.readIncidentInput(w, r, true)
	if !ok {
		return
	}
	if in.Facility != nil && !a.authorize(w, r, p, registry.ActionIncidentCreate, registry.InFacility(*in.Facility)) {
		return
	}
	inc, err := a.reg.CreateIncident(r.Context(), a.actor(r, p), in)
	if err != nil {
		a.fail(w, r, "create incident", err)
		return
	}
	a.writeJSON(w, http.StatusCreated, inc)
}

func (a *API) loadIncident(w http.ResponseWriter, r *http.Request, p registry.Principal, action registry.Action) (registry.Incident, bool) {
	id, err := pathInt(r, "incident")
	if err != nil {
		a.refuse(w, r, err)
		return registry.Incident{}, false
	}
	inc, err := a.reg.Incident(r.Context(), id)
	if err != nil {
		a.fail(w, r, "incident", err)
		return inc, false
	}
	return inc, a.authorize(w, r, p, action, inc.Resource())
}

func (a *API) getIncident(w http.ResponseWriter, r *http.Request, p registry.Principal) {
	if inc, ok := a.loadIncident(w, r, p, registry.ActionIncidentRead); ok {
		a.writeJSON(w, http.StatusOK, inc)
	}
}

func (a *API) updateIncident(w http.ResponseWriter, r *http.Request, p registry.Principal) {
	inc, ok := a.loadIncident(w, r, p, registry.ActionIncidentWrite)
	if !ok {
		return
	}
	in, ok := a.readIncidentInput(w, r, false)
	if !ok {
		return
	}
	inc, err := a.reg.UpdateIncident(r.Context(), a.actor(r, p), inc.ID, in)
	if err != nil {
		a.fail(w, r, "update incident", err)
		return
	}
	a.writeJSON(w, http.StatusOK, inc)
}

// holdRequest places or releases a legal hold.
type holdRequest struct {
	Reason string `json:"reason"`
}

func (a *API) placeHold(w http.ResponseWriter, r *http.Request, p registry.Principal) {
	a.changeHold(w, r, p, a.reg.PlaceHold)
}

func (a *API) releaseHold(w http.ResponseWriter, r *http.Request, p registry.Principal) {
	a.changeHold(w, r, p, a.reg.ReleaseHold)
}

func (a *API) changeHold(w http.ResponseWriter, r *http.Request, p registry.Principal,
	change func(context.Context, registry.Actor, int64, string) (registry.Incident, error)) {
	inc, ok := a.loadIncident(w, r, p, registry.ActionHoldChange)
	if !ok {
		return
	}
	var in holdRequest
	if err := decodeBody(r, &in); err != nil {
		a.refuse(w, r, err)
		return
	}
	inc, err := change(r.Context(), a.actor(r, p), inc.ID, in.Reason)
	if err != nil {
		a.fail(w, r, "legal hold", err)
		return
	}
	a.writeJSON(w, http.StatusOK, inc)
}

// cameraFootage is one camera's footage in a window.
type cameraFootage struct {
	Camera     registry.Camera    `json:"camera"`
	Recordings []FootageRecording `json:"recordings"`
	Gaps       []FootageGap       `json:"gaps"`
	Events     []FootageEvent     `json:"events"`
}

// incidentFootage is what was recorded of an incident.
type incidentFootage struct {
	Incident int64           `json:"incident"`
	From     time.Time       `json:"from"`
	To       time.Time       `json:"to"`
	Cameras  []cameraFootage `json:"cameras"`
}

// window reads from and to over the defaults and checks the span.
func (a *API) window(q *apiQuery, defFrom, defTo time.Time, required bool) (time.Time, time.Time) {
	from, to := q.time("from", required), q.time("to", required)
	if from.IsZero() {
		from = defFrom
	}
	if to.IsZero() {
		to = defTo
	}
	if q.err == nil && !from.Before(to) {
		q.fail(badParam("to", "the window must end after it starts"))
	}
	if q.err == nil && to.Sub(from) > a.cfg.MaxFootageSpan {
		q.fail(badParam("to", "the window may span at most %s; narrow it with from and to", a.cfg.MaxFootageSpan))
	}
	return from, to
}

// cameraFootage gathers one camera's recordings, gaps and (withEvents)
// events in [from, to).
func (a *API) cameraFootage(ctx context.Context, cam registry.Camera, from, to time.Time, withEvents bool) (cameraFootage, error) {
	cf := cameraFootage{Camera: cam, Recordings: []FootageRecording{}, Gaps: []FootageGap{}, Events: []FootageEvent{}}
	recs, err := a.footage.Recordings(ctx, cam.ID, from, to)
	if err != nil {
		return cf, fmt.Errorf("recordings of %s: %w", cam.ID, err)
	}
	gaps, err := a.footage.Gaps(ctx, cam.ID, from, to)
	if err != nil {
		return cf, fmt.Errorf("gaps of %s: %w", cam.ID, err)
	}
	cf.Recordings = append(cf.Recordings, recs...)
	cf.Gaps = append(cf.Gaps, gaps...)
	if withEvents && a.events != nil {
		evs, err := a.events.Events(ctx, cam.ID, from, to)
		if err != nil {
			return cf, fmt.Errorf("events of %s: %w", cam.ID, err)
		}
		cf.Events = append(cf.Events, evs...)
	}
	return cf, nil
}

func (a *API) footageUnavailable(w http.ResponseWriter, r *http.Request, err error) {
	a.log.Error("api: footage index", "path", r.URL.Path, "err", err)
	a.problem(w, r, http.StatusBadGateway, "footage-unavailable", "the recording index did not answer")
}

func (a *API) incidentFootage(w http.ResponseWriter, r *http.Request, p registry.Principal) {
	inc, ok := a.loadIncident(w, r, p, registry.ActionFootageView)
	if !ok {
		return
	}
	q := apiQuery{r: r}
	defFrom, defTo := inc.FootageWindow(a.cfg.FootageBefore, a.cfg.FootageAfter, a.cfg.Now())
	from, to := a.window(&q, defFrom, defTo, false)
	reason := q.text("reason", 1000, false)
	if q.err != nil {
		a.refuse(w, r, q.err)
		return
	}
	e := registry.EntryFor(p, a.client(r), registry.AuditFootageQuery)
	e.Facility, e.From, e.To, e.Reason = inc.Facility, from, to, reason
	e.Objects = []string{fmt.Sprintf("incident:%d", inc.ID)}
	for _, c := range inc.Cameras {
		e.Objects = append(e.Objects, "camera:"+c)
	}
	if err := a.reg.Audit().Record(r.Context(), e); err != nil {
		a.fail(w, r, "incident footage", err)
		return
	}
	out := incidentFootage{Incident: inc.ID, From: from, To: to, Cameras: []cameraFootage{}}
	for _, id := range inc.Cameras {
		cam, err := a.reg.Camera(r.Context(), id)
		if err != nil {
			a.fail(w, r, "camera", err)
			return
		}
		cf, err := a.cameraFootage(r.Context(), cam, from, to, true)
		if err != nil {
			a.footageUnavailable(w, r, err)
			return
		}
		out.Cameras = append(out.Cameras, cf)
	}
	a.writeJSON(w, http.StatusOK, out)
}

// prisonerStay is one stay of a prisoner within the queried range, with the
// footage of the cameras of its zone (only for facilities in the caller's
// scope).
type prisonerStay struct {
	Facility string          `json:"facility"`
	Zone     string          `json:"zone"`
	From     time.Time       `json:"from"`
	To       time.Time       `json:"to"`
	InScope  bool            `json:"in_scope"`
	Cameras  []cameraFootage `json:"cameras"`
}

// prisonerFootage is where a prisoner was over a range, and its footage.
type prisonerFootage struct {
	Prisoner int64          `json:"prisoner"`
	From     time.Time      `json:"from"`
	To       time.Time      `json:"to"`
	Stays    []prisonerStay `json:"stays"`
}

func (a *API) prisonerFootage(w http.ResponseWriter, r *http.Request, p registry.Principal) {
	pr, ok := a.loadPrisoner(w, r, p, registry.ActionPrisonerFootage)
	if !ok {
		return
	}
	q := apiQuery{r: r}
	from, to := a.window(&q, time.Time{}, time.Time{}, true)
	reason := q.text("reason", 1000, true)
	if q.err != nil {
		a.refuse(w, r, q.err)
		return
	}
	e := registry.EntryFor(p, a.client(r), registry.AuditFootageQuery)
	e.Facility, e.From, e.To, e.Reason = pr.Facility, from, to, reason
	e.Objects = []string{fmt.Sprintf("prisoner:%d", pr.ID)}
	if err := a.reg.Audit().Record(r.Context(), e); err != nil {
		a.fail(w, r, "prisoner footage", err)
		return
	}
	ms, err := a.reg.Movements(r.Context(), pr.ID, from, to)
	if err != nil {
		a.fail(w, r, "movements", err)
		return
	}
	out := prisonerFootage{Prisoner: pr.ID, From: from, To: to, Stays: []prisonerStay{}}
	for _, m := range ms {
		st := prisonerStay{Facility: m.Facility, Zone: m.Zone, From: m.From, To: to, Cameras: []cameraFootage{}}
		if m.To != nil && m.To.Before(to) {
			st.To = *m.To
		}
		if st.From.Before(from) {
			st.From = from
		}
		st.InScope = a.policy.Can(p, registry.ActionPrisonerFootage, registry.InFacility(m.Facility))
		if st.InScope {
			cams, err := a.reg.CamerasInZone(r.Context(), m.Facility, m.Zone)
			if err != nil {
				a.fail(w, r, "cameras", err)
				return
			}
			for _, cam := range cams {
				cf, err := a.cameraFootage(r.Context(), cam, st.From, st.To, false)
				if err != nil {
					a.footageUnavailable(w, r, err)
					return
				}
				st.Cameras = append(st.Cameras, cf)
			}
		}
		out.Stays = append(out.Stays, st)
	}
	a.writeJSON(w, http.StatusOK, out)
}
