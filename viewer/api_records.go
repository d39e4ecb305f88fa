package viewer

import (
	"encoding/hex"
	"errors"
	"net/http"

	"github.com/kuzet/kuzet/registry"
)

// Facilities and zones.

func (a *API) listFacilities(w http.ResponseWriter, r *http.Request, p registry.Principal) {
	q := apiQuery{r: r}
	pg := q.page()
	if q.err != nil {
		a.refuse(w, r, q.err)
		return
	}
	fs, err := a.reg.ListFacilities(r.Context(), registry.ScopeOf(p), pg)
	if err != nil {
		a.fail(w, r, "list facilities", err)
		return
	}
	a.writeJSON(w, http.StatusOK, listOf(fs, pg))
}

func (a *API) createFacility(w http.ResponseWriter, r *http.Request, p registry.Principal) {
	if !a.authorize(w, r, p, registry.ActionFacilityWrite, registry.Resource{AllFacilities: true}) {
		return
	}
	var in registry.FacilityInput
	if err := decodeBody(r, &in); err != nil {
		a.refuse(w, r, err)
		return
	}
	f, err := a.reg.CreateFacility(r.Context(), a.actor(r, p), in)
	if err != nil {
		a.fail(w, r, "create facility", err)
		return
	}
	a.writeJSON(w, http.StatusCreated, f)
}

func (a *API) getFacility(w http.ResponseWriter, r *http.Request, p registry.Principal) {
	id, err := pathCode(r, "facility")
	if err != nil {
		a.refuse(w, r, err)
		return
	}
	if !a.authorize(w, r, p, registry.ActionFacilityRead, registry.InFacility(id)) {
		return
	}
	f, err := a.reg.Facility(r.Context(), id)
	if err != nil {
		a.fail(w, r, "facility", err)
		return
	}
	a.writeJSON(w, http.StatusOK, f)
}

func (a *API) updateFacility(w http.ResponseWriter, r *http.Request, p registry.Principal) {
	id, err := pathCode(r, "facility")
	if err != nil {
		a.refuse(w, r, err)
		return
	}
	if !a.authorize(w, r, p, registry.ActionFacilityWrite, registry.InFacility(id)) {
		return
	}
	var in registry.FacilityInput
	if err := decodeBody(r, &in); err != nil {
		a.refuse(w, r, err)
		return
	}
	f, err := a.reg.UpdateFacility(r.Context(), a.actor(r, p), id, in)
	if err != nil {
		a.fail(w, r, "update facility", err)
		return
	}
	a.writeJSON(w, http.StatusOK, f)
}

func (a *API) listZones(w http.ResponseWriter, r *http.Request, p registry.Principal) {
	id, err := pathCode(r, "facility")
	if err != nil {
		a.refuse(w, r, err)
		return
	}
	if !a.authorize(w, r, p, registry.ActionFacilityRead, registry.InFacility(id)) {
		return
	}
	q := apiQuery{r: r}
	pg := q.page()
	if q.err != nil {
		a.refuse(w, r, q.err)
		return
	}
	if _, err := a.reg.Facility(r.Context(), id); err != nil {
		a.fail(w, r, "facility", err)
		return
	}
	zs, err := a.reg.ListZones(r.Context(), id, pg)
	if err != nil {
		a.fail(w, r, "list zones", err)
		return
	}
	a.writeJSON(w, http.StatusOK, listOf(zs, pg))
}

func (a *API) createZone(w http.ResponseWriter, r *http.Request, p registry.Principal) {
	id, err := pathCode(r, "facility")
	if err != nil {
		a.refuse(w, r, err)
		return
	}
	if !a.authorize(w, r, p, registry.ActionFacilityWrite, registry.InFacility(id)) {
		return
	}
	var in registry.ZoneInput
	if err := decodeBody(r, &in); err != nil {
		a.refuse(w, r, err)
		return
	}
	z, err := a.reg.CreateZone(r.Context(), a.actor(r, p), id, in)
	if err != nil {
		a.fail(w, r, "create zone", err)
		return
	}
	a.writeJSON(w, http.StatusCreated, z)
}

func (a *API) zonePath(w http.ResponseWriter, r *http.Request) (string, string, bool) {
	f, err := pathCode(r, "facility")
	if err == nil {
		var z string
		if z, err = pathCode(r, "zone"); err == nil {
			return f, z, true
		}
	}
	a.refuse(w, r, err)
	return "", "", false
}

