package viewer

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kuzet/kuzet/registry"
)

func TestAPISessionCookieCSRFAndLogout(t *testing.T) {
	t.Parallel()
	f := newAPIFixture(t)
	login := func(tlsOn bool) (*http.Cookie, sessionInfo) {
		t.Helper()
		req := httptest.NewRequest("POST", "/api/v1/login", strings.NewReader(`{"username":"investigator-f16","password":"password of investigator-f16"}`))
		req.Header.Set("Content-Type", "application/json")
		if tlsOn {
			req.TLS = &tls.ConnectionState{}
		}
		rec := httptest.NewRecorder()
		f.mux.ServeHTTP(rec, req)
		if rec.Code != 200 {
			t.Fatalf("login: %d %s", rec.Code, rec.Body)
		}
		var info sessionInfo
		apiResp{code: rec.Code, body: rec.Body.Bytes()}.json(t, &info)
		cs := rec.Result().Cookies()
		if len(cs) != 1 || cs[0].Name != sessionCookie {
			t.Fatalf("cookies %v", cs)
		}
		return cs[0], info
	}
	c, info := login(false)
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Secure || c.Path != "/" {
		t.Fatalf("cookie attributes over plain HTTP: %+v", c)
	}
	if info.CSRFToken == "" || info.User.Username != "investigator-f16" || !slices.Contains(info.Actions, registry.ActionFootageView) {
		t.Fatalf("login answer %+v", info)
	}
	if c2, _ := login(true); !c2.Secure {
		t.Fatal("cookie over TLS is not Secure")
	}
	cookie := "kuzet_session=" + c.Value
	// Reads need no CSRF token.
	if r := f.do(t, "", "GET", "/api/v1/session", nil, "Cookie", cookie); r.code != 200 {
		t.Fatalf("session: %d %s", r.code, r.body)
	}
	body := map[string]any{"facility": "f16", "type": "other", "severity": "minor", "start": f.t0.Format(time.RFC3339), "description": "csrf test"}
	// A state-changing request without the token, or with a wrong one, is refused.
	r := f.do(t, "", "POST", "/api/v1/incidents", body, "Cookie", cookie)
	apiProblemOK(t, "POST without CSRF", r)
	if r.code != 403 {
		t.Fatalf("POST without CSRF: %d", r.code)
	}
	r = f.do(t, "", "POST", "/api/v1/incidents", body, "Cookie", cookie, csrfHeader, info.CSRFToken+"x")
	if r.code != 403 {
		t.Fatalf("POST with a wrong CSRF token: %d", r.code)
	}
	var n int
	_ = f.pool.QueryRow(context.Background(), "SELECT count(*) FROM incidents WHERE description = 'csrf test'").Scan(&n)
	if n != 0 {
		t.Fatal("refused request created an incident")
	}
	r = f.do(t, "", "POST", "/api/v1/incidents", body, "Cookie", cookie, csrfHeader, info.CSRFToken)
	if r.code != 201 {
		t.Fatalf("POST with CSRF: %d %s", r.code, r.body)
	}
	// Logout needs the token too, then the cookie is dead.
	if r := f.do(t, "", "POST", "/api/v1/logout", nil, "Cookie", cookie); r.code != 403 {
		t.Fatalf("logout without CSRF: %d", r.code)
	}
	if r := f.do(t, "", "POST", "/api/v1/logout", nil, "Cookie", cookie, csrfHeader, info.CSRFToken); r.code != 204 {
		t.Fatalf("logout: %d %s", r.code, r.body)
	}
	if r := f.do(t, "", "GET", "/api/v1/session", nil, "Cookie", cookie); r.code != 401 {
		t.Fatalf("session after logout: %d", r.code)
	}
	// Wrong password: 401; repeated: 429 with Retry-After.
	var last apiResp
	for range 6 {
		last = f.do(t, "", "POST", "/api/v1/login", map[string]string{"username": "operator-f16", "password": "nope"})
	}
	apiProblemOK(t, "locked login", last)
	if last.code != 429 || last.header.Get("Retry-After") == "" {
		t.Fatalf("locked login: %d %v", last.code, last.header)
	}
	// Unknown and malformed tokens.
	for _, h := range []string{"Bearer kzt_nope", "Basic abc", "Bearer", "bearer " + strings.Repeat("x", 500)} {
		r := f.do(t, "", "GET", "/api/v1/session", nil, "Authorization", h)
		apiProblemOK(t, h, r)
		if r.code != 401 {
			t.Errorf("%q: %d", h, r.code)
		}
	}
	rows, err := f.reg.Audit().List(context.Background(), registry.AuditFilter{AnyFacility: true})
	if err != nil {
		t.Fatal(err)
	}
	var logins, failed int
	for _, row := range rows {
		switch row.Action {
		case registry.AuditLogin:
			logins++
		case registry.AuditLoginFailed:
			failed++
		}
	}
	if logins != 2 || failed != 6 {
		t.Fatalf("audit: %d logins, %d failed logins", logins, failed)
	}
}

