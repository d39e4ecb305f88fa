package alerts

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kuzet/kuzet/registry"
)

// fast is a configuration whose clock-offset condition alerts at once, so
// that a test controls exactly when a condition starts.
func fast() Config {
	return Config{ClockOffsetFor: time.Nanosecond, DependencyDownFor: time.Nanosecond, ClearFor: time.Nanosecond}
}

func (e *dbEnv) skew(camera string, off time.Duration) {
	e.health.set(camera, func(c *fakeCam) { c.offset, c.offsetOK = off, off != 0 })
}

// TestSSENewAlertWithin2s: an SSE client sees an alert open within 2 s of
// its condition (conditions without a time window: a third reconnect, the
// spool passing 50 %).
func TestSSENewAlertWithin2s(t *testing.T) {
	t.Parallel()
	e := newDBEnv(t, Config{})
	op := e.subscribe(t, "op16", "")
	it := e.subscribe(t, "itall", "")
	time.Sleep(1500 * time.Millisecond) // the service settles; nothing to report
	var worst time.Duration
	cases := []struct {
		client  *sseClient
		subject string
		kind    Kind
		start   func()
	}{
		{op, "f16-c1", KindCameraFlapping, func() { e.health.set("f16-c1", func(c *fakeCam) { c.reconnects += 3 }) }},
		{op, "f16-c2", KindCameraFlapping, func() { e.health.set("f16-c2", func(c *fakeCam) { c.reconnects += 3 }) }},
		{it, "local/spool", KindSpoolFilling, func() { e.storage.set(func(h *StorageHealth) { h.SpoolUsed = 600 }) }},
	}
	for _, tc := range cases {
		start := time.Now()
		tc.start()
		ev, seen, ok := tc.client.until(t, 2*time.Second, func(ev Event) bool {
			return ev.Type == EventOpened && ev.Alert.Subject == tc.subject && ev.Alert.Kind == tc.kind
		})
		if !ok {
			t.Fatalf("no opened %s event for %s within 2 s; got %+v", tc.kind, tc.subject, seen)
		}
		d := ev.at.Sub(start)
		worst = max(worst, d)
		t.Logf("%s on %s reached the SSE client %s after its condition", tc.kind, tc.subject, d.Round(time.Millisecond))
		if ev.id != strconv.FormatInt(ev.event.Seq, 10) || ev.event.Seq == 0 {
			t.Errorf("event id %q, seq %d", ev.id, ev.event.Seq)
		}
		if cam := ev.event.Alert.Camera; cam != "" && !strings.HasPrefix(ev.event.Alert.TimelineURL, "/#/camera/"+cam+"?t=") {
			t.Errorf("timeline link %q", ev.event.Alert.TimelineURL)
		}
	}
	fmt.Printf("SSE: new alert received at most %s after its condition\n", worst.Round(time.Millisecond))
}

