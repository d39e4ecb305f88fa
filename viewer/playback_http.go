package viewer

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kuzet/kuzet/registry"
)

// footageScope is what a request for recorded footage covers once it is
// authorised: the incident (nil for chosen cameras), the cameras, their
// one facility, and the window.
type footageScope struct {
	incident *registry.Incident
	cameras  []registry.Camera
	facility string
	from, to time.Time
}

func (fs *footageScope) cameraIDs() []string {
	ids := make([]string, len(fs.cameras))
	for i, c := range fs.cameras {
		ids[i] = c.ID
	}
	return ids
}

func (fs *footageScope) objects() []string {
	var o []string
	if fs.incident != nil {
		o = append(o, fmt.Sprintf("incident:%d", fs.incident.ID))
	}
	for _, c := range fs.cameras {
		o = append(o, "camera:"+c.ID)
	}
	return o
}

// footageRequest names the footage a request asks for.
type footageRequest struct {
	incident int64
	cameras  []string
	from, to time.Time // zero: the incident's footage window
	// maxCameras and maxSpan bound the request (0: the API's defaults).
	maxCameras int
	maxSpan    time.Duration
}

// Bounds of footage requests.
const (
	maxFootageCameras = 16
	maxReasonLen      = 1000
)

// footageAccess resolves and authorises a request for recorded footage:
// the incident's cameras (or those named, which must then be the
// incident's) and window (or the one given), all cameras of one facility.
// The principal needs action in that facility and must not be staff
// involved in the incident, nor in any other incident of those cameras
// that overlaps the window. A refusal is answered (problem details) and,
// past the request's syntax, audited as a denied auditAction; ok is false
// then.
func (a *API) footageAccess(w http.ResponseWriter, r *http.Request, p registry.Principal, action registry.Action, auditAction string, req footageRequest) (footageScope, bool) {
	var fs footageScope
	ctx := r.Context()
	if req.maxCameras == 0 {
		req.maxCameras = maxFootageCameras
	}
	if req.maxSpan == 0 {
		req.maxSpan = a.cfg.MaxFootageSpan
	}
	ids := req.cameras
	if req.incident > 0 {
		inc, err := a.reg.Incident(ctx, req.incident)
		if err != nil {
			a.fail(w, r, "incident", err)
			return fs, false
		}
		fs.incident = &inc
		for _, id := range ids {
			if !slices.Contains(inc.Cameras, id) {
				a.refuse(w, r, badParam("cameras", "camera %s is not one of incident %d's cameras", id, inc.ID))
				return fs, false
			}
		}
		if len(ids) == 0 {
			ids = inc.Cameras
		}
		defFrom, defTo := inc.FootageWindow(a.cfg.FootageBefore, a.cfg.FootageAfter, a.cfg.Now())
		if req.from.IsZero() {
			req.from = defFrom
		}
		if req.to.IsZero() {
			req.to = defTo
		}
	}
	switch {
	case len(ids) == 0:
		a.refuse(w, r, badParam("cameras", "name an incident or at least one camera"))
		return fs, false
	case len(ids) > req.maxCameras:
		a.refuse(w, r, badParam("cameras", "at most %d cameras at once", req.maxCameras))
		return fs, false
	case req.from.IsZero() || req.to.IsZero():
		a.refuse(w, r, badParam("from", "from and to are required without an incident"))
		return fs, false
	case !req.from.Before(req.to):
		a.refuse(w, r, badParam("to", "the window must end after it starts"))
		return fs, false
	case req.to.Sub(req.from) > req.maxSpan:
		a.refuse(w, r, badParam("to", "the window may span at most %s", req.maxSpan))
		return fs, false
	}
	fs.from, fs.to = req.from.UTC(), req.to.UTC()
	seen := map[string]bool{}
	for _, id := range ids {
		if !registry.ValidCameraID(id) {
			a.refuse(w, r, badParam("cameras", "camera ids are 1-64 letters, digits, - or _"))
			return fs, false
		}
		if seen[id] {
			a.refuse(w, r, badParam("cameras", "camera %s named twice", id))
			return fs, false
		}
		seen[id] = true
		c, err := a.reg.Camera(ctx, id)
		if err != nil {
			a.fail(w, r, "camera", err)
			return fs, false
		}
		if fs.facility == "" {
			fs.facility = c.Facility
		} else if c.Facility != fs.facility {
			a.refuse(w, r, badParam("cameras", "the cameras must all be of one facility"))
			return fs, false
		}
		fs.cameras = append(fs.cameras, c)
	}
	res := registry.InFacility(fs.facility)
	if fs.incident != nil {
		if fs.incident.Facility != fs.facility {
			a.refuse(w, r, badParam("cameras", "the cameras are not of the incident's facility"))
			return fs, false
		}
		res.InvolvedStaff = append(res.InvolvedStaff, fs.incident.InvolvedStaff...)
	}
	if a.policy.Allowed(p, action) && p.InScope(fs.facility) {
		// Staff involved in another incident on these cameras in this
		// window may not see it either, whichever way they ask.
		others, err := a.reg.ListIncidents(ctx, registry.Scope{All: true},
			registry.IncidentFilter{Facility: fs.facility, From: fs.from, To: fs.to}, registry.Page{Limit: 500})
		if err != nil {
			a.fail(w, r, "incidents", err)
			return fs, false
		}
		for _, inc := range others {
			if slices.ContainsFunc(inc.Cameras, func(c string) bool { return seen[c] }) {
				res.InvolvedStaff = append(res.InvolvedStaff, inc.InvolvedStaff...)
			}
		}
	}
	if err := a.policy.Check(p, action, res); err != nil {
		e := registry.EntryFor(p, a.client(r), auditAction)
		e.Facility, e.Objects, e.From, e.To = fs.facility, fs.objects(), fs.from, fs.to
		e.Outcome, e.Detail = registry.OutcomeDenied, r.Method+" "+r.URL.Path+": "+err.Error()
		if aerr := a.reg.Audit().Record(ctx, e); aerr != nil {
			a.log.Error("audit of a denial failed", "err", aerr)
		}
		a.problem(w, r, http.StatusForbidden, "forbidden", strings.TrimPrefix(err.Error(), registry.ErrForbidden.Error()+": "))
		return fs, false
	}
	return fs, true
}