func (a *API) getZone(w http.ResponseWriter, r *http.Request, p registry.Principal) {
	f, id, ok := a.zonePath(w, r)
	if !ok || !a.authorize(w, r, p, registry.ActionFacilityRead, registry.InFacility(f)) {
		return
	}
	z, err := a.reg.Zone(r.Context(), f, id)
	if err != nil {
		a.fail(w, r, "zone", err)
		return
	}
	a.writeJSON(w, http.StatusOK, z)
}

func (a *API) updateZone(w http.ResponseWriter, r *http.Request, p registry.Principal) {
	f, id, ok := a.zonePath(w, r)
	if !ok || !a.authorize(w, r, p, registry.ActionFacilityWrite, registry.InFacility(f)) {
		return
	}
	var in registry.ZoneInput
	if err := decodeBody(r, &in); err != nil {
		a.refuse(w, r, err)
		return
	}
	z, err := a.reg.UpdateZone(r.Context(), a.actor(r, p), f, id, in)
	if err != nil {
		a.fail(w, r, "update zone", err)
		return
	}
	a.writeJSON(w, http.StatusOK, z)
}

// Cameras.

// filterFacility reads the optional facility filter and checks it is in
// scope for action.
func (a *API) filterFacility(w http.ResponseWriter, r *http.Request, p registry.Principal, q *apiQuery, action registry.Action) (string, bool) {
	f := q.code("facility")
	if q.err != nil {
		a.refuse(w, r, q.err)
		return "", false
	}
	if f != "" && !a.authorize(w, r, p, action, registry.InFacility(f)) {
		return "", false
	}
	return f, true
}

func (a *API) listCameras(w http.ResponseWriter, r *http.Request, p registry.Principal) {
	q := apiQuery{r: r}
	f, ok := a.filterFacility(w, r, p, &q, registry.ActionCameraRead)
	if !ok {
		return
	}
	filter := registry.CameraFilter{Facility: f, Zone: q.code("zone"), Enabled: q.boolean("enabled")}
	pg := q.page()
	if q.err != nil {
		a.refuse(w, r, q.err)
		return
	}
	cs, err := a.reg.ListCameras(r.Context(), registry.ScopeOf(p), filter, pg)
	if err != nil {
		a.fail(w, r, "list cameras", err)
		return
	}
	a.writeJSON(w, http.StatusOK, listOf(cs, pg))
}

func (a *API) createCamera(w http.ResponseWriter, r *http.Request, p registry.Principal) {
	var in registry.CameraInput
	if err := decodeBody(r, &in); err != nil {
		a.refuse(w, r, err)
		return
	}
	if in.Facility != nil && !a.authorize(w, r, p, registry.ActionCameraWrite, registry.InFacility(*in.Facility)) {
		return
	}
	c, err := a.reg.CreateCamera(r.Context(), a.actor(r, p), in)
	if err != nil {
		a.fail(w, r, "create camera", err)
		return
	}
	a.writeJSON(w, http.StatusCreated, c)
}

// loadCamera reads the {camera} path parameter and checks action on it.
func (a *API) loadCamera(w http.ResponseWriter, r *http.Request, p registry.Principal, action registry.Action) (registry.Camera, bool) {
	id, err := pathCamera(r, "camera")
	if err != nil {
		a.refuse(w, r, err)
		return registry.Camera{}, false
	}
	c, err := a.reg.Camera(r.Context(), id)
	if err != nil {
		a.fail(w, r, "camera", err)
		return c, false
	}
	return c, a.authorize(w, r, p, action, registry.InFacility(c.Facility))
}

func (a *API) getCamera(w http.ResponseWriter, r *http.Request, p registry.Principal) {
	if c, ok := a.loadCamera(w, r, p, registry.ActionCameraRead); ok {
		a.writeJSON(w, http.StatusOK, c)
	}
}

func (a *API) updateCamera(w http.ResponseWriter, r *http.Request, p registry.Principal) {
	c, ok := a.loadCamera(w, r, p, registry.ActionCameraWrite)
	if !ok {
		return
	}
	var in registry.CameraInput
	if err := decodeBody(r, &in); err != nil {
		a.refuse(w, r, err)
		return
	}
	if in.Facility != nil && !a.authorize(w, r, p, registry.ActionCameraWrite, registry.InFacility(*in.Facility)) {
		return
	}
	c, err := a.reg.UpdateCamera(r.Context(), a.actor(r, p), c.ID, in)
	if err != nil {
		a.fail(w, r, "update camera", err)
		return
	}
	a.writeJSON(w, http.StatusOK, c)
}

