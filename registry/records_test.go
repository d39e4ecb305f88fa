package registry

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestCameraCredentialsAreSealedAndNeverListed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.seedBasic(t)
	ctx := context.Background()
	cam, err := e.reg.CreateCamera(ctx, admin, CameraInput{ID: "f16-c09", Facility: ptr("f16"), Zone: ptr("yard"),
		URL: ptr("rtsp://10.0.0.9/stream1"), Credentials: &Credentials{Username: "viewer", Password: "s3cret-pass"}})
	if err != nil {
		t.Fatal(err)
	}
	if !cam.HasCredentials || cam.RetentionClass != "standard" || cam.RetentionDays != 31 || !cam.Enabled || cam.Name != "f16-c09" {
		t.Fatalf("camera %+v", cam)
	}
	var sealed []byte
	if err := e.pool.QueryRow(ctx, "SELECT credentials FROM cameras WHERE id = 'f16-c09'").Scan(&sealed); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("s3cret-pass")) || bytes.Contains(sealed, []byte("viewer")) {
		t.Fatal("credentials stored in clear")
	}
	srcs, err := e.reg.CameraSources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, s := range srcs {
		if s.ID == "f16-c09" {
			found = s.Credentials != nil && s.Credentials.Password == "s3cret-pass" && s.Credentials.Username == "viewer"
		}
	}
	if !found {
		t.Fatal("credentials do not open for ingest")
	}
	// Sealed to the camera: copying them to another camera does not open.
	if _, err := e.pool.Exec(ctx, "UPDATE cameras SET credentials = $1 WHERE id = 'f16-c01'", sealed); err != nil {
		t.Fatal(err)
	}
	if _, err := e.reg.CameraSources(ctx); err == nil || !strings.Contains(err.Error(), "f16-c01") {
		t.Fatalf("copied credentials: %v", err)
	}
	// Another key does not open them; no key refuses new credentials.
	other := newEnv(t, func(c *Config) { c.SecretKey = nil })
	other.seedBasic(t)
	if _, err := other.reg.UpdateCamera(ctx, admin, "f16-c01", CameraInput{Credentials: &Credentials{Username: "u", Password: "p"}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("credentials without a key: %v", err)
	}
	// Clearing.
	cam, err = e.reg.UpdateCamera(ctx, admin, "f16-c09", CameraInput{ClearCredentials: true})
	if err != nil || cam.HasCredentials {
		t.Fatalf("clear: %+v %v", cam, err)
	}
}

func TestCameraValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.seedBasic(t)
	ctx := context.Background()
	bad := map[string]CameraInput{
		"bad id":          {ID: "f16 c1", Facility: ptr("f16"), Zone: ptr("yard"), URL: ptr("rtsp://h/x")},
		"http url":        {ID: "x1", Facility: ptr("f16"), Zone: ptr("yard"), URL: ptr("http://h/x")},
		"userinfo in url": {ID: "x1", Facility: ptr("f16"), Zone: ptr("yard"), URL: ptr("rtsp://u:p@h/x")},
		"zone of other":   {ID: "x1", Facility: ptr("f16"), Zone: ptr("nowhere"), URL: ptr("rtsp://h/x")},
		"no facility":     {ID: "x1", Facility: ptr("f99"), Zone: ptr("yard"), URL: ptr("rtsp://h/x")},
		"retention":       {ID: "x1", Facility: ptr("f16"), Zone: ptr("yard"), URL: ptr("rtsp://h/x"), RetentionDays: ptr(0)},
		"class":           {ID: "x1", Facility: ptr("f16"), Zone: ptr("yard"), URL: ptr("rtsp://h/x"), RetentionClass: ptr("forever")},
		"NUL name":        {ID: "x1", Facility: ptr("f16"), Zone: ptr("yard"), URL: ptr("rtsp://h/x"), Name: ptr("a\x00")},
		"missing url":     {ID: "x1", Facility: ptr("f16"), Zone: ptr("yard")},
	}
	for name, in := range bad {
		if _, err := e.reg.CreateCamera(ctx, admin, in); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := e.reg.CreateCamera(ctx, admin, CameraInput{ID: "f16-c01", Facility: ptr("f16"), Zone: ptr("yard"), URL: ptr("rtsp://h/x")}); !errors.Is(err, ErrConflict) {
		t.Errorf("duplicate: %v", err)
	}
	// Moving to another facility needs a zone there.
	if _, err := e.reg.UpdateCamera(ctx, admin, "f16-c01", CameraInput{Facility: ptr("f27")}); err != nil {
		t.Errorf("move to f27 (same zone name exists): %v", err)
	}
	if _, err := e.reg.UpdateCamera(ctx, admin, "nope", CameraInput{Name: ptr("x")}); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown camera: %v", err)
	}
}