// TestSSEFacilityScope: an operator of f16 never receives an alert of f27
// (nor a system alert); one of f27 none of f16; an all-facility IT user
// all of them. The lists and single alerts are scoped the same way.
func TestSSEFacilityScope(t *testing.T) {
	t.Parallel()
	e := newDBEnv(t, fast())
	op16 := e.subscribe(t, "op16", "")
	op27 := e.subscribe(t, "op27", "")
	all := e.subscribe(t, "itall", "")
	time.Sleep(1500 * time.Millisecond)
	e.skew("f27-c1", 5*time.Second)
	e.skew("f16-c1", 5*time.Second)
	e.storage.set(func(h *StorageHealth) { h.StoreUp, h.StoreError = false, "refused" })
	want := map[string]bool{"f27-c1": true, "f16-c1": true, "local/store": true}
	got := map[string]bool{}
	if _, seen, ok := all.until(t, 5*time.Second, func(ev Event) bool {
		if ev.Type == EventOpened {
			got[ev.Alert.Subject] = true
		}
		return len(got) == len(want)
	}); !ok {
		t.Fatalf("all-facility client got %v; events %+v", got, seen)
	}
	// The f27 and system alerts may be resolved and raised again: the
	// scoped clients must never see them, whatever happens.
	e.skew("f27-c1", 0)
	time.Sleep(2 * time.Second)
	e.skew("f27-c1", 5*time.Second)
	time.Sleep(2 * time.Second)
	check := func(c *sseClient, user, fac string) {
		n := 0
		for {
			ev, ok := c.next(t, 300*time.Millisecond)
			if !ok {
				break
			}
			n++
			if ev.event.Alert.Facility != fac {
				t.Errorf("%s received %s of facility %q (%s)", user, ev.event.Type, ev.event.Alert.Facility, ev.event.Alert.Subject)
			}
		}
		if n == 0 {
			t.Errorf("%s received nothing of its own facility", user)
		}
	}
	check(op16, "op16", "f16")
	check(op27, "op27", "f27")

	var list alertList
	if st := e.do(t, "op16", "GET", "/api/v1/alerts?state=active", nil, &list); st != 200 {
		t.Fatalf("list: %d", st)
	}
	for _, a := range list.Items {
		if a.Facility != "f16" {
			t.Errorf("op16 lists alert %d of facility %q", a.ID, a.Facility)
		}
	}
	a27 := e.waitAlert(t, KindCameraClockOffset, "f27-c1", 5*time.Second)
	if st := e.do(t, "op16", "GET", fmt.Sprintf("/api/v1/alerts/%d", a27.ID), nil, nil); st != http.StatusNotFound {
		t.Errorf("op16 reads an f27 alert: %d", st)
	}
	if st := e.do(t, "op16", "POST", fmt.Sprintf("/api/v1/alerts/%d/ack", a27.ID), noteInput{Note: "x"}, nil); st != http.StatusNotFound {
		t.Errorf("op16 acknowledges an f27 alert: %d", st)
	}
	if st := e.do(t, "op16", "GET", "/api/v1/alerts?facility=f27", nil, &list); st != 200 || len(list.Items) != 0 {
		t.Errorf("op16 lists f27 alerts: %d, %d items", st, len(list.Items))
	}
	// A user whose roles do not grant alerts gets no stream at all.
	req, _ := http.NewRequest("GET", e.srv.URL+"/api/v1/alerts/events", nil)
	req.Header.Set("Authorization", "Bearer "+e.tokens["aud"])
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("auditor's event stream: %v %v", resp.Status, err)
	} else {
		resp.Body.Close()
	}
	req, _ = http.NewRequest("GET", e.srv.URL+"/api/v1/alerts/events", nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("anonymous event stream: %v %v", resp.Status, err)
	} else {
		resp.Body.Close()
	}
}

// TestSSEResume: a client that reconnects with Last-Event-ID gets exactly
// the events it missed, in order.
func TestSSEResume(t *testing.T) {
	t.Parallel()
	e := newDBEnv(t, fast())
	c := e.subscribe(t, "itall", "")
	time.Sleep(1500 * time.Millisecond)
	e.skew("f16-c1", 5*time.Second)
	first, _, ok := c.until(t, 3*time.Second, func(ev Event) bool { return ev.Type == EventOpened })
	if !ok {
		t.Fatal("no first event")
	}
	c.close()
	e.skew("f16-c2", 5*time.Second)
	e.skew("f27-c1", 5*time.Second)
	e.skew("f16-c1", 0)
	e.waitAlert(t, KindCameraClockOffset, "f27-c1", 5*time.Second)
	time.Sleep(2 * time.Second)
	missed, err := e.svc.store.eventsAfter(context.Background(), first.event.Seq, 100)
	if err != nil || len(missed) < 3 {
		t.Fatalf("events after %d: %d, %v", first.event.Seq, len(missed), err)
	}
	r := e.subscribe(t, "itall", first.id)
	for i, want := range missed {
		ev, ok := r.next(t, 3*time.Second)
		if !ok {
			t.Fatalf("resumed stream ended after %d of %d missed events", i, len(missed))
		}
		if ev.event.Seq != want.Seq || ev.event.Type != want.Type {
			t.Fatalf("resumed event %d: seq %d %s, want %d %s", i, ev.event.Seq, ev.event.Type, want.Seq, want.Type)
		}
	}
	if ev, ok := r.next(t, 500*time.Millisecond); ok {
		t.Fatalf("extra event after the backlog: %+v", ev.event)
	}
	// And new events follow the backlog.
	e.skew("f16-c1", 5*time.Second)
	if _, seen, ok := r.until(t, 3*time.Second, func(ev Event) bool { return ev.Type == EventOpened && ev.Alert.Subject == "f16-c1" }); !ok {
		t.Fatalf("no live event after the backlog: %+v", seen)
	}
}

