package registry

import (
	"fmt"
	"slices"
	"strings"
)

// Role is what a user does; a user may hold several.
type Role string

// The roles. Each is scoped to the user's facilities.
const (
	// RoleOperator watches live video and alerts, and opens incidents.
	RoleOperator Role = "operator"
	// RoleInvestigator works incidents: recorded video, export, holds,
	// prisoners' whereabouts.
	RoleInvestigator Role = "investigator"
	// RoleIT runs the cameras: health, configuration, metrics; no pixels.
	RoleIT Role = "it"
	// RoleAuditor reads the audit log.
	RoleAuditor Role = "auditor"
	// RoleAdmin manages users, facilities, zones, cameras and prisoner
	// records; no footage unless also an investigator.
	RoleAdmin Role = "admin"
)

// Roles lists every role.
func Roles() []Role {
	return []Role{RoleOperator, RoleInvestigator, RoleIT, RoleAuditor, RoleAdmin}
}

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return slices.Contains(Roles(), r) }

// Action is something a principal may be allowed to do.
type Action string

// The actions every route, signalling, playback, export and SSE endpoint
// authorises against.
const (
	ActionLiveView        Action = "live.view"        // watch live video
	ActionAlertView       Action = "alert.view"       // see alerts and events
	ActionAlertAck        Action = "alert.ack"        // acknowledge / resolve alerts
	ActionFootageView     Action = "footage.view"     // recorded video: timeline, playback
	ActionFootageExport   Action = "footage.export"   // evidence export
	ActionPrisonerFootage Action = "prisoner.footage" // where a prisoner was, and its footage
	ActionHoldChange      Action = "hold.change"      // place or release a legal hold
	ActionCameraRead      Action = "camera.read"      // camera records (never credentials)
	ActionCameraWrite     Action = "camera.write"     // create / change cameras
	ActionCameraHealth    Action = "camera.health"    // camera health and stream stats
	ActionMetricsRead     Action = "metrics.read"     // operational metrics, storage, spool
	ActionFacilityRead    Action = "facility.read"    // facilities and zones
	ActionFacilityWrite   Action = "facility.write"   // create / change facilities and zones
	ActionPrisonerRead    Action = "prisoner.read"    // prisoner records and movements
	ActionPrisonerWrite   Action = "prisoner.write"   // create / change prisoners, record movements
	ActionIncidentRead    Action = "incident.read"    // incident records
	ActionIncidentCreate  Action = "incident.create"  // open an incident
	ActionIncidentWrite   Action = "incident.write"   // change an incident
	ActionUserRead        Action = "user.read"        // user records
	ActionUserWrite       Action = "user.write"       // create / change users and their tokens
	ActionAuditRead       Action = "audit.read"       // the audit log and its verification
)

// Actions lists every action.
func Actions() []Action {
	return []Action{ActionLiveView, ActionAlertView, ActionAlertAck, ActionFootageView, ActionFootageExport,
		ActionPrisonerFootage, ActionHoldChange, ActionCameraRead, ActionCameraWrite, ActionCameraHealth,
		ActionMetricsRead, ActionFacilityRead, ActionFacilityWrite, ActionPrisonerRead, ActionPrisonerWrite,
		ActionIncidentRead, ActionIncidentCreate, ActionIncidentWrite, ActionUserRead, ActionUserWrite,
		ActionAuditRead}
}

// grants is the one role → action table. Anything not listed is denied.
func grants(r Role) []Action {
	switch r {
	case RoleOperator:
		return []Action{ActionLiveView, ActionAlertView, ActionAlertAck, ActionCameraRead, ActionFacilityRead,
			ActionIncidentRead, ActionIncidentCreate}
	case RoleInvestigator:
		return []Action{ActionFootageView, ActionFootageExport, ActionPrisonerFootage, ActionHoldChange,
			ActionAlertView, ActionCameraRead, ActionFacilityRead, ActionPrisonerRead, ActionIncidentRead,
			ActionIncidentCreate, ActionIncidentWrite}
	case RoleIT:
		return []Action{ActionCameraHealth, ActionMetricsRead, ActionCameraRead, ActionCameraWrite,
			ActionFacilityRead, ActionAlertView, ActionAlertAck}
	case RoleAuditor:
		return []Action{ActionAuditRead, ActionFacilityRead, ActionUserRead}
	case RoleAdmin:
		return []Action{ActionUserRead, ActionUserWrite, ActionFacilityRead, ActionFacilityWrite,
			ActionCameraRead, ActionCameraWrite, ActionPrisonerRead, ActionPrisonerWrite}
	}
	return nil
}