func TestSeriousIncidentPlacesHoldsOnItsCameras(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.seedBasic(t)
	ctx := context.Background()
	start := time.Date(2025, 3, 10, 9, 0, 0, 0, time.UTC)
	end := start.Add(20 * time.Minute)
	// A moderate incident places no hold.
	inc, err := e.reg.CreateIncident(ctx, admin, IncidentInput{Facility: ptr("f16"), Type: ptr("fight"), Severity: ptr("moderate"),
		Start: &start, End: &end, Description: ptr("scuffle"), Zones: &[]string{"yard"}})
	if err != nil {
		t.Fatal(err)
	}
	if placed, _ := e.holds.calls(); len(placed) != 0 || inc.LegalHold {
		t.Fatalf("moderate incident placed holds: %v", placed)
	}
	if !slices.Equal(inc.Cameras, []string{"f16-c01", "f16-c02"}) {
		t.Fatalf("cameras from zone yard: %v", inc.Cameras)
	}
	// Raising it to serious places the hold: start-2h .. end+2h.
	inc, err = e.reg.UpdateIncident(ctx, admin, inc.ID, IncidentInput{Severity: ptr("serious")})
	if err != nil {
		t.Fatal(err)
	}
	placed, _ := e.holds.calls()
	want := []holdCall{
		{"f16-c01", start.Add(-2 * time.Hour), end.Add(2 * time.Hour), placed[0].Reason, inc.ID},
		{"f16-c02", start.Add(-2 * time.Hour), end.Add(2 * time.Hour), placed[0].Reason, inc.ID},
	}
	if !slices.EqualFunc(placed, want, holdEq) || !inc.LegalHold {
		t.Fatalf("holds on raise: %+v, want %+v", placed, want)
	}
	// A new serious incident with a hand-adjusted camera set.
	inc2, err := e.reg.CreateIncident(ctx, admin, IncidentInput{Facility: ptr("f16"), Type: ptr("assault"), Severity: ptr("critical"),
		Start: &start, End: &end, Description: ptr("assault in block A"), Zones: &[]string{"block-a"},
		CamerasIncluded: &[]string{"f16-c01"}})
	if err != nil {
		t.Fatal(err)
	}
	placed, _ = e.holds.calls()
	placed = placed[2:]
	if !slices.Equal(inc2.Cameras, []string{"f16-c01", "f16-c03"}) || len(placed) != 2 ||
		placed[0].Camera != "f16-c01" || placed[1].Camera != "f16-c03" || placed[1].Incident != inc2.ID ||
		!placed[1].From.Equal(start.Add(-2*time.Hour)) || !placed[1].To.Equal(end.Add(2*time.Hour)) {
		t.Fatalf("holds on create: %+v cameras %v", placed, inc2.Cameras)
	}
	// Extending the end widens the hold; excluding a camera keeps its hold.
	end2 := end.Add(time.Hour)
	if _, err := e.reg.UpdateIncident(ctx, admin, inc2.ID, IncidentInput{End: &end2, CamerasExcluded: &[]string{"f16-c03"}, CamerasIncluded: &[]string{}}); err != nil {
		t.Fatal(err)
	}
	holds, err := e.reg.Holds(ctx, inc2.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(holds) != 2 || !holds["f16-c03"][1].Equal(end.Add(2*time.Hour)) {
		t.Fatalf("holds after update: %v", holds)
	}
	// Releasing needs a reason and releases every camera held.
	if _, err := e.reg.ReleaseHold(ctx, admin, inc2.ID, ""); !errors.Is(err, ErrInvalid) {
		t.Fatalf("release without reason: %v", err)
	}
	if _, err := e.reg.ReleaseHold(ctx, admin, inc2.ID, "court case closed"); err != nil {
		t.Fatal(err)
	}
	_, released := e.holds.calls()
	if len(released) != 2 {
		t.Fatalf("released %+v", released)
	}
	// A hold that fails aborts the incident: nothing is created.
	e.holds.fail = errors.New("recorder down")
	_, err = e.reg.CreateIncident(ctx, admin, IncidentInput{Facility: ptr("f16"), Type: ptr("fire"), Severity: ptr("critical"),
		Start: &start, Description: ptr("fire"), Zones: &[]string{"yard"}})
	if !errors.Is(err, ErrHold) {
		t.Fatalf("failed hold: %v", err)
	}
	list, err := e.reg.ListIncidents(ctx, Scope{All: true}, IncidentFilter{Type: "fire"}, Page{})
	if err != nil || len(list) != 0 {
		t.Fatalf("incident created despite failed hold: %v %v", list, err)
	}
	rows, err := e.reg.Audit().List(ctx, AuditFilter{AnyFacility: true, Action: AuditHoldPlace})
	if err != nil || len(rows) != 4 {
		t.Fatalf("hold.place audit rows: %d %v", len(rows), err)
	}
}

func holdEq(a, b holdCall) bool {
	return a.Camera == b.Camera && a.From.Equal(b.From) && a.To.Equal(b.To) && a.Incident == b.Incident && a.Reason != ""
}

func TestIncidentValidationAndFilters(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.seedBasic(t)
	ctx := context.Background()
	inv := e.user(t, "inv", "", []Role{RoleInvestigator}, "f16")
	op := e.user(t, "op", "", []Role{RoleOperator}, "f16")
	start := time.Date(2025, 3, 9, 9, 0, 0, 0, time.UTC)
	base := func() IncidentInput {
		return IncidentInput{Facility: ptr("f16"), Type: ptr("fight"), Severity: ptr("minor"), Start: &start, Description: ptr("d")}
	}
	bad := map[string]func(*IncidentInput){
		"zone of other facility":   func(in *IncidentInput) { in.Zones = &[]string{"nowhere"} },
		"camera of other":          func(in *IncidentInput) { in.CamerasIncluded = &[]string{"f27-c01"} },
		"operator as investigator": func(in *IncidentInput) { in.Investigators = &[]int64{op.ID} },
		"unknown staff":            func(in *IncidentInput) { in.InvolvedStaff = &[]int64{99999} },
		"unknown prisoner":         func(in *IncidentInput) { in.Prisoners = &[]int64{99999} },
		"end before start":         func(in *IncidentInput) { in.End = ptr(start.Add(-time.Second)) },
		"future":                   func(in *IncidentInput) { in.Start = ptr(start.AddDate(1, 0, 0)) },
		"severity":                 func(in *IncidentInput) { in.Severity = ptr("apocalyptic") },
		"status":                   func(in *IncidentInput) { in.Status = ptr("gone") },
		"dup zone":                 func(in *IncidentInput) { in.Zones = &[]string{"yard", "yard"} },
		"no description":           func(in *IncidentInput) { in.Description = nil },
	}
	for name, m := range bad {
		in := base()
		m(&in)
		if _, err := e.reg.CreateIncident(ctx, admin, in); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
	in := base()
	in.Investigators = &[]int64{inv.ID}
	in.InvolvedStaff = &[]int64{op.ID}
	a, err := e.reg.CreateIncident(ctx, admin, in)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a.Resource().InvolvedStaff, []int64{op.ID}) || a.Status != "open" {
		t.Fatalf("incident %+v", a)
	}
	in = base()
	in.Facility = ptr("f27")
	in.Start = ptr(start.Add(-48 * time.Hour))
	in.End = ptr(start.Add(-47 * time.Hour))
	in.Status = ptr("closed")
	if _, err := e.reg.CreateIncident(ctx, admin, in); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		s    Scope
		f    IncidentFilter
		want int
	}{
		"all":              {Scope{All: true}, IncidentFilter{}, 2},
		"scope f16":        {Scope{Facilities: []string{"f16"}}, IncidentFilter{}, 1},
		"filter outside":   {Scope{Facilities: []string{"f16"}}, IncidentFilter{Facility: "f27"}, 0},
		"status closed":    {Scope{All: true}, IncidentFilter{Status: "closed"}, 1},
		"time before both": {Scope{All: true}, IncidentFilter{To: start.Add(-72 * time.Hour)}, 0},
		"time open-ended":  {Scope{All: true}, IncidentFilter{From: start.Add(time.Hour)}, 1},
	} {
		got, err := e.reg.ListIncidents(ctx, tc.s, tc.f, Page{})
		if err != nil || len(got) != tc.want {
			t.Errorf("%s: %d incidents, want %d (%v)", name, len(got), tc.want, err)
		}
	}
}