// checkReason validates a reason given in a body.
func checkReason(reason string, required bool) error {
	if reason == "" {
		if required {
			return badParam("reason", "reason is required: say why (it is written to the audit log)")
		}
		return nil
	}
	if !utf8.ValidString(reason) || strings.ContainsRune(reason, 0) || utf8.RuneCountInString(reason) > maxReasonLen ||
		strings.TrimSpace(reason) == "" {
		return badParam("reason", "reason must be text of at most %d characters", maxReasonLen)
	}
	return nil
}

// playbackRequest is the body of POST /api/v1/playback: the browser's SDP
// offer (one receiving video section per camera, in order, and a data
// channel named "control"), what to play and why.
type playbackRequest struct {
	Offer string `json:"offer"`
	// Incident plays the incident's cameras (or those of Cameras, which
	// must be the incident's) over its footage window (or From-To).
	Incident int64 `json:"incident,omitempty"`
	// Cameras are played in the order of the offer's video sections.
	Cameras []string   `json:"cameras,omitempty"`
	From    *time.Time `json:"from,omitempty"`
	To      *time.Time `json:"to,omitempty"`
	// At is where playback starts (default From); Paused starts it paused
	// on the frame at At.
	At     *time.Time `json:"at,omitempty"`
	Paused bool       `json:"paused,omitempty"`
	Reason string     `json:"reason"`
}

