package registry

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// DemoLogin is a demo user and its password, for `kuzet demo` to print.
type DemoLogin struct {
	Username   string
	Password   string
	Roles      []Role
	Facilities []string // nil for all facilities
}

// demoFacility describes one seeded facility.
type demoFacility struct {
	id, name string
}

func demoFacilities() []demoFacility {
	return []demoFacility{
		{"f16", "Correctional Facility No. 16"},
		{"f27", "Correctional Facility No. 27"},
		{"f47", "Correctional Facility No. 47"},
	}
}

func demoZones() []ZoneInput {
	z := func(id, name, kind string) ZoneInput { return ZoneInput{ID: id, Name: &name, Kind: &kind} }
	return []ZoneInput{
		z("block-a", "Cell block A", "cell_block"),
		z("block-b", "Cell block B", "cell_block"),
		z("corridor-1", "Main corridor", "corridor"),
		z("yard", "Exercise yard", "yard"),
		z("workshop", "Workshop", "workshop"),
		z("visiting", "Visiting room", "visiting_room"),
		z("medical", "Medical unit", "medical"),
	}
}

// demoCameraZones are the zones of cameras c01..c04 of each facility.
func demoCameraZones() []string { return []string{"corridor-1", "yard", "block-a", "visiting"} }

var demoGiven = []string{"Arman", "Bolat", "Daniyar", "Yerlan", "Marat", "Nurlan", "Ruslan", "Serik", "Timur", "Zhanibek"}
var demoFamily = []string{"Abenov", "Bekov", "Dzhaksybekov", "Yesimov", "Kasymov", "Nurpeisov", "Omarov", "Sadykov", "Tulegenov", "Zhunusov"}

// SeedDemo fills the registry with the demo data, idempotently: facilities
// f16, f27 and f47 with their zones; four cameras each (f16-c01 ... f47-c04)
// pointing at the camera simulator as camsimBaseURL/cam/N, N = 1 ... 12;
// thirty prisoners with risk classes and movement histories; a few
// incidents, one of them serious (which places a legal hold through the
// HoldPlacer); and one user per role plus an operator of each facility and
// an investigator of f16. Records already present are left as they are;
// the demo users get a fresh random password on every run, returned here.
// camsimBaseURL is rtsp://HOST:PORT.
func SeedDemo(ctx context.Context, reg *Registry, camsimBaseURL string) ([]DemoLogin, error) {
	base := strings.TrimRight(camsimBaseURL, "/")
	if err := checkRTSPURL(base + "/cam/1"); err != nil {
		return nil, fmt.Errorf("demo: camera simulator URL %q: %w", camsimBaseURL, err)
	}
	act := System("demo-seed")
	now := reg.now()
	n := 0
	for _, f := range demoFacilities() {
		if _, err := reg.Facility(ctx, f.id); errors.Is(err, ErrNotFound) {
			tz := "Asia/Almaty"
			if _, err := reg.CreateFacility(ctx, act, FacilityInput{ID: f.id, Name: &f.name, Timezone: &tz}); err != nil {
				return nil, fmt.Errorf("demo: %w", err)
			}
		} else if err != nil {
			return nil, fmt.Errorf("demo: %w", err)
		}
		for _, z := range demoZones() {
			if _, err := reg.Zone(ctx, f.id, z.ID); errors.Is(err, ErrNotFound) {
				if _, err := reg.CreateZone(ctx, act, f.id, z); err != nil {
					return nil, fmt.Errorf("demo: %w", err)
				}
			} else if err != nil {
				return nil, fmt.Errorf("demo: %w", err)
			}
		}
		for i, zone := range demoCameraZones() {
			n++
			id := fmt.Sprintf("%s-c%02d", f.id, i+1)
			name := fmt.Sprintf("%s camera %d", strings.ToUpper(f.id), i+1)
			url := fmt.Sprintf("%s/cam/%d", base, n)
			class := "standard"
			fid, zid := f.id, zone
			if _, err := reg.Camera(ctx, id); errors.Is(err, ErrNotFound) {
				if _, err := reg.CreateCamera(ctx, act, CameraInput{ID: id, Facility: &fid, Zone: &zid, Name: &name,
					URL: &url, RetentionClass: &class}); err != nil {
					return nil, fmt.Errorf("demo: %w", err)
				}
			} else if err != nil {
				return nil, fmt.Errorf("demo: %w", err)
			}
		}
	}
	if err := seedDemoPrisoners(ctx, reg, act, now); err != nil {
		return nil, err
	}
	logins, err := seedDemoUsers(ctx, reg, act)
	if err != nil {
		return nil, err
	}
	if err := seedDemoIncidents(ctx, reg, act, now); err != nil {
		return nil, err
	}
	return logins, nil
}