func TestAPISeriousIncidentPlacesHoldsWithTheRightWindow(t *testing.T) {
	t.Parallel()
	f := newAPIFixture(t)
	start := f.t0.Add(20 * time.Hour)
	end := start.Add(7 * time.Minute)
	r := f.do(t, f.tokens["operator"]["f16"], "POST", "/api/v1/incidents", map[string]any{
		"facility": "f16", "type": "assault", "severity": "serious", "start": start, "end": end,
		"description": "assault in block A", "zones": []string{"block-a"}, "cameras_included": []string{"f16-c02"},
	})
	if r.code != 201 {
		t.Fatalf("create: %d %s", r.code, r.body)
	}
	var inc registry.Incident
	r.json(t, &inc)
	if !inc.LegalHold || !slices.Equal(inc.Cameras, []string{"f16-c02", "f16-c03"}) {
		t.Fatalf("incident %+v", inc)
	}
	got := f.holds.placedFor(inc.ID)
	if len(got) != 2 {
		t.Fatalf("holds placed: %+v", got)
	}
	for i, cam := range []string{"f16-c02", "f16-c03"} {
		if got[i].Camera != cam || !got[i].From.Equal(start.Add(-2*time.Hour)) || !got[i].To.Equal(end.Add(2*time.Hour)) {
			t.Errorf("hold %d: %+v, want %s from %s to %s", i, got[i], cam, start.Add(-2*time.Hour), end.Add(2*time.Hour))
		}
	}
	// Raising the fixture's moderate incident to critical places its holds.
	id := f.incidents["f16"]
	if r := f.do(t, f.tokens["investigator"]["f16"], "PATCH", fmt.Sprintf("/api/v1/incidents/%d", id), map[string]any{"severity": "critical"}); r.code != 200 {
		t.Fatalf("raise: %d %s", r.code, r.body)
	}
	if got := f.holds.placedFor(id); len(got) != 2 || got[0].Camera != "f16-c01" || got[1].Camera != "f16-c02" {
		t.Fatalf("holds after raising: %+v", got)
	}
	// Releasing needs a reason.
	r = f.do(t, f.tokens["investigator"]["f16"], "DELETE", fmt.Sprintf("/api/v1/incidents/%d/hold", id), map[string]any{"reason": ""})
	apiProblemOK(t, "release without reason", r)
	r = f.do(t, f.tokens["investigator"]["f16"], "DELETE", fmt.Sprintf("/api/v1/incidents/%d/hold", id), map[string]any{"reason": "closed by court"})
	if r.code != 200 {
		t.Fatalf("release: %d %s", r.code, r.body)
	}
}

