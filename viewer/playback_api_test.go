package viewer

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/kuzet/kuzet/registry"
	"github.com/kuzet/kuzet/viewer/evidence"
)

// fixtureRecorded is the recorded footage of the API fixture.
type fixtureRecorded struct {
	store *fakeStore
	recs  *fakeRecordings
	key   ed25519.PublicKey
	epoch time.Time // frame 0 of the footage
}

// attachRecorded gives the API fixture two minutes of footage of f16-c01
// and f16-c02 from one minute before the f16 incident's start, playback
// over a loopback Live, and an exporter with a fresh signing key.
func (f *apiFixture) attachRecorded(t *testing.T) {
	t.Helper()
	fr := &fixtureRecorded{store: &fakeStore{}, recs: &fakeRecordings{}, epoch: f.t0.Add(8*time.Hour + 9*time.Minute)}
	for _, cam := range []string{"f16-c01", "f16-c02"} {
		addFootage(t, fr.store, fr.recs, footageSpec{camera: cam, frames: 3000, segFrames: 750, epoch: fr.epoch, size: 200})
	}
	dir := &fakeDir{}
	live, err := NewLive(LiveConfig{ICEUDPListen: "127.0.0.1:0", ICETCPListen: "127.0.0.1:0", IncludeLoopback: true},
		LiveDeps{Streams: dir, Cameras: dir, Auth: fakeAuth{}, Audit: &fakeAudit{}, Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	pb, err := NewPlayback(PlaybackConfig{}, PlaybackDeps{Recordings: fr.recs, Objects: fr.store, Audit: f.reg.Audit(), Live: live, Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	fr.key = pub
	ex, err := NewExporter(ExportConfig{Dir: t.TempDir(), MaxJobs: 1000, Version: "test"},
		ExportDeps{Recordings: fr.recs, Objects: fr.store, Audit: f.reg.Audit(), Key: priv, Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	f.api.playback, f.api.exports, f.recorded = pb, ex, fr
	t.Cleanup(func() {
		pb.Close()
		ex.Close()
		live.Close()
	})
}

// browserOffer is an SDP offer like a browser's for n cameras: n receiving
// video sections and the control data channel.
func browserOffer(t *testing.T, n int) string {
	t.Helper()
	pc, err := viewerAPI(t, false).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	for range n {
		if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pc.CreateDataChannel("control", nil); err != nil {
		t.Fatal(err)
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	return pc.LocalDescription().SDP
}

// principal is the principal of the fixture's user of role and scope.
func (f *apiFixture) principal(t *testing.T, role registry.Role, scope string) registry.Principal {
	t.Helper()
	p, err := f.reg.TokenPrincipal(context.Background(), f.tokens[string(role)][scope])
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// exportOf queues an export of the f16 incident for the investigator of
// scope (and waits for it to finish when wait is set).
func (f *apiFixture) exportOf(t *testing.T, scope string, wait bool) string {
	t.Helper()
	inc, err := f.reg.Incident(context.Background(), f.incidents["f16"])
	if err != nil {
		t.Fatal(err)
	}
	var cams []registry.Camera
	for _, id := range inc.Cameras {
		c, err := f.reg.Camera(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		cams = append(cams, c)
	}
	from, to := inc.FootageWindow(15*time.Minute, 15*time.Minute, time.Now())
	j, err := f.api.exports.submit(context.Background(), exportSpec{principal: f.principal(t, registry.RoleInvestigator, scope),
		client: "test", reason: "matrix", incident: &inc, cameras: cams, facility: "f16", from: from, to: to})
	if err != nil {
		t.Fatal(err)
	}
	if wait {
		waitFor(t, 30*time.Second, "export "+j.id, func() bool { return j.view().State != "queued" && j.view().State != "running" })
		if v := j.view(); v.State != "done" {
			t.Fatalf("export %s: %+v", j.id, v)
		}
	}
	return j.id
}

// recordedMatrix are the authorisation rows of the recorded-footage routes.
func recordedMatrix() map[string]matrixRoute {
	inc := func(f *apiFixture, fac string) int64 { return f.incidents[fac] }
	window := func(f *apiFixture) (string, string) {
		return f.recorded.epoch.Add(10 * time.Second).Format(time.RFC3339), f.recorded.epoch.Add(50 * time.Second).Format(time.RFC3339)
	}
	investigatorOnly := []registry.Role{rI}
	return map[string]matrixRoute{
		"GET /api/v1/timeline": {allow: investigatorOnly, scoped: true, req: func(_ *testing.T, f *apiFixture, fac string, _ registry.Role, _ string) (string, any) {
			return fmt.Sprintf("/api/v1/timeline?incident=%d&reason=matrix", inc(f, fac)), nil
		}},
		"POST /api/v1/playback": {allow: investigatorOnly, scoped: true, req: func(t *testing.T, f *apiFixture, fac string, _ registry.Role, _ string) (string, any) {
			return "/api/v1/playback", map[string]any{"offer": browserOffer(t, 2), "incident": inc(f, fac), "reason": "matrix"}
		}},
		"DELETE /api/v1/playback/{session}": {allow: investigatorOnly, req: func(t *testing.T, f *apiFixture, _ string, role registry.Role, scope string) (string, any) {
			if role != rI {
				return "/api/v1/playback/" + strings.Repeat("0", 32), nil
			}
			r := f.do(t, f.tokens["investigator"][scope], "POST", "/api/v1/playback",
				map[string]any{"offer": browserOffer(t, 2), "incident": inc(f, "f16"), "reason": "matrix"})
			var out playbackStarted
			r.json(t, &out)
			return "/api/v1/playback/" + out.Session, nil
		}},
		"GET /api/v1/cameras/{camera}/recording.mp4": {allow: investigatorOnly, scoped: true, req: func(_ *testing.T, f *apiFixture, fac string, _ registry.Role, _ string) (string, any) {
			from, to := window(f)
			q := url.Values{"from": {from}, "to": {to}, "reason": {"matrix"}}
			return "/api/v1/cameras/" + fac + "-c01/recording.mp4?" + q.Encode(), nil
		}},
		"POST /api/v1/exports": {allow: investigatorOnly, scoped: true, req: func(_ *testing.T, f *apiFixture, fac string, _ registry.Role, _ string) (string, any) {
			return "/api/v1/exports", map[string]any{"incident": inc(f, fac), "reason": "matrix"}
		}},
		"GET /api/v1/exports": {allow: investigatorOnly, req: fixed("/api/v1/exports")},
		"GET /api/v1/exports/{export}": {allow: investigatorOnly, req: func(t *testing.T, f *apiFixture, _ string, _ registry.Role, scope string) (string, any) {
			return "/api/v1/exports/" + f.exportOf(t, scope, false), nil
		}},
		"DELETE /api/v1/exports/{export}": {allow: investigatorOnly, req: func(t *testing.T, f *apiFixture, _ string, _ registry.Role, scope string) (string, any) {
			return "/api/v1/exports/" + f.exportOf(t, scope, false), nil
		}},
		"GET /api/v1/exports/{export}/package": {allow: investigatorOnly, req: func(t *testing.T, f *apiFixture, _ string, _ registry.Role, scope string) (string, any) {
			return "/api/v1/exports/" + f.exportOf(t, scope, true) + "/package", nil
		}},
		"GET /api/v1/export/pubkey": {allow: allRoles(), req: fixed("/api/v1/export/pubkey")},
	}
}

// TestFootageRefusalsAndAudit: operators, IT and an investigator involved
// in the incident are refused playback, download, timeline and export (and
// the refusals are audited); an uninvolved investigator is allowed, each
// time with an audit row carrying the reason; the package verifies.
func TestFootageRefusalsAndAudit(t *testing.T) {
	t.Parallel()
	f := newAPIFixture(t)
	ctx := context.Background()
	involved := f.users["investigator"]["f16"]
	typ, sev, desc, fac := "assault", "moderate", "involved staff test", "f16"
	start := f.recorded.epoch.Add(30 * time.Second)
	end := start.Add(30 * time.Second)
	incident, err := f.reg.CreateIncident(ctx, apiSys, registry.IncidentInput{Facility: &fac, Type: &typ, Severity: &sev, Start: &start,
		End: &end, Description: &desc, Zones: &[]string{"yard"}, InvolvedStaff: &[]int64{involved.ID}})
	if err != nil {
		t.Fatal(err)
	}
	from, to := f.recorded.epoch.Add(20*time.Second).Format(time.RFC3339), f.recorded.epoch.Add(70*time.Second).Format(time.RFC3339)
	q := url.Values{"from": {from}, "to": {to}, "reason": {"court order 7"}}
	playback := func(reason string) map[string]any {
		return map[string]any{"offer": browserOffer(t, 2), "incident": incident.ID, "reason": reason}
	}
	exportBody := map[string]any{"incident": incident.ID, "reason": "court order 7"}
	mp4 := "/api/v1/cameras/f16-c01/recording.mp4?" + q.Encode()
	// The involved investigator can reach this footage neither through the
	// incident nor through the camera.
	cameraExport := map[string]any{"cameras": []string{"f16-c02"}, "from": from, "to": to, "reason": "court order 7"}
	for _, c := range []struct {
		who           string
		role          registry.Role
		method, path  string
		body          any
		status        int
		auditedDenial bool
	}{
		{"operator", rO, "POST", "/api/v1/playback", playback("x"), 403, false},
		{"IT", rT, "POST", "/api/v1/playback", playback("x"), 403, false},
		{"operator", rO, "POST", "/api/v1/exports", exportBody, 403, false},
		{"IT", rT, "GET", mp4, nil, 403, false},
		{"involved investigator", rI, "POST", "/api/v1/playback", playback("x"), 403, true},
		{"involved investigator", rI, "POST", "/api/v1/exports", exportBody, 403, true},
		{"involved investigator, by camera", rI, "POST", "/api/v1/exports", cameraExport, 403, true},
		{"involved investigator", rI, "GET", mp4, nil, 403, true},
		{"involved investigator", rI, "GET", fmt.Sprintf("/api/v1/timeline?incident=%d", incident.ID), nil, 403, true},
	} {
		r := f.do(t, f.tokens[string(c.role)]["f16"], c.method, c.path, c.body)
		if r.code != c.status {
			t.Errorf("%s %s %s: %d %s", c.who, c.method, c.path, r.code, r.body)
		}
	}
	denied, err := f.reg.Audit().List(ctx, registry.AuditFilter{Actor: involved.Username, AnyFacility: true})
	if err != nil {
		t.Fatal(err)
	}
	var deniedActions []string
	for _, row := range denied {
		if row.Outcome == registry.OutcomeDenied {
			deniedActions = append(deniedActions, row.Action)
		}
	}
	if got := strings.Join(deniedActions, ","); got != "playback,export,export,export,footage.query" {
		t.Errorf("denied rows of the involved investigator: %s", got)
	}

	// An uninvolved investigator: allowed, audited with the reason.
	inv := f.tokens["investigator"]["all"]
	for _, body := range []map[string]any{playback(""), {"incident": incident.ID}} {
		path := "/api/v1/playback"
		if _, ok := body["offer"]; !ok {
			path = "/api/v1/exports"
		}
		if r := f.do(t, inv, "POST", path, body); r.code != 400 {
			t.Errorf("%s without a reason: %d %s", path, r.code, r.body)
		}
	}
	if r := f.do(t, inv, "POST", "/api/v1/playback", playback("review of the assault")); r.code != 201 {
		t.Fatalf("playback: %d %s", r.code, r.body)
	}
	r := f.do(t, inv, "GET", mp4, nil)
	if r.code != 200 || r.header.Get("Content-Type") != "video/mp4" || len(r.body) < 1000 {
		t.Fatalf("download: %d %v", r.code, r.header)
	}
	r = f.do(t, inv, "POST", "/api/v1/exports", exportBody)
	var job exportView
	r.json(t, &job)
	if r.code != 202 {
		t.Fatalf("export: %d %s", r.code, r.body)
	}
	waitFor(t, 30*time.Second, "the export", func() bool {
		f.do(t, inv, "GET", "/api/v1/exports/"+job.ID, nil).json(t, &job)
		return job.State == "done" || job.State == "failed"
	})
	if job.State != "done" || job.Progress != 1 || job.Files != 3 {
		t.Fatalf("export %+v", job)
	}
	pkg := f.do(t, inv, "GET", "/api/v1/exports/"+job.ID+"/package", nil)
	pubPEM := f.do(t, "", "GET", "/api/v1/export/pubkey", nil)
	pub, err := evidence.ParsePublicKey(pubPEM.body)
	if err != nil || !pub.Equal(f.recorded.key) {
		t.Fatalf("public key %s: %v", pubPEM.body, err)
	}
	rep, err := evidence.Verify(bytes.NewReader(pkg.body), int64(len(pkg.body)), pub)
	if err != nil {
		t.Fatalf("package: %v", err)
	}
	if rep.Manifest.Incident == nil || rep.Manifest.Incident.ID != incident.ID || rep.Manifest.Reason != "court order 7" ||
		len(rep.Manifest.Cameras) != 2 || rep.Manifest.Exporter.Username != "investigator-all" {
		t.Errorf("manifest %+v", rep.Manifest)
	}
	rows, err := f.reg.Audit().List(ctx, registry.AuditFilter{Actor: "investigator-all", AnyFacility: true})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, row := range rows {
		if row.Reason == "" && row.Outcome != registry.OutcomeDenied {
			t.Errorf("row without a reason: %+v", row)
		}
		if row.Action == registry.AuditPlayback && row.Outcome == registry.OutcomeOK {
			continue // the session's end (it never connects), when it comes
		}
		got = append(got, row.Action+"/"+row.Outcome)
	}
	if s := strings.Join(got, ","); s != "playback/started,export/ok,export/started,export/ok,export/ok" {
		t.Errorf("rows of the investigator: %s", s)
	}
	for _, row := range rows {
		if row.Action == "export" && row.Outcome == "ok" && !strings.Contains(row.Detail, "download") && !strings.Contains(row.Detail, "created") {
			t.Errorf("export row %q", row.Detail)
		}
	}
}
