package viewer

import (
	"context"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kuzet/kuzet/registry"
)

// matrixRoute is the expected authorisation of one route.
type matrixRoute struct {
	// allow are the roles allowed on a resource of their facility.
	allow []registry.Role
	// scoped: a resource of another facility is denied to everyone.
	// Unscoped routes answer the same for both.
	scoped bool
	// allScope: acting "in scope" needs a scope of all facilities (creating
	// a facility); out of scope is then a user scoped to f16.
	allScope bool
	// req builds the request on facility fac ("f16" in scope, "f27" out)
	// for a caller of role; it returns the path (with query) and body.
	req func(t *testing.T, f *apiFixture, fac string, role registry.Role, scope string) (string, any)
}

const (
	rO = registry.RoleOperator
	rI = registry.RoleInvestigator
	rT = registry.RoleIT
	rA = registry.RoleAuditor
	rD = registry.RoleAdmin
)

func allRoles() []registry.Role { return registry.Roles() }

func fixed(path string) func(*testing.T, *apiFixture, string, registry.Role, string) (string, any) {
	return func(*testing.T, *apiFixture, string, registry.Role, string) (string, any) { return path, nil }
}

// authzMatrix is the specification: every route, which roles may call it,
// and how facility scope bears on it.
func authzMatrix() map[string]matrixRoute {
	inc := func(f *apiFixture, fac string) string { return fmt.Sprintf("/api/v1/incidents/%d", f.incidents[fac]) }
	pri := func(f *apiFixture, fac string) string { return fmt.Sprintf("/api/v1/prisoners/%d", f.prisoners[fac]) }
	usr := func(f *apiFixture, fac string) string { return fmt.Sprintf("/api/v1/users/%d", f.members[fac].ID) }
	m := map[string]matrixRoute{
		"POST /api/v1/login": {allow: allRoles(), req: func(_ *testing.T, f *apiFixture, _ string, role registry.Role, scope string) (string, any) {
			name := string(role) + "-" + scope
			return "/api/v1/login", map[string]string{"username": name, "password": f.passwords[name]}
		}},
		"POST /api/v1/logout":      {allow: allRoles(), req: fixed("/api/v1/logout")},
		"GET /api/v1/session":      {allow: allRoles(), req: fixed("/api/v1/session")},
		"GET /api/v1/openapi.json": {allow: allRoles(), req: fixed("/api/v1/openapi.json")},

		// The list is narrowed to the caller's scope (checked below).
		"GET /api/v1/facilities": {allow: allRoles(), req: fixed("/api/v1/facilities")},
		"POST /api/v1/facilities": {allow: []registry.Role{rD}, allScope: true, req: func(_ *testing.T, f *apiFixture, _ string, _ registry.Role, _ string) (string, any) {
			return "/api/v1/facilities", map[string]any{"id": fmt.Sprintf("new-%d", f.next()), "name": "New facility"}
		}},
		"GET /api/v1/facilities/{facility}": {allow: allRoles(), scoped: true, req: func(_ *testing.T, _ *apiFixture, fac string, _ registry.Role, _ string) (string, any) {
			return "/api/v1/facilities/" + fac, nil
		}},
		"PATCH /api/v1/facilities/{facility}": {allow: []registry.Role{rD}, scoped: true, req: func(_ *testing.T, f *apiFixture, fac string, _ registry.Role, _ string) (string, any) {
			return "/api/v1/facilities/" + fac, map[string]any{"name": fmt.Sprintf("Facility %s (%d)", fac, f.next())}
		}},
		"GET /api/v1/facilities/{facility}/zones": {allow: allRoles(), scoped: true, req: func(_ *testing.T, _ *apiFixture, fac string, _ registry.Role, _ string) (string, any) {
			return "/api/v1/facilities/" + fac + "/zones", nil
		}},
		"POST /api/v1/facilities/{facility}/zones": {allow: []registry.Role{rD}, scoped: true, req: func(_ *testing.T, f *apiFixture, fac string, _ registry.Role, _ string) (string, any) {
			return "/api/v1/facilities/" + fac + "/zones", map[string]any{"id": fmt.Sprintf("z%d", f.next()), "name": "Zone", "kind": "corridor"}
		}},
		"GET /api/v1/facilities/{facility}/zones/{zone}": {allow: allRoles(), scoped: true, req: func(_ *testing.T, _ *apiFixture, fac string, _ registry.Role, _ string) (string, any) {
			return "/api/v1/facilities/" + fac + "/zones/yard", nil
		}},
		"PATCH /api/v1/facilities/{facility}/zones/{zone}": {allow: []registry.Role{rD}, scoped: true, req: func(_ *testing.T, f *apiFixture, fac string, _ registry.Role, _ string) (string, any) {
			return "/api/v1/facilities/" + fac + "/zones/yard", map[string]any{"name": fmt.Sprintf("Yard %d", f.next())}
		}},

		"GET /api/v1/cameras": {allow: []registry.Role{rO, rI, rT, rD}, scoped: true, req: func(_ *testing.T, _ *apiFixture, fac string, _ registry.Role, _ string) (string, any) {
			return "/api/v1/cameras?facility=" + fac, nil
		}},
		"POST /api/v1/cameras": {allow: []registry.Role{rT, rD}, scoped: true, req: func(_ *testing.T, f *apiFixture, fac string, _ registry.Role, _ string) (string, any) {
			return "/api/v1/cameras", map[string]any{"id": fmt.Sprintf("%s-m%d", fac, f.next()), "facility": fac, "zone": "yard",
				"url": "rtsp://10.1.1.1/stream", "credentials": map[string]string{"username": "u", "password": "p"}}
		}},
		"GET /api/v1/cameras/{camera}": {allow: []registry.Role{rO, rI, rT, rD}, scoped: true, req: func(_ *testing.T, f *apiFixture, fac string, _ registry.Role, _ string) (string, any) {
			return "/api/v1/cameras/" + f.cameras[fac], nil
		}},
		"PATCH /api/v1/cameras/{camera}": {allow: []registry.Role{rT, rD}, scoped: true, req: func(_ *testing.T, f *apiFixture, fac string, _ registry.Role, _ string) (string, any) {
			return "/api/v1/cameras/" + f.cameras[fac], map[string]any{"name": fmt.Sprintf("Camera %d", f.next()), "retention_days": 40}
		}},

		"GET /api/v1/prisoners": {allow: []registry.Role{rI, rD}, scoped: true, req: func(_ *testing.T, _ *apiFixture, fac string, _ registry.Role, _ string) (string, any) {
			return "/api/v1/prisoners?risk=medium&facility=" + fac, nil
		}},
		"POST /api/v1/prisoners": {allow: []registry.Role{rD}, scoped: true, req: func(_ *testing.T, f *apiFixture, fac string, _ registry.Role, _ string) (string, any) {
			return "/api/v1/prisoners", map[string]any{"registration_number": fmt.Sprintf("M-%d", f.next()), "full_name": "New Prisoner",
				"risk": "low", "risk_assessed_on": "2025-01-05", "risk_assessor": "Board", "facility": fac, "housing_zone": "block-a"}
		}},
		"GET /api/v1/prisoners/{prisoner}": {allow: []registry.Role{rI, rD}, scoped: true, req: func(_ *testing.T, f *apiFixture, fac string, _ registry.Role, _ string) (string, any) {
			return pri(f, fac), nil
		}},
		"PATCH /api/v1/prisoners/{prisoner}": {allow: []registry.Role{rD}, scoped: true, req: func(_ *testing.T, f *apiFixture, fac string, _ registry.Role, _ string) (string, any) {
			return pri(f, fac), map[string]any{"full_name": fmt.Sprintf("Renamed %d", f.next())}
		}},
		"GET /api/v1/prisoners/{prisoner}/movements": {allow: []registry.Role{rI, rD}, scoped: true, req: func(_ *testing.T, f *apiFixture, fac string, _ registry.Role, _ string) (string, any) {
			return pri(f, fac) + "/movements", nil
		}},
		"POST /api/v1/prisoners/{prisoner}/movements": {allow: []registry.Role{rD}, scoped: true, req: func(_ *testing.T, f *apiFixture, fac string, _ registry.Role, _ string) (string, any) {
			return pri(f, fac) + "/movements", map[string]any{"zone": "yard", "from": f.t0.Add(10*time.Hour + time.Duration(f.next())*time.Second)}
		}},
		"GET /api/v1/prisoners/{prisoner}/footage": {allow: []registry.Role{rI}, scoped: true, req: func(_ *testing.T, f *apiFixture, fac string, _ registry.Role, _ string) (string, any) {
			q := url.Values{"from": {f.t0.Format(time.RFC3339)}, "to": {f.t0.Add(12 * time.Hour).Format(time.RFC3339)}, "reason": {"matrix"}}
			return pri(f, fac) + "/footage?" + q.Encode(), nil
		}},

		"GET /api/v1/incidents": {allow: []registry.Role{rO, rI}, scoped: true, req: func(_ *testing.T, _ *apiFixture, fac string, _ registry.Role, _ string) (string, any) {
			return "/api/v1/incidents?status=open&facility=" + fac, nil
		}},
		"POST /api/v1/incidents": {allow: []registry.Role{rO, rI}, scoped: true, req: func(_ *testing.T, f *apiFixture, fac string, _ registry.Role, _ string) (string, any) {
			return "/api/v1/incidents", map[string]any{"facility": fac, "type": "other", "severity": "minor",
				"start": f.t0.Add(time.Hour), "description": "matrix", "zones": []string{"block-a"}}
		}},
		"GET /api/v1/incidents/{incident}": {allow: []registry.Role{rO, rI}, scoped: true, req: func(_ *testing.T, f *apiFixture, fac string, _ registry.Role, _ string) (string, any) {
			return inc(f, fac), nil
		}},
		"PATCH /api/v1/incidents/{incident}": {allow: []registry.Role{rI}, scoped: true, req: func(_ *testing.T, f *apiFixture, fac string, _ registry.Role, _ string) (string, any) {
			return inc(f, fac), map[string]any{"description": fmt.Sprintf("edited %d", f.next()), "status": "under_investigation"}
		}},
		"GET /api/v1/incidents/{incident}/footage": {allow: []registry.Role{rI}, scoped: true, req: func(_ *testing.T, f *apiFixture, fac string, _ registry.Role, _ string) (string, any) {
			return inc(f, fac) + "/footage?reason=matrix", nil
		}},
		"PUT /api/v1/incidents/{incident}/hold": {allow: []registry.Role{rI}, scoped: true, req: func(_ *testing.T, f *apiFixture, fac string, _ registry.Role, _ string) (string, any) {
			return inc(f, fac) + "/hold", map[string]any{"reason": "matrix hold"}
		}},
		"DELETE /api/v1/incidents/{incident}/hold": {allow: []registry.Role{rI}, scoped: true, req: func(_ *testing.T, f *apiFixture, fac string, _ registry.Role, _ string) (string, any) {
			return inc(f, fac) + "/hold", map[string]any{"reason": "matrix release"}
		}},

		"GET /api/v1/users": {allow: []registry.Role{rA, rD}, scoped: true, req: func(_ *testing.T, _ *apiFixture, fac string, _ registry.Role, _ string) (string, any) {
			return "/api/v1/users?facility=" + fac, nil
		}},
		"POST /api/v1/users": {allow: []registry.Role{rD}, scoped: true, req: func(_ *testing.T, f *apiFixture, fac string, _ registry.Role, _ string) (string, any) {
			return "/api/v1/users", map[string]any{"username": fmt.Sprintf("new-%d", f.next()), "roles": []string{"operator"},
				"facilities": []string{fac}, "password": "a long new password"}
		}},
		"GET /api/v1/users/{user}": {allow: []registry.Role{rA, rD}, scoped: true, req: func(_ *testing.T, f *apiFixture, fac string, _ registry.Role, _ string) (string, any) {
			return usr(f, fac), nil
		}},
		"PATCH /api/v1/users/{user}": {allow: []registry.Role{rD}, scoped: true, req: func(_ *testing.T, f *apiFixture, fac string, _ registry.Role, _ string) (string, any) {
			return usr(f, fac), map[string]any{"display_name": fmt.Sprintf("Member %d", f.next())}
		}},
		"GET /api/v1/users/{user}/tokens": {allow: []registry.Role{rA, rD}, scoped: true, req: func(_ *testing.T, f *apiFixture, fac string, _ registry.Role, _ string) (string, any) {
			return usr(f, fac) + "/tokens", nil
		}},
		"POST /api/v1/users/{user}/tokens": {allow: []registry.Role{rD}, scoped: true, req: func(_ *testing.T, f *apiFixture, fac string, _ registry.Role, _ string) (string, any) {
			return usr(f, fac) + "/tokens", map[string]any{"name": fmt.Sprintf("token %d", f.next())}
		}},
		"DELETE /api/v1/users/{user}/tokens/{token}": {allow: []registry.Role{rD}, scoped: true, req: func(t *testing.T, f *apiFixture, fac string, _ registry.Role, _ string) (string, any) {
			_, tok, err := f.reg.CreateToken(context.Background(), apiSys, f.members[fac].ID, registry.TokenInput{Name: "to revoke"})
			if err != nil {
				t.Fatal(err)
			}
			return fmt.Sprintf("%s/tokens/%d", usr(f, fac), tok.ID), nil
		}},

		"GET /api/v1/audit": {allow: []registry.Role{rA}, scoped: true, req: func(_ *testing.T, _ *apiFixture, fac string, _ registry.Role, _ string) (string, any) {
			return "/api/v1/audit?limit=3&facility=" + fac, nil
		}},
		"GET /api/v1/audit/verify": {allow: []registry.Role{rA}, req: fixed("/api/v1/audit/verify")},
	}
	maps.Copy(m, recordedMatrix())
	return m
}