func TestAPIIncidentFootageWindowAndInvolvedStaff(t *testing.T) {
	t.Parallel()
	f := newAPIFixture(t)
	id := f.incidents["f16"]
	inv := f.tokens["investigator"]["f16"]
	r := f.do(t, inv, "GET", fmt.Sprintf("/api/v1/incidents/%d/footage?reason=review", id), nil)
	if r.code != 200 {
		t.Fatalf("footage: %d %s", r.code, r.body)
	}
	var out incidentFootage
	r.json(t, &out)
	start, end := f.t0.Add(8*time.Hour+10*time.Minute), f.t0.Add(8*time.Hour+20*time.Minute)
	if !out.From.Equal(start.Add(-15*time.Minute)) || !out.To.Equal(end.Add(15*time.Minute)) {
		t.Fatalf("default window %s .. %s", out.From, out.To)
	}
	if len(out.Cameras) != 2 || out.Cameras[0].Camera.ID != "f16-c01" || len(out.Cameras[0].Recordings) != 1 ||
		len(out.Cameras[0].Gaps) != 1 || len(out.Cameras[0].Events) != 1 || out.Cameras[0].Camera.HasCredentials != true {
		t.Fatalf("footage %+v", out)
	}
	if strings.Contains(string(r.body), "cam-secret") {
		t.Fatal("camera credentials in the response")
	}
	if w := f.footage.windows("f16-c01"); len(w) != 1 || !w[0].From.Equal(out.From) || !w[0].To.Equal(out.To) {
		t.Fatalf("index asked for %+v", w)
	}
	// Adjustable by query.
	from, to := start.Add(-time.Hour), end.Add(time.Hour)
	r = f.do(t, inv, "GET", fmt.Sprintf("/api/v1/incidents/%d/footage?from=%s&to=%s", id, from.Format(time.RFC3339), to.Format(time.RFC3339)), nil)
	r.json(t, &out)
	if r.code != 200 || !out.From.Equal(from) || !out.To.Equal(to) {
		t.Fatalf("adjusted window: %d %s .. %s", r.code, out.From, out.To)
	}
	for _, bad := range []string{"from=yesterday", "from=" + to.Format(time.RFC3339) + "&to=" + from.Format(time.RFC3339),
		"from=2020-01-01T00:00:00Z&to=2024-01-01T00:00:00Z", "reason=" + strings.Repeat("x", 1001)} {
		apiProblemOK(t, bad, f.do(t, inv, "GET", fmt.Sprintf("/api/v1/incidents/%d/footage?%s", id, bad), nil))
	}
	// Staff involved in the incident may read it but not see its footage,
	// change it, or change its hold; the refusal is audited.
	involved := f.users["investigator"]["f16"]
	other := f.newUser(t, "inv2", []registry.Role{registry.RoleInvestigator}, []string{"f16"}, false, "")
	tok2 := f.newToken(t, other.ID)
	if r := f.do(t, tok2, "PATCH", fmt.Sprintf("/api/v1/incidents/%d", id), map[string]any{"involved_staff": []int64{involved.ID}}); r.code != 200 {
		t.Fatalf("mark involved: %d %s", r.code, r.body)
	}
	for _, c := range []struct{ method, path string }{
		{"GET", fmt.Sprintf("/api/v1/incidents/%d/footage", id)},
		{"PATCH", fmt.Sprintf("/api/v1/incidents/%d", id)},
		{"PUT", fmt.Sprintf("/api/v1/incidents/%d/hold", id)},
		{"DELETE", fmt.Sprintf("/api/v1/incidents/%d/hold", id)},
	} {
		var body any
		if c.method != "GET" {
			body = map[string]any{"involved_staff": []int64{}}
			if strings.HasSuffix(c.path, "hold") {
				body = map[string]any{"reason": "x"}
			}
		}
		r := f.do(t, inv, c.method, c.path, body)
		apiProblemOK(t, c.method+" "+c.path+" by involved staff", r)
		if r.code != 403 {
			t.Errorf("%s %s by involved staff: %d", c.method, c.path, r.code)
		}
	}
	if r := f.do(t, inv, "GET", fmt.Sprintf("/api/v1/incidents/%d", id), nil); r.code != 200 {
		t.Fatalf("involved staff reading the record: %d", r.code)
	}
	rows, err := f.reg.Audit().List(context.Background(), registry.AuditFilter{AnyFacility: true, Action: registry.AuditFootageQuery})
	if err != nil {
		t.Fatal(err)
	}
	var ok, denied int
	for _, row := range rows {
		switch {
		case row.Outcome == registry.OutcomeOK && row.Actor == "investigator-f16" && row.From != nil:
			ok++
		case row.Outcome == registry.OutcomeDenied:
			denied++
		}
	}
	if ok != 2 || denied != 1 {
		t.Fatalf("footage audit: %d ok, %d denied", ok, denied)
	}
}

