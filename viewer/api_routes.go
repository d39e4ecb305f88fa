package viewer

import (
	"net/http"

	"github.com/kuzet/kuzet/registry"
)

// routeTable is every /api/v1 route. The OpenAPI document is generated from
// it and the authorisation matrix test walks it.
func (a *API) routeTable() []apiRoute {
	const v1 = "/api/v1"
	ok, created := http.StatusOK, http.StatusCreated
	return []apiRoute{
		// Sessions.
		{method: "POST", path: v1 + "/login", summary: "Log in with user name and password; sets the session cookie",
			access: accessPublic, body: typeOf[loginRequest](), resp: typeOf[sessionInfo](), status: ok, handle: a.login},
		{method: "POST", path: v1 + "/logout", summary: "End the session",
			access: accessUser, status: http.StatusNoContent, handle: a.logout},
		{method: "GET", path: v1 + "/session", summary: "Who is calling, the session's CSRF token and the actions the caller's roles grant",
			access: accessUser, resp: typeOf[sessionInfo](), status: ok, handle: a.session},
		{method: "GET", path: v1 + "/openapi.json", summary: "This document",
			access: accessPublic, status: ok, handle: a.openAPI},

		// Facilities and zones.
		{method: "GET", path: v1 + "/facilities", summary: "List the facilities in scope",
			access: accessAction, action: registry.ActionFacilityRead, resp: typeOf[apiList[registry.Facility]](), status: ok,
			query: pageParams(), handle: a.listFacilities},
		{method: "POST", path: v1 + "/facilities", summary: "Create a facility (needs a scope of all facilities)",
			access: accessAction, action: registry.ActionFacilityWrite, body: typeOf[registry.FacilityInput](),
			resp: typeOf[registry.Facility](), status: created, handle: a.createFacility},
		{method: "GET", path: v1 + "/facilities/{facility}", summary: "Get a facility",
			access: accessAction, action: registry.ActionFacilityRead, resp: typeOf[registry.Facility](), status: ok, handle: a.getFacility},
		{method: "PATCH", path: v1 + "/facilities/{facility}", summary: "Change a facility",
			access: accessAction, action: registry.ActionFacilityWrite, body: typeOf[registry.FacilityInput](),
			resp: typeOf[registry.Facility](), status: ok, handle: a.updateFacility},
		{method: "GET", path: v1 + "/facilities/{facility}/zones", summary: "List a facility's zones",
			access: accessAction, action: registry.ActionFacilityRead, resp: typeOf[apiList[registry.Zone]](), status: ok,
			query: pageParams(), handle: a.listZones},
		{method: "POST", path: v1 + "/facilities/{facility}/zones", summary: "Create a zone",
			access: accessAction, action: registry.ActionFacilityWrite, body: typeOf[registry.ZoneInput](),
			resp: typeOf[registry.Zone](), status: created, handle: a.createZone},
		{method: "GET", path: v1 + "/facilities/{facility}/zones/{zone}", summary: "Get a zone",
			access: accessAction, action: registry.ActionFacilityRead, resp: typeOf[registry.Zone](), status: ok, handle: a.getZone},
		{method: "PATCH", path: v1 + "/facilities/{facility}/zones/{zone}", summary: "Change a zone",
			access: accessAction, action: registry.ActionFacilityWrite, body: typeOf[registry.ZoneInput](),
			resp: typeOf[registry.Zone](), status: ok, handle: a.updateZone},

		// Cameras.
		{method: "GET", path: v1 + "/cameras", summary: "List cameras in scope (never their credentials)",
			access: accessAction, action: registry.ActionCameraRead, resp: typeOf[apiList[registry.Camera]](), status: ok,
			query: append([]apiParam{
				{name: "facility", typ: "string", desc: "only this facility (must be in scope)"},
				{name: "zone", typ: "string", desc: "only this zone"},
				{name: "enabled", typ: "boolean", desc: "only enabled (true) or disabled (false) cameras"},
			}, pageParams()...), handle: a.listCameras},
		{method: "POST", path: v1 + "/cameras", summary: "Create a camera; credentials are sealed at rest and never returned",
			access: accessAction, action: registry.ActionCameraWrite, body: typeOf[registry.CameraInput](),
			resp: typeOf[registry.Camera](), status: created, handle: a.createCamera},
		{method: "GET", path: v1 + "/cameras/{camera}", summary: "Get a camera",
			access: accessAction, action: registry.ActionCameraRead, resp: typeOf[registry.Camera](), status: ok, handle: a.getCamera},
		{method: "PATCH", path: v1 + "/cameras/{camera}", summary: "Change a camera",
			access: accessAction, action: registry.ActionCameraWrite, body: typeOf[registry.CameraInput](),
			resp: typeOf[registry.Camera](), status: ok, handle: a.updateCamera},

		// Prisoners.
		{method: "GET", path: v1 + "/prisoners", summary: "List prisoners in scope",
			access: accessAction, action: registry.ActionPrisonerRead, resp: typeOf[apiList[registry.Prisoner]](), status: ok,
			query: append([]apiParam{
				{name: "facility", typ: "string", desc: "only this facility (must be in scope)"},
				{name: "risk", typ: "string", desc: "low, medium or high"},
				{name: "zone", typ: "string", desc: "only prisoners housed in this zone"},
				{name: "status", typ: "string", desc: "in_custody, hospital, court, transferred or released"},
			}, pageParams()...), handle: a.listPrisoners},
		{method: "POST", path: v1 + "/prisoners", summary: "Register a prisoner",
			access: accessAction, action: registry.ActionPrisonerWrite, body: typeOf[registry.PrisonerInput](),
			resp: typeOf[registry.Prisoner](), status: created, handle: a.createPrisoner},
		{method: "GET", path: v1 + "/prisoners/{prisoner}", summary: "Get a prisoner",
			access: accessAction, action: registry.ActionPrisonerRead, resp: typeOf[registry.Prisoner](), status: ok, handle: a.getPrisoner},
		{method: "PATCH", path: v1 + "/prisoners/{prisoner}", summary: "Change a prisoner (a new risk class needs a new assessment)",
			access: accessAction, action: registry.ActionPrisonerWrite, body: typeOf[registry.PrisonerInput](),
			resp: typeOf[registry.Prisoner](), status: ok, handle: a.updatePrisoner},
		{method: "GET", path: v1 + "/prisoners/{prisoner}/movements", summary: "A prisoner's stays in zones",
			access: accessAction, action: registry.ActionPrisonerRead, resp: typeOf[apiList[registry.Movement]](), status: ok,
			query: []apiParam{
				{name: "from", typ: "date-time", desc: "stays ending after this time"},
				{name: "to", typ: "date-time", desc: "stays starting before this time"},
			}, handle: a.listMovements},
		{method: "POST", path: v1 + "/prisoners/{prisoner}/movements", summary: "Record a stay (without to: the prisoner's new current stay)",
			access: accessAction, action: registry.ActionPrisonerWrite, body: typeOf[registry.MovementInput](),
			resp: typeOf[registry.Movement](), status: created, handle: a.recordMovement},
		{method: "GET", path: v1 + "/prisoners/{prisoner}/footage", summary: "Where a prisoner was over a time range, and the cameras and recordings covering it (investigators; audited with the reason)",
			access: accessAction, action: registry.ActionPrisonerFootage, resp: typeOf[prisonerFootage](), status: ok,
			query: []apiParam{
				{name: "from", typ: "date-time", desc: "start of the range", required: true},
				{name: "to", typ: "date-time", desc: "end of the range", required: true},
				{name: "reason", typ: "string", desc: "why (written to the audit log)", required: true},
			}, handle: a.prisonerFootage},

		// Incidents.
		{method: "GET", path: v1 + "/incidents", summary: "List incidents in scope, newest first",
			access: accessAction, action: registry.ActionIncidentRead, resp: typeOf[apiList[registry.Incident]](), status: ok,
			query: append([]apiParam{
				{name: "facility", typ: "string", desc: "only this facility (must be in scope)"},
				{name: "status", typ: "string", desc: "open, under_investigation or closed"},
				{name: "severity", typ: "string", desc: "minor, moderate, serious or critical"},
				{name: "type", typ: "string", desc: "incident type"},
				{name: "from", typ: "date-time", desc: "incidents ending at or after this time"},
				{name: "to", typ: "date-time", desc: "incidents starting before this time"},
			}, pageParams()...), handle: a.listIncidents},
		{method: "POST", path: v1 + "/incidents", summary: "Open an incident; serious or critical ones put their cameras' footage on legal hold",
			access: accessAction, action: registry.ActionIncidentCreate, body: typeOf[registry.IncidentInput](),
			resp: typeOf[registry.Incident](), status: created, handle: a.createIncident},
		{method: "GET", path: v1 + "/incidents/{incident}", summary: "Get an incident",
			access: accessAction, action: registry.ActionIncidentRead, resp: typeOf[registry.Incident](), status: ok, handle: a.getIncident},
		{method: "PATCH", path: v1 + "/incidents/{incident}", summary: "Change an incident (not by staff involved in it); raising it to serious places the hold",
			access: accessAction, action: registry.ActionIncidentWrite, body: typeOf[registry.IncidentInput](),
			resp: typeOf[registry.Incident](), status: ok, handle: a.updateIncident},
		{method: "GET", path: v1 + "/incidents/{incident}/footage", summary: "The incident's cameras with their recordings, gaps and events in its window (not for staff involved in it)",
			access: accessAction, action: registry.ActionFootageView, resp: typeOf[incidentFootage](), status: ok,
			query: []apiParam{
				{name: "from", typ: "date-time", desc: "window start (default: incident start - 15 min)"},
				{name: "to", typ: "date-time", desc: "window end (default: incident end, or now, + 15 min)"},
				{name: "reason", typ: "string", desc: "why (written to the audit log)"},
			}, handle: a.incidentFootage},
		{method: "PUT", path: v1 + "/incidents/{incident}/hold", summary: "Put the incident's footage on legal hold",
			access: accessAction, action: registry.ActionHoldChange, body: typeOf[holdRequest](),
			resp: typeOf[registry.Incident](), status: ok, handle: a.placeHold},
		{method: "DELETE", path: v1 + "/incidents/{incident}/hold", summary: "Release the incident's legal hold (reason required)",
			access: accessAction, action: registry.ActionHoldChange, body: typeOf[holdRequest](),
			resp: typeOf[registry.Incident](), status: ok, handle: a.releaseHold},

		// Recorded footage: timeline, playback, downloads and evidence
		// export (investigators; not staff involved in an incident of
		// the cameras and window; audited).
		{method: "GET", path: v1 + "/timeline", summary: "Recordings (merged spans), gaps with reasons, events and incident markers of an incident's cameras or of chosen cameras over a window",
			access: accessAction, action: registry.ActionFootageView, resp: typeOf[timelineView](), status: ok,
			query: []apiParam{
				{name: "incident", typ: "integer", desc: "the incident: its cameras and footage window by default"},
				{name: "cameras", typ: "string", desc: "camera ids separated by commas (of one facility; the incident's when it is given)"},
				{name: "from", typ: "date-time", desc: "window start (required without incident)"},
				{name: "to", typ: "date-time", desc: "window end (required without incident)"},
				{name: "reason", typ: "string", desc: "why (written to the audit log)"},
			}, handle: a.timeline},
		{method: "POST", path: v1 + "/playback", summary: "Start a WebRTC playback session of cameras on one clock (SDP offer in, answer out; controlled over the data channel \"control\"; reason required)",
			access: accessAction, action: registry.ActionFootageView, body: typeOf[playbackRequest](), resp: typeOf[playbackStarted](),
			status: created, handle: a.startPlayback},
		{method: "DELETE", path: v1 + "/playback/{session}", summary: "End one of the caller's playback sessions",
			access: accessAction, action: registry.ActionFootageView, status: http.StatusNoContent, handle: a.stopPlayback},
		{method: "GET", path: v1 + "/cameras/{camera}/recording.mp4", summary: "MP4 of a camera over a window (remuxed; Range requests; at most 24 h; every GET audited with the reason)",
			access: accessAction, action: registry.ActionFootageExport, status: ok,
			query: []apiParam{
				{name: "from", typ: "date-time", desc: "window start", required: true},
				{name: "to", typ: "date-time", desc: "window end", required: true},
				{name: "reason", typ: "string", desc: "why (written to the audit log)", required: true},
			}, handle: a.downloadRecording},
		{method: "POST", path: v1 + "/exports", summary: "Start an evidence export of an incident or of chosen cameras and window (a signed ZIP; reason required)",
			access: accessAction, action: registry.ActionFootageExport, body: typeOf[exportRequest](), resp: typeOf[exportView](),
			status: http.StatusAccepted, handle: a.createExport},
		{method: "GET", path: v1 + "/exports", summary: "The caller's exports with their progress",
			access: accessAction, action: registry.ActionFootageExport, resp: typeOf[exportList](), status: ok, handle: a.listExports},
		{method: "GET", path: v1 + "/exports/{export}", summary: "One of the caller's exports with its progress",
			access: accessAction, action: registry.ActionFootageExport, resp: typeOf[exportView](), status: ok, handle: a.getExport},
		{method: "DELETE", path: v1 + "/exports/{export}", summary: "Cancel an export, or delete its finished package",
			access: accessAction, action: registry.ActionFootageExport, status: http.StatusNoContent, handle: a.deleteExport},
		{method: "GET", path: v1 + "/exports/{export}/package", summary: "Download a finished evidence package (ZIP; audited)",
			access: accessAction, action: registry.ActionFootageExport, status: ok, handle: a.downloadExport},
		{method: "GET", path: v1 + "/export/pubkey", summary: "The public key that verifies evidence packages (PEM), for kuzet verify --pubkey",
			access: accessPublic, status: ok, handle: a.exportPublicKey},

		// Users and tokens.
		{method: "GET", path: v1 + "/users", summary: "List users whose scope lies within the caller's",
			access: accessAction, action: registry.ActionUserRead, resp: typeOf[apiList[registry.User]](), status: ok,
			query: append([]apiParam{
				{name: "role", typ: "string", desc: "only users with this role"},
				{name: "facility", typ: "string", desc: "only users of this facility (must be in scope)"},
			}, pageParams()...), handle: a.listUsers},
		{method: "POST", path: v1 + "/users", summary: "Create a user",
			access: accessAction, action: registry.ActionUserWrite, body: typeOf[registry.UserInput](),
			resp: typeOf[registry.User](), status: created, handle: a.createUser},
		{method: "GET", path: v1 + "/users/{user}", summary: "Get a user",
			access: accessAction, action: registry.ActionUserRead, resp: typeOf[registry.User](), status: ok, handle: a.getUser},
		{method: "PATCH", path: v1 + "/users/{user}", summary: "Change a user (a new password or disabling ends its sessions)",
			access: accessAction, action: registry.ActionUserWrite, body: typeOf[registry.UserInput](),
			resp: typeOf[registry.User](), status: ok, handle: a.updateUser},
		{method: "GET", path: v1 + "/users/{user}/tokens", summary: "List a user's API tokens (never their secrets)",
			access: accessAction, action: registry.ActionUserRead, resp: typeOf[apiList[registry.APIToken]](), status: ok, handle: a.listTokens},
		{method: "POST", path: v1 + "/users/{user}/tokens", summary: "Issue an API token; its secret is in this response only",
			access: accessAction, action: registry.ActionUserWrite, body: typeOf[registry.TokenInput](),
			resp: typeOf[newToken](), status: created, handle: a.createToken},
		{method: "DELETE", path: v1 + "/users/{user}/tokens/{token}", summary: "Revoke an API token",
			access: accessAction, action: registry.ActionUserWrite, status: http.StatusNoContent, handle: a.revokeToken},

		// Audit.
		{method: "GET", path: v1 + "/audit", summary: "Audit rows in chain order (rows of facilities in scope; rows without a facility need a scope of all)",
			access: accessAction, action: registry.ActionAuditRead, resp: typeOf[auditPage](), status: ok,
			query: []apiParam{
				{name: "from", typ: "date-time", desc: "rows at or after this time"},
				{name: "to", typ: "date-time", desc: "rows before this time"},
				{name: "actor", typ: "string", desc: "only this actor"},
				{name: "action", typ: "string", desc: "only this action"},
				{name: "facility", typ: "string", desc: "only this facility (must be in scope)"},
				{name: "after", typ: "integer", desc: "rows after this sequence number (paging)"},
				{name: "limit", typ: "integer", desc: "most rows returned, 1-1000 (default 100)"},
			}, handle: a.listAudit},
		{method: "GET", path: v1 + "/audit/verify", summary: "Verify the audit hash chain; a broken chain names the first bad row",
			access: accessAction, action: registry.ActionAuditRead, resp: typeOf[auditVerification](), status: ok, handle: a.verifyAudit},
	}
}