// conflictAction reports whether a is denied to staff involved in the
// incident it is taken on: seeing or handing out its footage, and changing
// the incident or its hold (which would let them steer the investigation,
// or strike themselves from the involved staff).
func conflictAction(a Action) bool {
	switch a {
	case ActionFootageView, ActionFootageExport, ActionIncidentWrite, ActionHoldChange:
		return true
	}
	return false
}

// Principal is an authenticated user (through a session or an API token).
type Principal struct {
	UserID   int64  `json:"id"`
	Username string `json:"username"`
	Roles    []Role `json:"roles"`
	// Facilities is the user's scope; AllFacilities widens it to every
	// facility, present and future.
	Facilities    []string `json:"facilities"`
	AllFacilities bool     `json:"all_facilities"`
	// TokenID is the API token used, 0 for a session.
	TokenID int64 `json:"token_id,omitempty"`
}

// HasRole reports whether p holds r.
func (p Principal) HasRole(r Role) bool { return slices.Contains(p.Roles, r) }

// InScope reports whether facility is in p's scope.
func (p Principal) InScope(facility string) bool {
	return p.AllFacilities || slices.Contains(p.Facilities, facility)
}

// RoleString is the roles joined with "," as written in the audit log.
func (p Principal) RoleString() string {
	s := make([]string, len(p.Roles))
	for i, r := range p.Roles {
		s[i] = string(r)
	}
	return strings.Join(s, ",")
}

// Resource is what an action is taken on, as far as the policy cares.
type Resource struct {
	// Facilities the object belongs to: the principal must have each in
	// scope. Empty (and not AllFacilities) for a collection whose items the
	// caller filters by scope: then only the role is checked.
	Facilities []string
	// AllFacilities marks an object that spans every facility (a facility
	// being created, a user scoped to all): only principals scoped to all
	// facilities may act on it.
	AllFacilities bool
	// InvolvedStaff are users involved in the incident the resource belongs
	// to: they are denied its footage (view, export) and changing it or its
	// hold.
	InvolvedStaff []int64
}

// InFacility is the resource of an object of one facility.
func InFacility(facility string) Resource { return Resource{Facilities: []string{facility}} }

// Policy is the one authorisation policy of Kuzet: deny by default; a
// principal may take an action when one of its roles grants it, every
// facility of the resource is in its scope, and, for the footage, the record
// or the hold of an incident, it is not staff involved in that incident. The zero value is ready; it holds no state.
type Policy struct{}

// Can reports whether p may take a on res.
func (Policy) Can(p Principal, a Action, res Resource) bool {
	return Policy{}.Check(p, a, res) == nil
}

// Allowed reports whether one of p's roles grants a at all, whatever the
// resource: for showing or hiding parts of a UI and for early refusal.
func (Policy) Allowed(p Principal, a Action) bool {
	for _, r := range p.Roles {
		if slices.Contains(grants(r), a) {
			return true
		}
	}
	return false
}

// Check is Can with the reason for a denial, wrapping ErrForbidden.
func (pol Policy) Check(p Principal, a Action, res Resource) error {
	if p.UserID == 0 {
		return fmt.Errorf("%w: not authenticated", ErrForbidden)
	}
	if !pol.Allowed(p, a) {
		return fmt.Errorf("%w: no role of %s grants %s", ErrForbidden, p.Username, a)
	}
	if res.AllFacilities && !p.AllFacilities {
		return fmt.Errorf("%w: %s needs a scope of all facilities", ErrForbidden, a)
	}
	for _, f := range res.Facilities {
		if !p.InScope(f) {
			return fmt.Errorf("%w: facility %s is outside the scope of %s", ErrForbidden, f, p.Username)
		}
	}
	if conflictAction(a) && slices.Contains(res.InvolvedStaff, p.UserID) {
		return fmt.Errorf("%w: %s is involved in the incident", ErrForbidden, p.Username)
	}
	return nil
}