// TestAPIAuthorizationMatrix calls every mounted route as every role, on a
// record of the caller's facility and on one of another facility, and checks
// the answer against authzMatrix; a route without a row fails the test.
func TestAPIAuthorizationMatrix(t *testing.T) {
	t.Parallel()
	f := newAPIFixture(t)
	matrix := authzMatrix()
	routes := map[string]apiRoute{}
	for _, rt := range f.api.routes {
		routes[rt.method+" "+rt.path] = rt
	}
	mounted := f.api.Routes()
	for _, key := range mounted {
		if _, ok := matrix[key]; !ok {
			t.Errorf("route %s is not in the authorisation matrix", key)
		}
	}
	for key := range matrix {
		if !slices.Contains(mounted, key) {
			t.Errorf("matrix row %s names no mounted route", key)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	var checked int
	for _, role := range registry.Roles() {
		t.Run(string(role), func(t *testing.T) {
			for _, key := range mounted {
				rt, row := routes[key], matrix[key]
				method, _, _ := strings.Cut(key, " ")
				for _, in := range []bool{true, false} {
					fac, scope := "f16", "f16"
					if in && row.allScope {
						scope = "all"
					}
					if !in && row.scoped {
						fac = "f27"
					}
					path, body := row.req(t, f, fac, role, scope)
					tok := f.tokens[string(role)][scope]
					if rt.access == accessPublic && method == "POST" {
						tok = ""
					}
					r := f.do(t, tok, method, path, body)
					allowed := slices.Contains(row.allow, role) && (in || (!row.scoped && !row.allScope))
					where := map[bool]string{true: "in scope", false: "out of scope"}[in]
					switch {
					case allowed && r.code != rt.status:
						t.Errorf("%s as %s %s (%s): %d, want %d: %s", key, role, where, path, r.code, rt.status, r.body)
					case !allowed && r.code != 403:
						t.Errorf("%s as %s %s (%s): %d, want 403: %s", key, role, where, path, r.code, r.body)
					case !allowed:
						apiProblemOK(t, key, r)
					}
					checked++
				}
			}
		})
	}
	// Lists without a facility filter are narrowed to the caller's scope.
	for _, path := range []string{"/api/v1/facilities", "/api/v1/cameras", "/api/v1/incidents", "/api/v1/prisoners"} {
		var l apiList[struct {
			ID       any    `json:"id"`
			Facility string `json:"facility"`
		}]
		tok := f.tokens["investigator"]["f16"]
		if path == "/api/v1/facilities" || path == "/api/v1/cameras" {
			tok = f.tokens["operator"]["f16"]
		}
		r := f.do(t, tok, "GET", path, nil)
		r.json(t, &l)
		if r.code != 200 || len(l.Items) == 0 {
			t.Fatalf("%s: %d %s", path, r.code, r.body)
		}
		for _, it := range l.Items {
			if it.Facility != "f16" && it.ID != "f16" {
				t.Errorf("%s as an f16 user lists %v of facility %q", path, it.ID, it.Facility)
			}
		}
	}
	var us apiList[registry.User]
	f.do(t, f.tokens["admin"]["f16"], "GET", "/api/v1/users", nil).json(t, &us)
	for _, u := range us.Items {
		if u.AllFacilities || slices.ContainsFunc(u.Facilities, func(s string) bool { return s != "f16" }) {
			t.Errorf("f16 admin lists user %s scoped to %v (all %t)", u.Username, u.Facilities, u.AllFacilities)
		}
	}

	// Without credentials every route but the public ones answers 401.
	for _, key := range mounted {
		rt, row := routes[key], matrix[key]
		method, _, _ := strings.Cut(key, " ")
		path, body := row.req(t, f, "f16", rO, "f16")
		r := f.do(t, "", method, path, body)
		if rt.access == accessPublic {
			continue
		}
		apiProblemOK(t, key+" unauthenticated", r)
		if r.code != 401 {
			t.Errorf("%s without credentials: %d, want 401", key, r.code)
		}
	}
	t.Logf("%d routes × %d roles × in/out of scope: %d requests checked", len(mounted), len(registry.Roles()), checked)
}