// Prisoners.

func (a *API) listPrisoners(w http.ResponseWriter, r *http.Request, p registry.Principal) {
	q := apiQuery{r: r}
	f, ok := a.filterFacility(w, r, p, &q, registry.ActionPrisonerRead)
	if !ok {
		return
	}
	filter := registry.PrisonerFilter{Facility: f, Risk: q.oneOf("risk", registry.RiskClasses()), Zone: q.code("zone"),
		Status: q.oneOf("status", registry.PrisonerStatuses())}
	pg := q.page()
	if q.err != nil {
		a.refuse(w, r, q.err)
		return
	}
	ps, err := a.reg.ListPrisoners(r.Context(), registry.ScopeOf(p), filter, pg)
	if err != nil {
		a.fail(w, r, "list prisoners", err)
		return
	}
	a.writeJSON(w, http.StatusOK, listOf(ps, pg))
}

func (a *API) createPrisoner(w http.ResponseWriter, r *http.Request, p registry.Principal) {
	var in registry.PrisonerInput
	if err := decodeBody(r, &in); err != nil {
		a.refuse(w, r, err)
		return
	}
	if in.Facility != nil && !a.authorize(w, r, p, registry.ActionPrisonerWrite, registry.InFacility(*in.Facility)) {
		return
	}
	pr, err := a.reg.CreatePrisoner(r.Context(), a.actor(r, p), in)
	if err != nil {
		a.fail(w, r, "create prisoner", err)
		return
	}
	a.writeJSON(w, http.StatusCreated, pr)
}

func (a *API) loadPrisoner(w http.ResponseWriter, r *http.Request, p registry.Principal, action registry.Action) (registry.Prisoner, bool) {
	id, err := pathInt(r, "prisoner")
	if err != nil {
		a.refuse(w, r, err)
		return registry.Prisoner{}, false
	}
	pr, err := a.reg.Prisoner(r.Context(), id)
	if err != nil {
		a.fail(w, r, "prisoner", err)
		return pr, false
	}
	return pr, a.authorize(w, r, p, action, registry.InFacility(pr.Facility))
}

func (a *API) getPrisoner(w http.ResponseWriter, r *http.Request, p registry.Principal) {
	if pr, ok := a.loadPrisoner(w, r, p, registry.ActionPrisonerRead); ok {
		a.writeJSON(w, http.StatusOK, pr)
	}
}

func (a *API) updatePrisoner(w http.ResponseWriter, r *http.Request, p registry.Principal) {
	pr, ok := a.loadPrisoner(w, r, p, registry.ActionPrisonerWrite)
	if !ok {
		return
	}
	var in registry.PrisonerInput
	if err := decodeBody(r, &in); err != nil {
		a.refuse(w, r, err)
		return
	}
	if in.Facility != nil && !a.authorize(w, r, p, registry.ActionPrisonerWrite, registry.InFacility(*in.Facility)) {
		return
	}
	pr, err := a.reg.UpdatePrisoner(r.Context(), a.actor(r, p), pr.ID, in)
	if err != nil {
		a.fail(w, r, "update prisoner", err)
		return
	}
	a.writeJSON(w, http.StatusOK, pr)
}

func (a *API) listMovements(w http.ResponseWriter, r *http.Request, p registry.Principal) {
	pr, ok := a.loadPrisoner(w, r, p, registry.ActionPrisonerRead)
	if !ok {
		return
	}
	q := apiQuery{r: r}
	from, to := q.time("from", false), q.time("to", false)
	if q.err != nil {
		a.refuse(w, r, q.err)
		return
	}
	ms, err := a.reg.Movements(r.Context(), pr.ID, from, to)
	if err != nil {
		a.fail(w, r, "movements", err)
		return
	}
	a.writeJSON(w, http.StatusOK, listOf(ms, registry.Page{Limit: len(ms) + 1}))
}