func TestAPIPrisonerFootageNeedsAReasonAndCoversStays(t *testing.T) {
	t.Parallel()
	f := newAPIFixture(t)
	id := f.prisoners["f16"]
	from, to := f.t0.Add(7*time.Hour), f.t0.Add(10*time.Hour)
	path := fmt.Sprintf("/api/v1/prisoners/%d/footage?from=%s&to=%s", id, from.Format(time.RFC3339), to.Format(time.RFC3339))
	inv := f.tokens["investigator"]["f16"]
	apiProblemOK(t, "no reason", f.do(t, inv, "GET", path, nil))
	if r := f.do(t, f.tokens["admin"]["all"], "GET", path+"&reason=curious", nil); r.code != 403 {
		t.Fatalf("admin: %d", r.code)
	}
	r := f.do(t, inv, "GET", path+"&reason=case+2025-17", nil)
	if r.code != 200 {
		t.Fatalf("footage: %d %s", r.code, r.body)
	}
	var out prisonerFootage
	r.json(t, &out)
	if len(out.Stays) != 3 {
		t.Fatalf("stays %+v", out.Stays)
	}
	yard := out.Stays[1]
	if yard.Zone != "yard" || !yard.From.Equal(f.t0.Add(8*time.Hour)) || !yard.To.Equal(f.t0.Add(9*time.Hour)) || !yard.InScope ||
		len(yard.Cameras) != 2 || len(yard.Cameras[0].Recordings) != 1 {
		t.Fatalf("yard stay %+v", yard)
	}
	if first := out.Stays[0]; !first.From.Equal(from) || first.Zone != "block-a" || len(first.Cameras) != 1 {
		t.Fatalf("first stay not clipped to the range: %+v", first)
	}
	rows, err := f.reg.Audit().List(context.Background(), registry.AuditFilter{AnyFacility: true, Action: registry.AuditFootageQuery})
	if err != nil || len(rows) != 1 || rows[0].Reason != "case 2025-17" || rows[0].Objects[0] != fmt.Sprintf("prisoner:%d", id) {
		t.Fatalf("audit %+v %v", rows, err)
	}
}

func TestAPIRefusesActionsWhenTheAuditLogCannotBeWritten(t *testing.T) {
	t.Parallel()
	f := newAPIFixture(t)
	ctx := context.Background()
	su, err := pgx.Connect(ctx, f.url)
	if err != nil {
		t.Fatal(err)
	}
	defer su.Close(ctx)
	if _, err := su.Exec(ctx, "ALTER TABLE audit_log ADD CONSTRAINT test_audit_broken CHECK (seq < 0) NOT VALID"); err != nil {
		t.Fatal(err)
	}
	admin := f.tokens["admin"]["all"]
	r := f.do(t, admin, "POST", "/api/v1/cameras", map[string]any{"id": "f16-new", "facility": "f16", "zone": "yard", "url": "rtsp://h/x"})
	if r.code != 503 {
		t.Fatalf("camera create with a broken audit log: %d %s", r.code, r.body)
	}
	if _, err := f.reg.Camera(ctx, "f16-new"); err == nil {
		t.Fatal("camera created without its audit row")
	}
	if r := f.do(t, "", "POST", "/api/v1/login", map[string]string{"username": "admin-all", "password": "password of admin-all"}); r.code != 503 {
		t.Fatalf("login with a broken audit log: %d", r.code)
	}
	if r := f.do(t, f.tokens["investigator"]["f16"], "GET", fmt.Sprintf("/api/v1/incidents/%d/footage", f.incidents["f16"]), nil); r.code != 503 {
		t.Fatalf("footage with a broken audit log: %d", r.code)
	}
	if _, err := su.Exec(ctx, "ALTER TABLE audit_log DROP CONSTRAINT test_audit_broken"); err != nil {
		t.Fatal(err)
	}
	if r := f.do(t, admin, "POST", "/api/v1/cameras", map[string]any{"id": "f16-new", "facility": "f16", "zone": "yard", "url": "rtsp://h/x"}); r.code != 201 {
		t.Fatalf("after repair: %d %s", r.code, r.body)
	}
}