func timeOr(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

func (a *API) startPlayback(w http.ResponseWriter, r *http.Request, p registry.Principal) {
	var in playbackRequest
	if err := decodeBody(r, &in); err != nil {
		a.refuse(w, r, err)
		return
	}
	if err := checkReason(in.Reason, true); err != nil {
		a.refuse(w, r, err)
		return
	}
	if in.Offer == "" {
		a.refuse(w, r, badParam("offer", "offer (an SDP offer) is required"))
		return
	}
	if in.Incident < 0 {
		a.refuse(w, r, badParam("incident", "incident must be a positive integer"))
		return
	}
	fs, ok := a.footageAccess(w, r, p, registry.ActionFootageView, registry.AuditPlayback,
		footageRequest{incident: in.Incident, cameras: in.Cameras, from: timeOr(in.From), to: timeOr(in.To)})
	if !ok {
		return
	}
	at := timeOr(in.At)
	if at.IsZero() || at.Before(fs.from) {
		at = fs.from
	}
	if !at.Before(fs.to) {
		a.refuse(w, r, badParam("at", "at must lie within the window"))
		return
	}
	if a.playback == nil {
		a.problem(w, r, http.StatusServiceUnavailable, "playback-unavailable", "recorded playback is not configured on this server")
		return
	}
	var inc int64
	if fs.incident != nil {
		inc = fs.incident.ID
	}
	out, err := a.playback.start(r.Context(), playbackStart{principal: p, client: a.client(r), reason: in.Reason, incident: inc,
		facility: fs.facility, cameras: fs.cameraIDs(), from: fs.from, to: fs.to, at: at, paused: in.Paused, offer: []byte(in.Offer)})
	var oe *whepOfferError
	switch {
	case err == nil:
		a.playback.metrics.starts.WithLabelValues("ok").Inc()
		a.playback.log.Info("playback started", "session", out.Session, "user", p.Username, "cameras", len(out.Tracks), "at", at)
		a.writeJSON(w, http.StatusCreated, out)
		return
	case errors.As(err, &oe):
		a.playback.metrics.starts.WithLabelValues("bad_request").Inc()
		a.problem(w, r, http.StatusBadRequest, "bad-offer", oe.Error())
	case errors.Is(err, errWHEPNotPlayable):
		a.playback.metrics.starts.WithLabelValues("bad_request").Inc()
		a.problem(w, r, http.StatusUnprocessableEntity, "codec-not-playable", err.Error())
	case errors.Is(err, errPlaybackFull), errors.Is(err, errPlaybackClosed), errors.Is(err, errPlaybackUnavailable):
		a.playback.metrics.starts.WithLabelValues("unavailable").Inc()
		w.Header().Set("Retry-After", "5")
		a.problem(w, r, http.StatusServiceUnavailable, "too-many-sessions", err.Error())
	case errors.Is(err, registry.ErrAudit):
		a.playback.metrics.starts.WithLabelValues("audit_failed").Inc()
		a.fail(w, r, "playback", err)
	default:
		a.playback.metrics.starts.WithLabelValues("error").Inc()
		a.internal(w, r, "playback", err)
	}
}

func (a *API) stopPlayback(w http.ResponseWriter, r *http.Request, p registry.Principal) {
	id := r.PathValue("session")
	if len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" {
		a.refuse(w, r, badParam("session", "session must be a session id"))
		return
	}
	if a.playback == nil || !a.playback.stopSession(id, p.UserID) {
		a.problem(w, r, http.StatusNotFound, "not-found", "no such playback session")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// downloadRecording answers GET /api/v1/cameras/{camera}/recording.mp4: an
// MP4 of the camera over [from, to), with Range support. Every GET is
// audited as an export with its byte range.
func (a *API) downloadRecording(w http.ResponseWriter, r *http.Request, p registry.Principal) {
	cam, err := pathCamera(r, "camera")
	if err != nil {
		a.refuse(w, r, err)
		return
	}
	q := apiQuery{r: r}
	from, to := q.time("from", true), q.time("to", true)
	reason := q.text("reason", maxReasonLen, true)
	if q.err != nil {
		a.refuse(w, r, q.err)
		return
	}
	fs, ok := a.footageAccess(w, r, p, registry.ActionFootageExport, registry.AuditExport,
		footageRequest{cameras: []string{cam}, from: from, to: to, maxSpan: maxDownloadSpan})
	if !ok {
		return
	}
	if a.playback == nil {
		a.problem(w, r, http.StatusServiceUnavailable, "playback-unavailable", "recorded footage is not served by this server")
		return
	}
	plan, err := a.playback.planDownload(r.Context(), cam, fs.from, fs.to)
	switch {
	case errors.Is(err, errNoFootage):
		a.playback.metrics.downloads.WithLabelValues("no_footage").Inc()
		a.problem(w, r, http.StatusNotFound, "no-footage", "nothing was recorded by this camera in this window")
		return
	case err != nil:
		a.playback.metrics.downloads.WithLabelValues("error").Inc()
		a.internal(w, r, "download", err)
		return
	}
	if r.Method == http.MethodGet {
		e := registry.EntryFor(p, a.client(r), registry.AuditExport)
		e.Facility, e.Objects, e.From, e.To, e.Reason = fs.facility, fs.objects(), fs.from, fs.to, reason
		e.Outcome = registry.OutcomeOK
		rg := r.Header.Get("Range")
		if rg == "" {
			rg = "whole file"
		}
		e.Detail = fmt.Sprintf("download of %d bytes, %.200s", plan.size, rg)
		if err := a.reg.Audit().Record(r.Context(), e); err != nil {
			a.fail(w, r, "download", fmt.Errorf("%w: %v", registry.ErrAudit, err))
			return
		}
	}
	a.playback.metrics.downloads.WithLabelValues("ok").Inc()
	name := fmt.Sprintf("%s_%s_%s.mp4", cam, plan.first.UTC().Format("20060102T150405Z"), plan.last.UTC().Format("20060102T150405Z"))
	h := w.Header()
	h.Set("Content-Type", "video/mp4")
	h.Set("Content-Disposition", `attachment; filename="`+name+`"`)
	h.Set("ETag", plan.etag())
	h.Set("Kuzet-Footage-From", plan.first.UTC().Format(time.RFC3339Nano))
	h.Set("Kuzet-Footage-To", plan.last.UTC().Format(time.RFC3339Nano))
	if !plan.next.IsZero() {
		// The camera's stream parameters changed: the rest is another file.
		h.Set("Kuzet-Footage-Next", plan.next.UTC().Format(time.RFC3339Nano))
	}
	pr := newPlanReader(r.Context(), plan, a.playback.objects)
	defer pr.Close()
	http.ServeContent(w, r, name, time.Time{}, pr)
}

// maxDownloadSpan is the longest window one download covers.
const maxDownloadSpan = 24 * time.Hour

// planDownload lays out the MP4 of camera over [from, to).
func (p *Playback) planDownload(ctx context.Context, camera string, from, to time.Time) (*mp4Plan, error) {
	segs, err := p.recs.RecordedSegments(ctx, camera, from, to)
	if err != nil {
		return nil, fmt.Errorf("recording index: %w", err)
	}
	return planMP4(ctx, p.objects, segs, from, to)
}