func (a *API) recordMovement(w http.ResponseWriter, r *http.Request, p registry.Principal) {
	pr, ok := a.loadPrisoner(w, r, p, registry.ActionPrisonerWrite)
	if !ok {
		return
	}
	var in registry.MovementInput
	if err := decodeBody(r, &in); err != nil {
		a.refuse(w, r, err)
		return
	}
	if in.Facility != "" && !a.authorize(w, r, p, registry.ActionPrisonerWrite, registry.InFacility(in.Facility)) {
		return
	}
	m, err := a.reg.RecordMovement(r.Context(), a.actor(r, p), pr.ID, in)
	if err != nil {
		a.fail(w, r, "record movement", err)
		return
	}
	a.writeJSON(w, http.StatusCreated, m)
}

// Users and tokens.

func (a *API) listUsers(w http.ResponseWriter, r *http.Request, p registry.Principal) {
	q := apiQuery{r: r}
	f, ok := a.filterFacility(w, r, p, &q, registry.ActionUserRead)
	if !ok {
		return
	}
	var roles []string
	for _, role := range registry.Roles() {
		roles = append(roles, string(role))
	}
	filter := registry.UserFilter{Facility: f, Role: registry.Role(q.oneOf("role", roles))}
	pg := q.page()
	if q.err != nil {
		a.refuse(w, r, q.err)
		return
	}
	us, err := a.reg.ListUsers(r.Context(), registry.ScopeOf(p), filter, pg)
	if err != nil {
		a.fail(w, r, "list users", err)
		return
	}
	a.writeJSON(w, http.StatusOK, listOf(us, pg))
}

// targetScope is the resource of a user with the scope in would give it.
func targetScope(in registry.UserInput, u registry.User) registry.Resource {
	if in.Facilities != nil {
		u.Facilities = *in.Facilities
	}
	if in.AllFacilities != nil {
		u.AllFacilities = *in.AllFacilities
	}
	return u.Resource()
}

// decodeUser decodes and validates a user input from untrusted bytes.
func decodeUser(b []byte, create bool) (registry.UserInput, error) {
	var in registry.UserInput
	if err := decodeJSON(b, &in); err != nil {
		return in, err
	}
	return in, in.Check(create)
}

func (a *API) readUserInput(w http.ResponseWriter, r *http.Request, create bool) (registry.UserInput, bool) {
	b, err := readBody(r)
	if err == nil {
		var in registry.UserInput
		if in, err = decodeUser(b, create); err == nil {
			return in, true
		}
	}
	a.refuse(w, r, err)
	return registry.UserInput{}, false
}

func (a *API) createUser(w http.ResponseWriter, r *http.Request, p registry.Principal) {
	in, ok := a.readUserInput(w, r, true)
	if !ok {
		return
	}
	if !a.authorize(w, r, p, registry.ActionUserWrite, targetScope(in, registry.User{})) {
		return
	}
	u, err := a.reg.CreateUser(r.Context(), a.actor(r, p), in)
	if err != nil {
		a.fail(w, r, "create user", err)
		return
	}
	a.writeJSON(w, http.StatusCreated, u)
}

func (a *API) loadUser(w http.ResponseWriter, r *http.Request, p registry.Principal, action registry.Action) (registry.User, bool) {
	id, err := pathInt(r, "user")
	if err != nil {
		a.refuse(w, r, err)
		return registry.User{}, false
	}
	u, err := a.reg.User(r.Context(), id)
	if err != nil {
		a.fail(w, r, "user", err)
		return u, false
	}
	return u, a.authorize(w, r, p, action, u.Resource())
}

func (a *API) getUser(w http.ResponseWriter, r *http.Request, p registry.Principal) {
	if u, ok := a.loadUser(w, r, p, registry.ActionUserRead); ok {
		a.writeJSON(w, http.StatusOK, u)
	}
}

func (a *API) updateUser(w http.ResponseWriter, r *http.Request, p registry.Principal) {
	u, ok := a.loadUser(w, r, p, registry.ActionUserWrite)
	if !ok {
		return
	}
	in, ok := a.readUserInput(w, r, false)
	if !ok {
		return
	}
	if !a.authorize(w, r, p, registry.ActionUserWrite, targetScope(in, u)) {
		return
	}
	u, err := a.reg.UpdateUser(r.Context(), a.actor(r, p), u.ID, in)
	if err != nil {
		a.fail(w, r, "update user", err)
		return
	}
	a.writeJSON(w, http.StatusOK, u)
}