// TestLifecycleAPI: acknowledge, resolve and create-incident through the
// API, each audited; an operator's timeline link; states enforced.
func TestLifecycleAPI(t *testing.T) {
	t.Parallel()
	e := newDBEnv(t, fast())
	e.skew("f16-c1", 5*time.Second)
	e.skew("f16-c2", 5*time.Second)
	a := e.waitAlert(t, KindCameraClockOffset, "f16-c1", 5*time.Second)
	b := e.waitAlert(t, KindCameraClockOffset, "f16-c2", 5*time.Second)
	if a.Zone != "block-a" || a.Facility != "f16" || a.Camera != "f16-c1" {
		t.Fatalf("alert %+v", a)
	}

	var got Alert
	if st := e.do(t, "op16", "POST", fmt.Sprintf("/api/v1/alerts/%d/ack", a.ID), noteInput{Note: "guard sent"}, &got); st != 200 {
		t.Fatalf("ack: %d", st)
	}
	if got.State != StateAcknowledged || got.AckedBy != "op16" || got.AckNote != "guard sent" || got.AckedAt == nil {
		t.Fatalf("acknowledged alert %+v", got)
	}
	if st := e.do(t, "op16", "POST", fmt.Sprintf("/api/v1/alerts/%d/ack", a.ID), noteInput{}, nil); st != http.StatusConflict {
		t.Errorf("second ack: %d", st)
	}
	if st := e.do(t, "op16", "POST", fmt.Sprintf("/api/v1/alerts/%d/ack", a.ID), map[string]any{"note": 5}, nil); st != http.StatusUnprocessableEntity {
		t.Errorf("ack with a bad body: %d", st)
	}
	rows := e.auditRows(t, "alert.ack")
	if len(rows) != 1 || rows[0].Actor != "op16" || !slices.Contains(rows[0].Objects, fmt.Sprintf("alert:%d", a.ID)) || rows[0].Facility != "f16" {
		t.Fatalf("ack audit rows %+v", rows)
	}

	// IT may not open incidents; an operator may.
	if st := e.do(t, "it16", "POST", fmt.Sprintf("/api/v1/alerts/%d/incident", a.ID), incidentInput{}, nil); st != http.StatusForbidden {
		t.Errorf("IT opens an incident: %d", st)
	}
	var res incidentResult
	if st := e.do(t, "op16", "POST", fmt.Sprintf("/api/v1/alerts/%d/incident", a.ID), incidentInput{Type: "property_damage"}, &res); st != http.StatusCreated {
		t.Fatalf("incident: %d", st)
	}
	inc, err := e.reg.Incident(context.Background(), res.Incident.ID)
	if err != nil {
		t.Fatal(err)
	}
	if inc.Facility != "f16" || !slices.Contains(inc.Zones, "block-a") || !slices.Contains(inc.Cameras, "f16-c1") ||
		!inc.Start.Equal(a.Since.UTC().Truncate(time.Microsecond)) || inc.Type != "property_damage" {
		t.Errorf("incident %+v from alert %+v", inc, a)
	}
	if res.Alert.IncidentID != inc.ID {
		t.Errorf("alert links incident %d, want %d", res.Alert.IncidentID, inc.ID)
	}
	if st := e.do(t, "op16", "POST", fmt.Sprintf("/api/v1/alerts/%d/incident", a.ID), incidentInput{}, nil); st != http.StatusConflict {
		t.Errorf("second incident: %d", st)
	}
	if rows := e.auditRows(t, "alert.incident"); len(rows) != 1 || !slices.Contains(rows[0].Objects, fmt.Sprintf("incident:%d", inc.ID)) {
		t.Errorf("incident audit rows %+v", rows)
	}
	if rows := e.auditRows(t, "incident.create"); len(rows) != 1 || rows[0].Actor != "op16" {
		t.Errorf("registry incident audit rows %+v", rows)
	}

	if st := e.do(t, "it16", "POST", fmt.Sprintf("/api/v1/alerts/%d/resolve", b.ID), noteInput{Note: "clock fixed by hand"}, &got); st != 200 {
		t.Fatalf("resolve: %d", st)
	}
	if got.State != StateResolved || got.ResolvedBy != "it16" {
		t.Fatalf("resolved alert %+v", got)
	}
	if rows := e.auditRows(t, "alert.resolve"); len(rows) != 1 || rows[0].Actor != "it16" {
		t.Errorf("resolve audit rows %+v", rows)
	}
	// The condition still holds: no new alert for it.
	time.Sleep(3 * time.Second)
	as, _ := e.svc.store.list(context.Background(), registry.Scope{All: true}, Filter{Camera: "f16-c2"})
	if len(as) != 1 {
		t.Errorf("%d alerts for f16-c2 after a manual resolve, want 1", len(as))
	}
	// The condition clears: the acknowledged alert resolves by itself.
	e.skew("f16-c1", 0)
	deadline := time.Now().Add(5 * time.Second)
	for {
		cur, err := e.svc.store.get(context.Background(), a.ID)
		if err != nil {
			t.Fatal(err)
		}
		if cur.State == StateResolved {
			if cur.ResolvedBy != "system" {
				t.Errorf("resolved by %q", cur.ResolvedBy)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("acknowledged alert not resolved when its condition cleared")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestOneActiveAlertPerCondition: concurrent opens and the database's
// partial unique index keep one active alert per condition.
func TestOneActiveAlertPerCondition(t *testing.T) {
	t.Parallel()
	e := newDBEnv(t, fast())
	ctx := context.Background()
	var wg sync.WaitGroup
	opened := make(chan bool, 20)
	for range 20 {
		wg.Go(func() {
			_, _, ok, err := e.svc.store.open(ctx, Alert{Kind: KindCameraTamper, Subject: "f16-c2", Camera: "f16-c2",
				Facility: "f16", Severity: SeverityHigh, Title: "t", Since: time.Now()})
			if err != nil {
				t.Error(err)
			}
			opened <- ok
		})
	}
	wg.Wait()
	close(opened)
	n := 0
	for ok := range opened {
		if ok {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d opens succeeded, want 1", n)
	}
	_, err := e.pool.Exec(ctx, `INSERT INTO alerts (kind, subject, severity, state, title, detail, since, opened_at, changed_at)
		VALUES ('camera_tamper', 'f16-c2', 'low', 'open', '', '', now(), now(), now())`)
	if err == nil || !strings.Contains(err.Error(), "alerts_one_active") {
		t.Fatalf("second active alert inserted: %v", err)
	}
}

func TestRulesAndMaintenanceAPI(t *testing.T) {
	t.Parallel()
	e := newDBEnv(t, fast())
	rule := map[string]any{"name": "f16 clocks matter", "facility": "f16", "kinds": []string{"camera_clock_offset"}, "severity": "critical"}
	if st := e.do(t, "op16", "POST", "/api/v1/alert-rules", rule, nil); st != http.StatusForbidden {
		t.Errorf("operator creates a rule: %d", st)
	}
	rule27 := map[string]any{"name": "x", "facility": "f27"}
	if st := e.do(t, "it16", "POST", "/api/v1/alert-rules", rule27, nil); st != http.StatusForbidden {
		t.Errorf("f16 IT creates an f27 rule: %d", st)
	}
	if st := e.do(t, "it16", "POST", "/api/v1/alert-rules", map[string]any{"name": "global"}, nil); st != http.StatusForbidden {
		t.Errorf("f16 IT creates a global rule: %d", st)
	}
	if st := e.do(t, "it16", "POST", "/api/v1/alert-rules", map[string]any{"name": "x", "camera": "f27-c1"}, nil); st != http.StatusForbidden {
		t.Errorf("f16 IT creates a rule on an f27 camera: %d", st)
	}
	if st := e.do(t, "it16", "POST", "/api/v1/alert-rules", map[string]any{"name": "", "severity": "huge"}, nil); st != http.StatusUnprocessableEntity {
		t.Errorf("bad rule: %d", st)
	}
	var r Rule
	if st := e.do(t, "it16", "POST", "/api/v1/alert-rules", rule, &r); st != http.StatusCreated || r.ID == 0 || r.UpdatedBy != "it16" {
		t.Fatalf("create rule: %d %+v", st, r)
	}
	e.skew("f16-c1", 5*time.Second)
	if a := e.waitAlert(t, KindCameraClockOffset, "f16-c1", 5*time.Second); a.Severity != SeverityCritical || a.RuleID != r.ID {
		t.Errorf("alert %+v, want critical by rule %d", a, r.ID)
	}
	var rl ruleList
	if e.do(t, "op27", "GET", "/api/v1/alert-rules", nil, &rl); len(rl.Items) != 0 {
		t.Errorf("op27 sees f16 rules: %+v", rl.Items)
	}
	if e.do(t, "op16", "GET", "/api/v1/alert-rules", nil, &rl); len(rl.Items) != 1 {
		t.Errorf("op16 sees %d rules", len(rl.Items))
	}
	rule["severity"] = "low"
	if st := e.do(t, "it16", "PUT", fmt.Sprintf("/api/v1/alert-rules/%d", r.ID), rule, &r); st != 200 || r.Severity != SeverityLow {
		t.Errorf("replace rule: %d %+v", st, r)
	}
	if st := e.do(t, "itall", "DELETE", fmt.Sprintf("/api/v1/alert-rules/%d", r.ID), nil, nil); st != http.StatusNoContent {
		t.Errorf("delete rule: %d", st)
	}
	seed, err := ParseRule([]byte(`{"name":"night in block A","facility":"f16","zone":"block-a","kinds":["camera_activity"],"severity":"high","schedule":{"from":"22:00","to":"06:00"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := e.svc.PutRule(context.Background(), registry.System("demo"), seed); err != nil || got.ID == 0 || got.UpdatedBy != "system:demo" {
		t.Fatalf("PutRule: %+v, %v", got, err)
	}
	if e.do(t, "op16", "GET", "/api/v1/alert-rules", nil, &rl); len(rl.Items) != 1 || rl.Items[0].Schedule == nil || rl.Items[0].Schedule.From != "22:00" {
		t.Errorf("seeded rule: %+v", rl.Items)
	}
	for _, act := range []string{"alert.rule.update", "alert.rule.delete"} {
		if n := len(e.auditRows(t, act)); n != 1 {
			t.Errorf("%d %s audit rows", n, act)
		}
	}
	if n := len(e.auditRows(t, "alert.rule.create")); n != 2 {
		t.Errorf("%d alert.rule.create audit rows, want 2", n)
	}

	// Maintenance silences the camera: its alert resolves.
	if st := e.do(t, "it16", "PUT", "/api/v1/maintenance/f27-c1", maintenanceInput{Note: "x"}, nil); st != http.StatusNotFound {
		t.Errorf("f16 IT puts an f27 camera in maintenance: %d", st)
	}
	if st := e.do(t, "it16", "PUT", "/api/v1/maintenance/f16-c1", maintenanceInput{}, nil); st != http.StatusUnprocessableEntity {
		t.Errorf("maintenance without a note: %d", st)
	}
	until := time.Now().Add(time.Hour)
	if st := e.do(t, "it16", "PUT", "/api/v1/maintenance/f16-c1", maintenanceInput{Note: "replacing the lens", Until: &until}, nil); st != 200 {
		t.Fatalf("maintenance: %d", st)
	}
	a := e.waitAlert(t, KindCameraClockOffset, "f16-c1", time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for {
		cur, _ := e.svc.store.get(context.Background(), a.ID)
		if cur.State == StateResolved && cur.ResolveNote == "camera in maintenance" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("alert of a camera in maintenance: %+v", cur)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var ml maintenanceList
	if e.do(t, "op16", "GET", "/api/v1/maintenance", nil, &ml); len(ml.Items) != 1 || ml.Items[0].SetBy != "it16" {
		t.Errorf("maintenance list %+v", ml.Items)
	}
	if st := e.do(t, "it16", "DELETE", "/api/v1/maintenance/f16-c1", nil, nil); st != http.StatusNoContent {
		t.Errorf("end maintenance: %d", st)
	}
	e.waitAlert(t, KindCameraClockOffset, "f16-c1", 5*time.Second)
	if n := len(e.auditRows(t, "alert.maintenance.start")) + len(e.auditRows(t, "alert.maintenance.end")); n != 2 {
		t.Errorf("%d maintenance audit rows, want 2", n)
	}
}

func TestHealthAPI(t *testing.T) {
	t.Parallel()
	e := newDBEnv(t, Config{Interval: 100 * time.Millisecond, HistoryInterval: 200 * time.Millisecond})
	e.health.set("f16-c2", func(c *fakeCam) { c.state, c.flowing = "offline", false })
	time.Sleep(1500 * time.Millisecond)
	var hl cameraHealthList
	if st := e.do(t, "it16", "GET", "/api/v1/health/cameras", nil, &hl); st != 200 {
		t.Fatalf("health: %d", st)
	}
	var ids []string
	for _, c := range hl.Items {
		ids = append(ids, c.ID)
		if c.ID == "f16-c2" && (c.LastError == nil || c.LastError.Reason != "timeout") {
			t.Errorf("f16-c2 last error %+v", c.LastError)
		}
	}
	if !slices.Equal(ids, []string{"f16-c1", "f16-c2"}) {
		t.Errorf("it16 sees cameras %v", ids)
	}
	if st := e.do(t, "op16", "GET", "/api/v1/health/cameras", nil, nil); st != http.StatusForbidden {
		t.Errorf("operator reads camera health: %d", st)
	}
	var h cameraHistory
	if st := e.do(t, "it16", "GET", "/api/v1/health/cameras/f16-c1/history", nil, &h); st != 200 || len(h.Samples) < 3 {
		t.Fatalf("history: %d, %d samples", st, len(h.Samples))
	}
	if h.Samples[0].FPS != 25 || h.Samples[0].State != "online" {
		t.Errorf("sample %+v", h.Samples[0])
	}
	if st := e.do(t, "it16", "GET", "/api/v1/health/cameras/f27-c1/history", nil, nil); st != http.StatusNotFound {
		t.Errorf("f16 IT reads f27 history: %d", st)
	}
	if st := e.do(t, "it16", "GET", "/api/v1/health/storage", nil, nil); st != http.StatusForbidden {
		t.Errorf("f16 IT reads node storage: %d", st)
	}
	var sh storageHealth
	if st := e.do(t, "itall", "GET", "/api/v1/health/storage", nil, &sh); st != 200 || !sh.Available || sh.SpoolQuota != 1000 {
		t.Errorf("storage: %d %+v", st, sh)
	}
	if st := e.do(t, "itall", "GET", "/api/v1/health/cameras?colour=red", nil, nil); st != http.StatusUnprocessableEntity {
		t.Errorf("unknown parameter: %d", st)
	}
}
