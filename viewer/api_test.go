package viewer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kuzet/kuzet/internal/migrate"
	"github.com/kuzet/kuzet/internal/testenv"
	"github.com/kuzet/kuzet/registry"
)

// apiHolds records the legal holds the registry places.
type apiHolds struct {
	mu       sync.Mutex
	placed   []apiHoldCall
	released []apiHoldCall
}

type apiHoldCall struct {
	Camera   string
	From, To time.Time
	Incident int64
}

func (h *apiHolds) PlaceHold(_ context.Context, camera string, from, to time.Time, _ string, incident int64) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.placed = append(h.placed, apiHoldCall{camera, from, to, incident})
	return nil
}

func (h *apiHolds) ReleaseHold(_ context.Context, camera string, incident int64) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.released = append(h.released, apiHoldCall{Camera: camera, Incident: incident})
	return nil
}

func (h *apiHolds) placedFor(incident int64) []apiHoldCall {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []apiHoldCall
	for _, c := range h.placed {
		if c.Incident == incident {
			out = append(out, c)
		}
	}
	return out
}

// apiFootage is a recording index with one recording and one gap per
// camera per query, and one event; it records the windows asked for.
type apiFootage struct {
	mu    sync.Mutex
	asked []apiHoldCall
}

func (f *apiFootage) Recordings(_ context.Context, camera string, from, to time.Time) ([]FootageRecording, error) {
	f.mu.Lock()
	f.asked = append(f.asked, apiHoldCall{Camera: camera, From: from, To: to})
	f.mu.Unlock()
	return []FootageRecording{{ID: camera + "/1", Start: from, End: from.Add(time.Minute), Bytes: 1000}}, nil
}

func (f *apiFootage) Gaps(_ context.Context, camera string, from, to time.Time) ([]FootageGap, error) {
	return []FootageGap{{Start: from.Add(time.Minute), End: from.Add(2 * time.Minute), Reason: "camera_offline"}}, nil
}

func (f *apiFootage) Events(_ context.Context, camera string, from, to time.Time) ([]FootageEvent, error) {
	return []FootageEvent{{ID: "e1", At: from.Add(30 * time.Second), Kind: "motion", Detail: "yard"}}, nil
}

func (f *apiFootage) windows(camera string) []apiHoldCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []apiHoldCall
	for _, c := range f.asked {
		if c.Camera == camera {
			out = append(out, c)
		}
	}
	return out
}

// apiFixture is an API over a fresh database with two facilities (f16, f27),
// each with zones yard and block-a, two cameras, a prisoner with movements
// and an incident; and, for every role, a user scoped to f16 and a user
// scoped to all facilities, each with an API token.
type apiFixture struct {
	api     *API
	mux     *http.ServeMux
	reg     *registry.Registry
	pool    *pgxpool.Pool
	url     string
	holds   *apiHolds
	footage *apiFootage
	// tokens[role][scope] is the bearer token of the user of that role
	// scoped to "f16" or "all"; users likewise; "root" holds every role.
	tokens    map[string]map[string]string
	users     map[string]map[string]registry.User
	passwords map[string]string
	root      string
	cameras   map[string]string // facility → a camera
	prisoners map[string]int64
	incidents map[string]int64
	// members[facility] is a user scoped to that facility (a target for
	// the user routes).
	members map[string]registry.User
	t0      time.Time
	seq     int
	seqMu   sync.Mutex
	// recorded is the footage behind playback and export (attachRecorded).
	recorded *fixtureRecorded
}

var apiSys = registry.System("test")