func TestPrisonerMovements(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.seedBasic(t)
	ctx := context.Background()
	p, err := e.reg.CreatePrisoner(ctx, admin, PrisonerInput{RegistrationNumber: "16-0001", FullName: ptr("A B"), Risk: ptr("high"),
		RiskAssessedOn: ptr("2025-01-02"), RiskAssessor: ptr("Board"), Facility: ptr("f16"), HousingZone: ptr("block-a")})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2025, 3, 9, 0, 0, 0, 0, time.UTC)
	for _, m := range []MovementInput{
		{Zone: "block-a", From: t0},
		{Zone: "yard", From: t0.Add(8 * time.Hour)},
		{Zone: "block-a", From: t0.Add(9 * time.Hour)},
	} {
		if _, err := e.reg.RecordMovement(ctx, admin, p.ID, m); err != nil {
			t.Fatal(err)
		}
	}
	ms, err := e.reg.Movements(ctx, p.ID, t0.Add(7*time.Hour), t0.Add(10*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 3 || ms[1].Zone != "yard" || !ms[1].To.Equal(t0.Add(9*time.Hour)) || ms[2].To != nil {
		t.Fatalf("movements %+v", ms)
	}
	for name, m := range map[string]MovementInput{
		"overlapping past stay": {Zone: "yard", From: t0.Add(8*time.Hour + 30*time.Minute), To: ptr(t0.Add(10 * time.Hour))},
		"before current start":  {Zone: "yard", From: t0.Add(8 * time.Hour)},
		"unknown zone":          {Zone: "nowhere", From: t0.Add(20 * time.Hour)},
		"future":                {Zone: "yard", From: t0.AddDate(0, 1, 0)},
	} {
		if _, err := e.reg.RecordMovement(ctx, admin, p.ID, m); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Risk changes need a fresh assessment.
	if _, err := e.reg.UpdatePrisoner(ctx, admin, p.ID, PrisonerInput{Risk: ptr("low")}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("risk change without assessment: %v", err)
	}
	got, err := e.reg.UpdatePrisoner(ctx, admin, p.ID, PrisonerInput{Risk: ptr("low"), RiskAssessedOn: ptr("2025-03-01"), RiskAssessor: ptr("Dr K")})
	if err != nil || got.Risk != "low" || got.RiskAssessedOn != "2025-03-01" {
		t.Fatalf("risk change: %+v %v", got, err)
	}
	list, err := e.reg.ListPrisoners(ctx, Scope{Facilities: []string{"f16"}}, PrisonerFilter{Risk: "low", Zone: "block-a"}, Page{})
	if err != nil || len(list) != 1 {
		t.Fatalf("filter: %v %v", list, err)
	}
	list, err = e.reg.ListPrisoners(ctx, Scope{Facilities: []string{"f27"}}, PrisonerFilter{}, Page{})
	if err != nil || len(list) != 0 {
		t.Fatalf("scope: %v %v", list, err)
	}
}

func TestSeedDemoIsIdempotent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	counts := func() map[string]int {
		out := map[string]int{}
		for _, tbl := range []string{"facilities", "zones", "cameras", "prisoners", "prisoner_movements", "incidents", "users"} {
			var n int
			if err := e.pool.QueryRow(ctx, "SELECT count(*) FROM "+tbl).Scan(&n); err != nil {
				t.Fatal(err)
			}
			out[tbl] = n
		}
		return out
	}
	logins, err := SeedDemo(ctx, e.reg, "rtsp://127.0.0.1:8554")
	if err != nil {
		t.Fatal(err)
	}
	first := counts()
	if first["facilities"] != 3 || first["cameras"] < 12 || first["prisoners"] != 30 || first["incidents"] < 3 || first["users"] != 7 {
		t.Fatalf("seeded %v", first)
	}
	var n12 string
	if err := e.pool.QueryRow(ctx, "SELECT rtsp_url FROM cameras WHERE id = 'f47-c04'").Scan(&n12); err != nil || n12 != "rtsp://127.0.0.1:8554/cam/12" {
		t.Fatalf("f47-c04 url %q %v", n12, err)
	}
	placed, _ := e.holds.calls()
	if len(placed) == 0 {
		t.Fatal("the serious demo incident placed no hold")
	}
	roles := map[Role]bool{}
	for _, l := range logins {
		for _, r := range l.Roles {
			roles[r] = true
		}
		if _, err := e.reg.Login(ctx, l.Username, l.Password, "demo"); err != nil {
			t.Fatalf("demo login %s: %v", l.Username, err)
		}
	}
	if len(roles) != 5 {
		t.Fatalf("demo roles %v", roles)
	}
	logins2, err := SeedDemo(ctx, e.reg, "rtsp://127.0.0.1:8554")
	if err != nil {
		t.Fatal(err)
	}
	if again := counts(); !mapsEqual(first, again) {
		t.Fatalf("second seed changed counts: %v -> %v", first, again)
	}
	if _, err := e.reg.Login(ctx, logins2[0].Username, logins2[0].Password, "demo"); err != nil {
		t.Fatalf("re-seeded login: %v", err)
	}
	if _, err := VerifyAudit(ctx, e.pool); err != nil {
		t.Fatal(err)
	}
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
