package viewer

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/kuzet/kuzet/registry"
)

// exportRequest is the body of POST /api/v1/exports: an incident (its
// cameras and footage window, or those given), or chosen cameras and a
// range, and why.
type exportRequest struct {
	Incident int64      `json:"incident,omitempty"`
	Cameras  []string   `json:"cameras,omitempty"`
	From     *time.Time `json:"from,omitempty"`
	To       *time.Time `json:"to,omitempty"`
	Reason   string     `json:"reason"`
}

// exportList is the caller's exports, newest first.
type exportList struct {
	Items []exportView `json:"items"`
}

func (a *API) exportsConfigured(w http.ResponseWriter, r *http.Request) bool {
	if a.exports == nil {
		a.problem(w, r, http.StatusServiceUnavailable, "export-unavailable", "evidence export is not configured on this server (no signing key)")
		return false
	}
	return true
}

func (a *API) createExport(w http.ResponseWriter, r *http.Request, p registry.Principal) {
	var in exportRequest
	if err := decodeBody(r, &in); err != nil {
		a.refuse(w, r, err)
		return
	}
	if err := checkReason(in.Reason, true); err != nil {
		a.refuse(w, r, err)
		return
	}
	if in.Incident < 0 {
		a.refuse(w, r, badParam("incident", "incident must be a positive integer"))
		return
	}
	maxSpan := 24 * time.Hour
	if a.exports != nil {
		maxSpan = a.exports.cfg.MaxSpan
	}
	fs, ok := a.footageAccess(w, r, p, registry.ActionFootageExport, registry.AuditExport,
		footageRequest{incident: in.Incident, cameras: in.Cameras, from: timeOr(in.From), to: timeOr(in.To), maxSpan: maxSpan})
	if !ok || !a.exportsConfigured(w, r) {
		return
	}
	j, err := a.exports.submit(r.Context(), exportSpec{principal: p, client: a.client(r), reason: in.Reason, incident: fs.incident,
		cameras: fs.cameras, facility: fs.facility, from: fs.from, to: fs.to})
	switch {
	case errors.Is(err, errExportFull):
		w.Header().Set("Retry-After", "60")
		a.problem(w, r, http.StatusServiceUnavailable, "too-many-exports", err.Error())
		return
	case err != nil:
		a.fail(w, r, "export", err)
		return
	}
	w.Header().Set("Location", "/api/v1/exports/"+j.id)
	a.writeJSON(w, http.StatusAccepted, j.view())
}

func (a *API) listExports(w http.ResponseWriter, r *http.Request, p registry.Principal) {
	if !a.exportsConfigured(w, r) {
		return
	}
	a.writeJSON(w, http.StatusOK, exportList{Items: a.exports.list(p.UserID)})
}

// ownExport finds the caller's export named in the path; others' exports
// are not found.
func (a *API) ownExport(w http.ResponseWriter, r *http.Request, p registry.Principal) (*exportJob, bool) {
	if !a.exportsConfigured(w, r) {
		return nil, false
	}
	id := r.PathValue("export")
	if !strings.HasPrefix(id, "exp-") || len(id) != 28 {
		a.refuse(w, r, badParam("export", "export must be an export id"))
		return nil, false
	}
	j := a.exports.job(id, p.UserID)
	if j == nil {
		a.problem(w, r, http.StatusNotFound, "not-found", "no such export")
		return nil, false
	}
	return j, true
}

func (a *API) getExport(w http.ResponseWriter, r *http.Request, p registry.Principal) {
	if j, ok := a.ownExport(w, r, p); ok {
		a.writeJSON(w, http.StatusOK, j.view())
	}
}

func (a *API) deleteExport(w http.ResponseWriter, r *http.Request, p registry.Principal) {
	if j, ok := a.ownExport(w, r, p); ok {
		a.exports.remove(j)
		w.WriteHeader(http.StatusNoContent)
	}
}

// downloadExport serves a finished package (Range requests work). The
// caller must still be allowed the export's footage; each GET is audited.
func (a *API) downloadExport(w http.ResponseWriter, r *http.Request, p registry.Principal) {
	j, ok := a.ownExport(w, r, p)
	if !ok {
		return
	}
	v := j.view()
	if v.State != string(exportDone) {
		a.problem(w, r, http.StatusConflict, "export-not-ready", fmt.Sprintf("the export is %s", v.State))
		return
	}
	var inc int64
	if j.spec.incident != nil {
		inc = j.spec.incident.ID
	}
	ids := make([]string, len(j.spec.cameras))
	for i, c := range j.spec.cameras {
		ids[i] = c.ID
	}
	if _, ok := a.footageAccess(w, r, p, registry.ActionFootageExport, registry.AuditExport,
		footageRequest{incident: inc, cameras: ids, from: j.spec.from, to: j.spec.to, maxSpan: a.exports.cfg.MaxSpan}); !ok {
		return
	}
	f, err := os.Open(j.path)
	if err != nil {
		a.problem(w, r, http.StatusGone, "export-gone", "the package is no longer here")
		return
	}
	defer f.Close()
	if r.Method == http.MethodGet {
		e := registry.EntryFor(p, a.client(r), registry.AuditExport)
		e.Facility, e.Objects, e.From, e.To, e.Reason = j.spec.facility, j.spec.objects(), j.spec.from, j.spec.to, j.spec.reason
		e.Outcome = registry.OutcomeOK
		rg := r.Header.Get("Range")
		if rg == "" {
			rg = "whole file"
		}
		e.Detail = fmt.Sprintf("export %s downloaded (sha256 %s), %.200s", j.id, v.SHA256, rg)
		if err := a.reg.Audit().Record(r.Context(), e); err != nil {
			a.fail(w, r, "download", fmt.Errorf("%w: %v", registry.ErrAudit, err))
			return
		}
	}
	w.Header().Set("Content-Type", "application/zip")
	w.Header().Set("Content-Disposition", `attachment; filename="`+j.id+`.zip"`)
	w.Header().Set("ETag", `"`+v.SHA256+`"`)
	http.ServeContent(w, r, j.id+".zip", time.Time{}, f)
}

// exportPublicKey serves the public key that verifies packages (PEM).
func (a *API) exportPublicKey(w http.ResponseWriter, r *http.Request, _ registry.Principal) {
	if !a.exportsConfigured(w, r) {
		return
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	w.Header().Set("Content-Disposition", `inline; filename="kuzet-export-key.pub.pem"`)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(a.exports.PublicKeyPEM())
}