func newAPIFixture(t *testing.T) *apiFixture {
	t.Helper()
	ctx := context.Background()
	url := testenv.PostgresURL(t)
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if _, err := migrate.Apply(ctx, pool, registry.Migrations()); err != nil {
		t.Fatal(err)
	}
	holds := &apiHolds{}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg, err := registry.New(registry.Config{
		SecretKey:       []byte("0123456789abcdef0123456789abcdef"),
		Password:        registry.PasswordParams{Time: 1, MemoryKiB: 64, Threads: 1},
		LoginClientRate: 1000,
	}, pool, holds, log)
	if err != nil {
		t.Fatal(err)
	}
	fp := &apiFootage{}
	api, err := NewAPI(APIConfig{}, APIDeps{Registry: reg, Footage: fp, Events: fp, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	api.Register(mux)
	f := &apiFixture{api: api, mux: mux, reg: reg, pool: pool, url: url, holds: holds, footage: fp,
		tokens: map[string]map[string]string{}, users: map[string]map[string]registry.User{}, passwords: map[string]string{},
		cameras: map[string]string{}, prisoners: map[string]int64{}, incidents: map[string]int64{},
		members: map[string]registry.User{}, t0: time.Now().UTC().Add(-48 * time.Hour).Truncate(time.Second)}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, fac := range []string{"f16", "f27"} {
		name := "Facility " + fac
		_, err := reg.CreateFacility(ctx, apiSys, registry.FacilityInput{ID: fac, Name: &name})
		must(err)
		for _, z := range []string{"yard", "block-a"} {
			kind := "yard"
			if z == "block-a" {
				kind = "cell_block"
			}
			_, err := reg.CreateZone(ctx, apiSys, fac, registry.ZoneInput{ID: z, Name: &z, Kind: &kind})
			must(err)
		}
		for i, z := range []string{"yard", "yard", "block-a"} {
			id, u := fmt.Sprintf("%s-c%02d", fac, i+1), "rtsp://127.0.0.1:8554/cam/1"
			_, err := reg.CreateCamera(ctx, apiSys, registry.CameraInput{ID: id, Facility: &fac, Zone: &z, URL: &u,
				Credentials: &registry.Credentials{Username: "cam", Password: "cam-secret"}})
			must(err)
		}
		f.cameras[fac] = fac + "-c01"
		rn, full, risk, on, by, housing := fac+"-0001", "Prisoner of "+fac, "medium", "2025-01-01", "Board", "block-a"
		p, err := reg.CreatePrisoner(ctx, apiSys, registry.PrisonerInput{RegistrationNumber: rn, FullName: &full, Risk: &risk,
			RiskAssessedOn: &on, RiskAssessor: &by, Facility: &fac, HousingZone: &housing})
		must(err)
		f.prisoners[fac] = p.ID
		for _, m := range []registry.MovementInput{
			{Zone: "block-a", From: f.t0},
			{Zone: "yard", From: f.t0.Add(8 * time.Hour)},
			{Zone: "block-a", From: f.t0.Add(9 * time.Hour)},
		} {
			_, err := reg.RecordMovement(ctx, apiSys, p.ID, m)
			must(err)
		}
		typ, sev, desc, zones := "fight", "moderate", "fixture incident", []string{"yard"}
		start, end := f.t0.Add(8*time.Hour+10*time.Minute), f.t0.Add(8*time.Hour+20*time.Minute)
		inc, err := reg.CreateIncident(ctx, apiSys, registry.IncidentInput{Facility: &fac, Type: &typ, Severity: &sev,
			Start: &start, End: &end, Description: &desc, Zones: &zones, Prisoners: &[]int64{p.ID}})
		must(err)
		f.incidents[fac] = inc.ID
		f.members[fac] = f.newUser(t, "member-"+fac, []registry.Role{registry.RoleOperator}, []string{fac}, false, "")
	}
	for _, role := range registry.Roles() {
		f.tokens[string(role)] = map[string]string{}
		f.users[string(role)] = map[string]registry.User{}
		for _, scope := range []string{"f16", "all"} {
			name := string(role) + "-" + scope
			pw := "password of " + name
			var u registry.User
			if scope == "all" {
				u = f.newUser(t, name, []registry.Role{role}, nil, true, pw)
			} else {
				u = f.newUser(t, name, []registry.Role{role}, []string{"f16"}, false, pw)
			}
			f.users[string(role)][scope] = u
			f.passwords[name] = pw
			f.tokens[string(role)][scope] = f.newToken(t, u.ID)
		}
	}
	root := f.newUser(t, "root", registry.Roles(), nil, true, "")
	f.root = f.newToken(t, root.ID)
	f.attachRecorded(t)
	return f
}

func (f *apiFixture) newUser(t *testing.T, name string, roles []registry.Role, facilities []string, all bool, pw string) registry.User {
	t.Helper()
	in := registry.UserInput{Username: name, Roles: &roles, AllFacilities: &all}
	if facilities != nil {
		in.Facilities = &facilities
	}
	if pw != "" {
		in.Password = &pw
	}
	u, err := f.reg.CreateUser(context.Background(), apiSys, in)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func (f *apiFixture) newToken(t *testing.T, user int64) string {
	t.Helper()
	secret, _, err := f.reg.CreateToken(context.Background(), apiSys, user, registry.TokenInput{Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return secret
}

func (f *apiFixture) next() int {
	f.seqMu.Lock()
	defer f.seqMu.Unlock()
	f.seq++
	return f.seq
}

// apiResp is a recorded response.
type apiResp struct {
	code   int
	header http.Header
	body   []byte
}

func (r apiResp) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("response %d %s: %v", r.code, r.body, err)
	}
}

// do sends a request with a bearer token (none when token is "") and a
// body: nil, []byte/string (sent as is) or a value (sent as JSON).
func (f *apiFixture) do(t *testing.T, token, method, path string, body any, hdr ...string) apiResp {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	default:
		js, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(js)
	}
	req := httptest.NewRequest(method, path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	f.mux.ServeHTTP(rec, req)
	return apiResp{code: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
}

// apiProblemOK checks r is a problem response with a 4xx status.
func apiProblemOK(t *testing.T, what string, r apiResp) {
	t.Helper()
	if r.code < 400 || r.code > 499 {
		t.Errorf("%s: status %d, want 4xx: %s", what, r.code, r.body)
		return
	}
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("%s: content type %q, want application/problem+json", what, ct)
		return
	}
	var p apiProblem
	if err := json.Unmarshal(r.body, &p); err != nil || p.Status != r.code || p.Type == "" || p.Title == "" {
		t.Errorf("%s: problem body %s (%v)", what, r.body, err)
	}
}
