package viewer

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"

	"github.com/kuzet/kuzet/registry"
)

// liveProblem is an RFC 9457 problem detail; its type is
// "urn:kuzet:problem:" and a code the UI branches on, as in the API.
type liveProblem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
}

// Problem codes of the live endpoints.
const (
	liveCodeUnauthenticated = "unauthenticated"
	liveCodeForbidden       = "forbidden"
	liveCodeNotFound        = "not-found"
	liveCodeBadOffer        = "bad-offer"
	liveCodeMediaType       = "unsupported-media-type"
	liveCodeNotPlayable     = "codec-not-playable"
	liveCodeOffline         = "camera-offline"
	liveCodeFull            = "too-many-sessions"
	liveCodeAudit           = "audit-unavailable"
	liveCodeInternal        = "internal"
	liveCodeNoTrickle       = "trickle-not-supported"
)

func writeLiveProblem(w http.ResponseWriter, status int, code, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(liveProblem{Title: http.StatusText(status), Status: status, Detail: detail, Type: "urn:kuzet:problem:" + code})
}

func writeLiveJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(v)
}

// liveClient is the request's peer address without the port, for the audit
// log.
func liveClient(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// authorizeLive authenticates r and checks that its principal may watch
// camera id live. A refusal is answered (401, 403, 404) and, for a known
// principal, audited as a denied live.start; ok is false then.
func (l *Live) authorizeLive(w http.ResponseWriter, r *http.Request, transport, id string) (p registry.Principal, cam LiveCamera, ok bool) {
	p, err := l.auth.Authenticate(r)
	if err != nil {
		l.metrics.starts.WithLabelValues(transport, "unauthenticated").Inc()
		writeLiveProblem(w, http.StatusUnauthorized, liveCodeUnauthenticated, "log in to watch live video")
		return p, cam, false
	}
	cam, err = l.cams.LiveCamera(r.Context(), id)
	if errors.Is(err, ErrUnknownCamera) {
		l.metrics.starts.WithLabelValues(transport, "not_found").Inc()
		writeLiveProblem(w, http.StatusNotFound, liveCodeNotFound, "no camera "+id)
		return p, cam, false
	}
	if err != nil {
		l.log.Error("camera lookup failed", "camera", id, "err", err)
		l.metrics.starts.WithLabelValues(transport, "error").Inc()
		writeLiveProblem(w, http.StatusServiceUnavailable, liveCodeInternal, "the camera directory is unavailable")
		return p, cam, false
	}
	if err := l.policy.Check(p, registry.ActionLiveView, registry.InFacility(cam.Facility)); err != nil {
		l.metrics.starts.WithLabelValues(transport, "forbidden").Inc()
		e := registry.EntryFor(p, liveClient(r), registry.AuditLiveStart)
		e.Facility, e.Objects, e.Outcome = cam.Facility, []string{"camera:" + cam.ID}, registry.OutcomeDenied
		e.Detail = transport + ": " + err.Error()
		if aerr := l.audit.Record(r.Context(), e); aerr != nil {
			l.metrics.auditFail.Inc()
			l.log.Error("audit of a refused live view failed", "camera", id, "user", p.Username, "err", aerr)
		}
		writeLiveProblem(w, http.StatusForbidden, liveCodeForbidden, "you may not watch this camera live")
		return p, cam, false
	}
	return p, cam, true
}

// auditStart writes the live.start row of a session; false means it could
// not be written and the view must be refused (answered here with 503).
func (l *Live) auditStart(w http.ResponseWriter, r *http.Request, s *liveSession) bool {
	e := registry.EntryFor(s.principal, s.client, registry.AuditLiveStart)
	e.Facility, e.Objects, e.Outcome = s.camera.Facility, []string{"camera:" + s.camera.ID}, registry.OutcomeStarted
	e.From = s.started
	e.Detail = s.transport + " session " + s.id
	if err := l.audit.Record(r.Context(), e); err != nil {
		l.metrics.auditFail.Inc()
		l.metrics.starts.WithLabelValues(s.transport, "audit_failed").Inc()
		l.log.Error("audit of a live view failed; view refused", "camera", s.camera.ID, "user", s.principal.Username, "err", err)
		writeLiveProblem(w, http.StatusServiceUnavailable, liveCodeAudit, "the audit log cannot be written, so live view is refused; try again later")
		return false
	}
	return true
}

// listFacilities answers the facilities the caller may watch live.
func (l *Live) listFacilities(w http.ResponseWriter, r *http.Request) {
	p, err := l.auth.Authenticate(r)
	if err != nil {
		writeLiveProblem(w, http.StatusUnauthorized, liveCodeUnauthenticated, "log in to watch live video")
		return
	}
	if !l.policy.Allowed(p, registry.ActionLiveView) {
		writeLiveProblem(w, http.StatusForbidden, liveCodeForbidden, "none of your roles may watch live video")
		return
	}
	all, err := l.cams.LiveFacilities(r.Context())
	if err != nil {
		l.log.Error("facility list failed", "err", err)
		writeLiveProblem(w, http.StatusServiceUnavailable, liveCodeInternal, "the camera directory is unavailable")
		return
	}
	out := []LiveFacility{}
	for _, f := range all {
		if l.policy.Can(p, registry.ActionLiveView, registry.InFacility(f.ID)) {
			out = append(out, f)
		}
	}
	writeLiveJSON(w, map[string]any{"facilities": out})
}

// listCameras answers the cameras of ?facility= (or of every facility in
// the caller's scope) with their state and, when offline, why.
func (l *Live) listCameras(w http.ResponseWriter, r *http.Request) {
	p, err := l.auth.Authenticate(r)
	if err != nil {
		writeLiveProblem(w, http.StatusUnauthorized, liveCodeUnauthenticated, "log in to watch live video")
		return
	}
	facility := r.URL.Query().Get("facility")
	if facility != "" {
		if err := l.policy.Check(p, registry.ActionLiveView, registry.InFacility(facility)); err != nil {
			writeLiveProblem(w, http.StatusForbidden, liveCodeForbidden, "you may not watch facility "+facility+" live")
			return
		}
	} else if !l.policy.Allowed(p, registry.ActionLiveView) {
		writeLiveProblem(w, http.StatusForbidden, liveCodeForbidden, "none of your roles may watch live video")
		return
	}
	cams, err := l.cams.LiveCameras(r.Context(), facility)
	if err != nil {
		l.log.Error("camera list failed", "facility", facility, "err", err)
		writeLiveProblem(w, http.StatusServiceUnavailable, liveCodeInternal, "the camera directory is unavailable")
		return
	}
	out := []LiveCamera{}
	for _, c := range cams {
		if l.policy.Can(p, registry.ActionLiveView, registry.InFacility(c.Facility)) {
			out = append(out, c)
		}
	}
	writeLiveJSON(w, map[string]any{"cameras": out})
}

// getCamera answers one camera with its state.
func (l *Live) getCamera(w http.ResponseWriter, r *http.Request) {
	p, err := l.auth.Authenticate(r)
	if err != nil {
		writeLiveProblem(w, http.StatusUnauthorized, liveCodeUnauthenticated, "log in to watch live video")
		return
	}
	cam, err := l.cams.LiveCamera(r.Context(), r.PathValue("id"))
	if errors.Is(err, ErrUnknownCamera) {
		writeLiveProblem(w, http.StatusNotFound, liveCodeNotFound, "no such camera")
		return
	}
	if err != nil {
		l.log.Error("camera lookup failed", "err", err)
		writeLiveProblem(w, http.StatusServiceUnavailable, liveCodeInternal, "the camera directory is unavailable")
		return
	}
	if !l.policy.Can(p, registry.ActionLiveView, registry.InFacility(cam.Facility)) {
		writeLiveProblem(w, http.StatusForbidden, liveCodeForbidden, "you may not watch this camera live")
		return
	}
	writeLiveJSON(w, cam)
}