func (a *API) listTokens(w http.ResponseWriter, r *http.Request, p registry.Principal) {
	u, ok := a.loadUser(w, r, p, registry.ActionUserRead)
	if !ok {
		return
	}
	ts, err := a.reg.ListTokens(r.Context(), u.ID)
	if err != nil {
		a.fail(w, r, "list tokens", err)
		return
	}
	a.writeJSON(w, http.StatusOK, listOf(ts, registry.Page{Limit: len(ts) + 1}))
}

// newToken is an issued API token with its secret, shown once.
type newToken struct {
	registry.APIToken
	Secret string `json:"secret"`
}

func (a *API) createToken(w http.ResponseWriter, r *http.Request, p registry.Principal) {
	u, ok := a.loadUser(w, r, p, registry.ActionUserWrite)
	if !ok {
		return
	}
	var in registry.TokenInput
	if err := decodeBody(r, &in); err != nil {
		a.refuse(w, r, err)
		return
	}
	secret, t, err := a.reg.CreateToken(r.Context(), a.actor(r, p), u.ID, in)
	if err != nil {
		a.fail(w, r, "create token", err)
		return
	}
	a.writeJSON(w, http.StatusCreated, newToken{APIToken: t, Secret: secret})
}

func (a *API) revokeToken(w http.ResponseWriter, r *http.Request, p registry.Principal) {
	u, ok := a.loadUser(w, r, p, registry.ActionUserWrite)
	if !ok {
		return
	}
	id, err := pathInt(r, "token")
	if err != nil {
		a.refuse(w, r, err)
		return
	}
	if err := a.reg.RevokeToken(r.Context(), a.actor(r, p), u.ID, id); err != nil {
		a.fail(w, r, "revoke token", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// Audit.

type auditVerification struct {
	OK       bool   `json:"ok"`
	Rows     int64  `json:"rows"`
	HeadSeq  int64  `json:"head_seq"`
	HeadHash string `json:"head_hash"`
	// BadSeq and Problem name the first bad row of a broken chain.
	BadSeq  int64  `json:"bad_seq,omitempty"`
	Problem string `json:"problem,omitempty"`
}

func (a *API) listAudit(w http.ResponseWriter, r *http.Request, p registry.Principal) {
	q := apiQuery{r: r}
	f, ok := a.filterFacility(w, r, p, &q, registry.ActionAuditRead)
	if !ok {
		return
	}
	filter := registry.AuditFilter{From: q.time("from", false), To: q.time("to", false),
		Actor: q.text("actor", 200, false), Action: q.text("action", 100, false), Limit: 100}
	if n, ok := q.integer("after", 0, 1<<62); ok {
		filter.AfterSeq = n
	}
	if n, ok := q.integer("limit", 1, 1000); ok {
		filter.Limit = int(n)
	}
	if q.err != nil {
		a.refuse(w, r, q.err)
		return
	}
	switch {
	case f != "":
		filter.Facilities = []string{f}
	case p.AllFacilities:
		filter.AnyFacility = true
	default:
		filter.Facilities = p.Facilities
	}
	rows, err := a.reg.Audit().List(r.Context(), filter)
	if err != nil {
		a.fail(w, r, "audit", err)
		return
	}
	page := auditPage{Items: rows}
	if page.Items == nil {
		page.Items = []registry.AuditRow{}
	}
	if len(rows) == filter.Limit {
		next := rows[len(rows)-1].Seq
		page.NextAfter = &next
	}
	a.writeJSON(w, http.StatusOK, page)
}

// auditPage is one page of audit rows.
type auditPage struct {
	Items []registry.AuditRow `json:"items"`
	// NextAfter is the after parameter of the next page, null on the last.
	NextAfter *int64 `json:"next_after"`
}

func (a *API) verifyAudit(w http.ResponseWriter, r *http.Request, p registry.Principal) {
	res, err := registry.VerifyAudit(r.Context(), a.reg.Pool())
	out := auditVerification{OK: err == nil, Rows: res.Rows, HeadSeq: res.HeadSeq, HeadHash: hex.EncodeToString(res.HeadHash)}
	if err != nil {
		var ce *registry.ChainError
		if !errors.As(err, &ce) {
			a.fail(w, r, "verify audit", err)
			return
		}
		out.BadSeq, out.Problem = ce.Seq, ce.Problem
	}
	a.writeJSON(w, http.StatusOK, out)
}