func seedDemoPrisoners(ctx context.Context, reg *Registry, act Actor, now time.Time) error {
	risks := []string{"low", "low", "medium", "low", "high", "medium", "low", "medium", "high", "low"}
	day := now.Truncate(24 * time.Hour)
	for fi, f := range demoFacilities() {
		for i := range 10 {
			reg_ := fmt.Sprintf("%s-%04d", strings.TrimPrefix(f.id, "f"), i+1)
			var exists bool
			if err := reg.pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM prisoners WHERE registration_number = $1)", reg_).Scan(&exists); err != nil {
				return fmt.Errorf("demo: %w", err)
			}
			if exists {
				continue
			}
			name := demoGiven[(i+fi*3)%len(demoGiven)] + " " + demoFamily[(i*7+fi)%len(demoFamily)]
			risk := risks[(i+fi)%len(risks)]
			assessed := day.AddDate(0, -1-i%6, -i).Format(DateLayout)
			assessor := "Risk assessment board " + strings.ToUpper(f.id)
			fid := f.id
			housing := "block-a"
			if i%2 == 1 {
				housing = "block-b"
			}
			p, err := reg.CreatePrisoner(ctx, act, PrisonerInput{RegistrationNumber: reg_, FullName: &name, Risk: &risk,
				RiskAssessedOn: &assessed, RiskAssessor: &assessor, Facility: &fid, HousingZone: &housing})
			if err != nil {
				return fmt.Errorf("demo: %w", err)
			}
			// Two days of routine: the block, the yard in the morning, the
			// workshop or medical unit, back to the block; now in the block.
			start := day.AddDate(0, 0, -2)
			stays := []struct {
				zone string
				at   time.Duration
			}{
				{housing, 0},
				{"yard", 8 * time.Hour},
				{"workshop", 9*time.Hour + time.Duration(i)*time.Minute},
				{housing, 13 * time.Hour},
				{"yard", 32 * time.Hour},
				{"medical", 33 * time.Hour},
				{housing, 35 * time.Hour},
			}
			if i%3 == 0 {
				stays[5].zone = "visiting"
			}
			for _, s := range stays {
				if _, err := reg.RecordMovement(ctx, act, p.ID, MovementInput{Zone: s.zone, From: start.Add(s.at)}); err != nil {
					return fmt.Errorf("demo: prisoner %s: %w", reg_, err)
				}
			}
		}
	}
	return nil
}

func seedDemoUsers(ctx context.Context, reg *Registry, act Actor) ([]DemoLogin, error) {
	specs := []DemoLogin{
		{Username: "admin", Roles: []Role{RoleAdmin}},
		{Username: "it", Roles: []Role{RoleIT}},
		{Username: "auditor", Roles: []Role{RoleAuditor}},
		{Username: "investigator-f16", Roles: []Role{RoleInvestigator}, Facilities: []string{"f16"}},
		{Username: "operator-f16", Roles: []Role{RoleOperator}, Facilities: []string{"f16"}},
		{Username: "operator-f27", Roles: []Role{RoleOperator}, Facilities: []string{"f27"}},
		{Username: "operator-f47", Roles: []Role{RoleOperator}, Facilities: []string{"f47"}},
	}
	var out []DemoLogin
	for _, s := range specs {
		pw, err := randomToken(12)
		if err != nil {
			return nil, err
		}
		roles := s.Roles
		all := s.Facilities == nil
		facilities := s.Facilities
		if facilities == nil {
			facilities = []string{}
		}
		display := "Demo " + s.Username
		var id int64
		err = reg.pool.QueryRow(ctx, "SELECT id FROM users WHERE username = $1", s.Username).Scan(&id)
		switch {
		case err == nil:
			if _, err := reg.UpdateUser(ctx, act, id, UserInput{Password: &pw}); err != nil {
				return nil, fmt.Errorf("demo: user %s: %w", s.Username, err)
			}
		case errors.Is(err, pgx.ErrNoRows):
			if _, err := reg.CreateUser(ctx, act, UserInput{Username: s.Username, DisplayName: &display, Password: &pw,
				Roles: &roles, Facilities: &facilities, AllFacilities: &all}); err != nil {
				return nil, fmt.Errorf("demo: user %s: %w", s.Username, err)
			}
		default:
			return nil, fmt.Errorf("demo: user %s: %w", s.Username, err)
		}
		s.Password = pw
		out = append(out, s)
	}
	return out, nil
}

// demoMark starts the description of every demo incident, to find them again.
const demoMark = "[demo] "

func seedDemoIncidents(ctx context.Context, reg *Registry, act Actor, now time.Time) error {
	type spec struct {
		facility, typ, severity, status, zone, desc string
		ago, dur                                    time.Duration
		prisoners                                   []string
	}
	specs := []spec{
		{"f16", "fight", "serious", "under_investigation", "yard", "Fight in the exercise yard between two prisoners; one taken to the medical unit.",
			90 * time.Minute, 6 * time.Minute, []string{"16-0002", "16-0005"}},
		{"f16", "contraband", "minor", "closed", "visiting", "Package handed over during a visit; seized.",
			26 * time.Hour, 3 * time.Minute, []string{"16-0004"}},
		{"f27", "disturbance", "moderate", "open", "corridor-1", "Shouting and banging on doors in the main corridor.",
			5 * time.Hour, 20 * time.Minute, nil},
		{"f47", "medical", "minor", "closed", "block-a", "Prisoner unwell in cell block A; seen by the medical unit.",
			30 * time.Hour, 10 * time.Minute, []string{"47-0003"}},
	}
	for _, s := range specs {
		desc := demoMark + s.desc
		var exists bool
		if err := reg.pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM incidents WHERE description = $1)", desc).Scan(&exists); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		if exists {
			continue
		}
		var prisoners []int64
		for _, rn := range s.prisoners {
			var id int64
			if err := reg.pool.QueryRow(ctx, "SELECT id FROM prisoners WHERE registration_number = $1", rn).Scan(&id); err != nil {
				return fmt.Errorf("demo: prisoner %s: %w", rn, err)
			}
			prisoners = append(prisoners, id)
		}
		start := now.Add(-s.ago).Truncate(time.Second)
		end := start.Add(s.dur)
		zones := []string{s.zone}
		in := IncidentInput{Facility: &s.facility, Type: &s.typ, Severity: &s.severity, Status: &s.status,
			Start: &start, End: &end, Description: &desc, Zones: &zones, Prisoners: &prisoners}
		if _, err := reg.CreateIncident(ctx, act, in); err != nil {
			return fmt.Errorf("demo: incident: %w", err)
		}
	}
	return nil
}