func TestAPIListsFilterAndPage(t *testing.T) {
	t.Parallel()
	f := newAPIFixture(t)
	root := f.root
	var l apiList[registry.Camera]
	r := f.do(t, root, "GET", "/api/v1/cameras?limit=2", nil)
	r.json(t, &l)
	if r.code != 200 || len(l.Items) != 2 || l.NextOffset == nil || *l.NextOffset != 2 {
		t.Fatalf("page 1: %d %+v", r.code, l)
	}
	r = f.do(t, root, "GET", "/api/v1/cameras?limit=2&offset=4", nil)
	r.json(t, &l)
	if len(l.Items) != 2 || l.NextOffset == nil {
		t.Fatalf("page 3: %+v", l)
	}
	r = f.do(t, root, "GET", "/api/v1/cameras?limit=2&offset=6", nil)
	r.json(t, &l)
	if len(l.Items) != 0 || l.NextOffset != nil {
		t.Fatalf("past the end: %+v", l)
	}
	// Scope narrows lists without a filter.
	r = f.do(t, f.tokens["operator"]["f16"], "GET", "/api/v1/cameras", nil)
	r.json(t, &l)
	for _, c := range l.Items {
		if c.Facility != "f16" {
			t.Fatalf("f16 operator sees %s", c.ID)
		}
	}
	var ps apiList[registry.Prisoner]
	r = f.do(t, root, "GET", "/api/v1/prisoners?risk=medium&zone=block-a&facility=f27", nil)
	r.json(t, &ps)
	if len(ps.Items) != 1 || ps.Items[0].Facility != "f27" {
		t.Fatalf("prisoners %+v", ps)
	}
	var is apiList[registry.Incident]
	r = f.do(t, root, "GET", "/api/v1/incidents?facility=f16&status=open&from="+f.t0.Format(time.RFC3339), nil)
	r.json(t, &is)
	if len(is.Items) != 1 || is.Items[0].ID != f.incidents["f16"] {
		t.Fatalf("incidents %+v", is)
	}
	r = f.do(t, root, "GET", "/api/v1/incidents?to="+f.t0.Format(time.RFC3339), nil)
	r.json(t, &is)
	if len(is.Items) != 0 {
		t.Fatalf("incidents before t0: %+v", is)
	}
	var ap auditPage
	r = f.do(t, f.tokens["auditor"]["all"], "GET", "/api/v1/audit?limit=5", nil)
	r.json(t, &ap)
	if len(ap.Items) != 5 || ap.NextAfter == nil || *ap.NextAfter != 5 {
		t.Fatalf("audit page: %+v", ap)
	}
	var v auditVerification
	r = f.do(t, f.tokens["auditor"]["f16"], "GET", "/api/v1/audit/verify", nil)
	r.json(t, &v)
	if !v.OK || v.Rows < 10 || len(v.HeadHash) != 64 {
		t.Fatalf("verify %+v", v)
	}
}

func TestAPIRequireMiddlewareForOtherRoutes(t *testing.T) {
	t.Parallel()
	f := newAPIFixture(t)
	var seen registry.Principal
	h := f.api.Require(registry.ActionFootageExport, f.api.IncidentResource("incident"), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen, _ = PrincipalFrom(r.Context())
		w.WriteHeader(http.StatusAccepted)
	}))
	f.mux.Handle("POST /test/export/{incident}", h)
	path := func(fac string) string { return fmt.Sprintf("/test/export/%d", f.incidents[fac]) }
	for _, c := range []struct {
		name, token, path string
		want              int
	}{
		{"investigator of the facility", f.tokens["investigator"]["f16"], path("f16"), 202},
		{"investigator of another facility", f.tokens["investigator"]["f16"], path("f27"), 403},
		{"admin (no footage)", f.tokens["admin"]["all"], path("f16"), 403},
		{"operator", f.tokens["operator"]["f16"], path("f16"), 403},
		{"nobody", "", path("f16"), 401},
		{"unknown incident", f.tokens["investigator"]["f16"], "/test/export/999999", 404},
		{"bad id", f.tokens["investigator"]["f16"], "/test/export/x'--", 400},
	} {
		r := f.do(t, c.token, "POST", c.path, nil)
		if r.code != c.want {
			t.Errorf("%s: %d, want %d: %s", c.name, r.code, c.want, r.body)
		}
	}
	if seen.Username != "investigator-f16" {
		t.Fatalf("principal in context: %+v", seen)
	}
}

func TestAPIClientAddressBehindTrustedProxies(t *testing.T) {
	t.Parallel()
	a := &API{cfg: APIConfig{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}}}
	for _, c := range []struct {
		name, remote, xff, want string
	}{
		{"direct client ignores the header", "203.0.113.5:4000", "198.51.100.1", "203.0.113.5"},
		{"proxy: the client it saw", "10.1.1.1:4000", "198.51.100.1", "198.51.100.1"},
		{"proxy chain: rightmost untrusted", "10.1.1.1:4000", "192.0.2.66, 198.51.100.1, 10.2.2.2", "198.51.100.1"},
		{"spoofed left part ignored", "10.1.1.1:4000", "1.2.3.4, 198.51.100.1", "198.51.100.1"},
		{"malformed hop", "10.1.1.1:4000", "198.51.100.1, junk", "10.1.1.1"},
		{"no header", "[::1]:4000", "", "::1"},
		{"all trusted", "10.1.1.1:4000", "10.3.3.3", "10.1.1.1"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = c.remote
		if c.xff != "" {
			r.Header.Set("X-Forwarded-For", c.xff)
		}
		if got := a.client(r); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}
