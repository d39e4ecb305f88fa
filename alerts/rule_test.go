package alerts

import (
	"bytes"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kuzet/kuzet/registry"
)

// ruleCases feed TestParseRule and the fuzz seeds.
var ruleCases = []struct {
	name string
	doc  string
	bad  []string // fields rejected; nil for a valid rule
}{
	{name: "night activity", doc: `{"name":"night in block A","facility":"f16","zone":"block-a","kinds":["camera_activity"],"severity":"high","schedule":{"from":"22:00","to":"06:00","timezone":"Europe/Vilnius"}}`},
	{name: "camera mute weekdays", doc: `{"name":"workshop hours","camera":"f16-c07","kinds":["camera_offline"],"mute":true,"schedule":{"days":["mon","tue","wed","thu","fri"],"from":"07:00","to":"17:30"}}`},
	{name: "global escalation", doc: `{"name":"page fast","severity":"critical","kinds":["store_unreachable","database_unreachable"],"escalate_after":"1m"}`},
	{name: "empty name", doc: `{"name":""}`, bad: []string{"name"}},
	{name: "zone without facility", doc: `{"name":"x","zone":"yard"}`, bad: []string{"zone"}},
	{name: "zone and camera", doc: `{"name":"x","facility":"f16","zone":"yard","camera":"c1"}`, bad: []string{"zone"}},
	{name: "bad ids", doc: `{"name":"x","facility":"F 16","camera":"../c"}`, bad: []string{"facility", "camera"}},
	{name: "bad kind", doc: `{"name":"x","kinds":["camera_offline","fire","camera_offline"]}`, bad: []string{"kinds[1]", "kinds[2]"}},
	{name: "bad severity", doc: `{"name":"x","severity":"urgent"}`, bad: []string{"severity"}},
	{name: "mute with severity", doc: `{"name":"x","mute":true,"severity":"low"}`, bad: []string{"severity"}},
	{name: "bad schedule", doc: `{"name":"x","schedule":{"days":["mon","funday","mon"],"from":"24:00","to":"6:00","timezone":"../../etc/passwd"}}`,
		bad: []string{"schedule.from", "schedule.to", "schedule.days[1]", "schedule.days[2]", "schedule.timezone"}},
	{name: "unknown zone name", doc: `{"name":"x","schedule":{"from":"00:00","to":"00:00","timezone":"Mars/Olympus"}}`, bad: []string{"schedule.timezone"}},
	{name: "bad escalation", doc: `{"name":"x","escalate_after":"-5m"}`, bad: []string{"escalate_after"}},
	{name: "unknown field", doc: `{"name":"x","colour":"red"}`, bad: []string{""}},
	{name: "trailing data", doc: `{"name":"x"} {}`, bad: []string{""}},
	{name: "not an object", doc: `["name"]`, bad: []string{""}},
	{name: "NUL in name", doc: `{"name":"a\u0000b"}`, bad: []string{"name"}},
}

func TestParseRule(t *testing.T) {
	for _, tc := range ruleCases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ParseRule([]byte(tc.doc))
			if tc.bad == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if r.Name == "" {
					t.Fatal("no name")
				}
				return
			}
			var ve *registry.ValidationError
			if !errors.As(err, &ve) || !errors.Is(err, registry.ErrInvalid) {
				t.Fatalf("err %v, want a validation error", err)
			}
			got := map[string]bool{}
			for _, f := range ve.Fields {
				got[f.Field] = true
			}
			for _, f := range tc.bad {
				if !got[f] {
					t.Errorf("field %q not rejected; got %+v", f, ve.Fields)
				}
			}
		})
	}
	if _, err := ParseRule([]byte(`{"name":"` + strings.Repeat("a", MaxRuleBytes) + `"}`)); err == nil {
		t.Error("oversize rule accepted")
	}
}

func FuzzParseRule(f *testing.F) {
	for _, tc := range ruleCases {
		f.Add([]byte(tc.doc))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRule(b)
		if err != nil {
			return
		}
		// A valid rule survives its own round trip and can be evaluated.
		doc, err := ruleDoc(r)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseRule(doc); err != nil {
			t.Fatalf("round trip of %s refused: %v", doc, err)
		}
		for _, k := range Kinds() {
			decide([]Rule{r}, k, "", place{camera: r.Camera, zone: r.Zone, facility: r.Facility}, time.Unix(1700000000, 0))
		}
	})
}

func mustRule(t *testing.T, id int64, doc string) Rule {
	t.Helper()
	r, err := ParseRule([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	r.ID = id
	return r
}

func TestScheduleActive(t *testing.T) {
	vilnius, _ := time.LoadLocation("Europe/Vilnius")
	utc := func(s string) time.Time {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			panic(err)
		}
		return t
	}
	cases := []struct {
		name  string
		sched string
		at    string
		def   *time.Location
		want  bool
	}{
		{"night, evening", `{"from":"22:00","to":"06:00"}`, "2025-03-03T23:30:00Z", nil, true},
		{"night, morning", `{"from":"22:00","to":"06:00"}`, "2025-03-04T05:59:00Z", nil, true},
		{"night, day", `{"from":"22:00","to":"06:00"}`, "2025-03-04T06:00:00Z", nil, false},
		{"night in Vilnius by facility zone", `{"from":"22:00","to":"06:00"}`, "2025-03-03T20:30:00Z", vilnius, true},
		{"night in Vilnius by rule zone", `{"from":"22:00","to":"06:00","timezone":"Europe/Vilnius"}`, "2025-03-03T19:30:00Z", time.UTC, false},
		{"friday night belongs to friday", `{"days":["fri"],"from":"22:00","to":"06:00"}`, "2025-03-08T03:00:00Z", nil, true},
		{"saturday night not", `{"days":["fri"],"from":"22:00","to":"06:00"}`, "2025-03-09T03:00:00Z", nil, false},
		{"office hours", `{"days":["mon","tue","wed","thu","fri"],"from":"08:00","to":"17:00"}`, "2025-03-05T12:00:00Z", nil, true},
		{"office hours sunday", `{"days":["mon","tue","wed","thu","fri"],"from":"08:00","to":"17:00"}`, "2025-03-09T12:00:00Z", nil, false},
		{"whole day", `{"days":["sun"],"from":"00:00","to":"00:00"}`, "2025-03-09T23:59:00Z", nil, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := mustRule(t, 1, `{"name":"s","schedule":`+tc.sched+`}`)
			if got := r.Schedule.active(utc(tc.at), tc.def); got != tc.want {
				t.Errorf("active at %s = %v, want %v", tc.at, got, tc.want)
			}
		})
	}
}

func TestDecide(t *testing.T) {
	night := `"schedule":{"from":"22:00","to":"06:00"}`
	rules := []Rule{
		mustRule(t, 1, `{"name":"global high offline","kinds":["camera_offline"],"severity":"high"}`),
		mustRule(t, 2, `{"name":"f16 low offline","facility":"f16","kinds":["camera_offline"],"severity":"low"}`),
		mustRule(t, 3, `{"name":"yard muted","facility":"f16","zone":"yard","kinds":["camera_offline"],"mute":true}`),
		mustRule(t, 4, `{"name":"c9 critical","camera":"c9","severity":"critical"}`),
		mustRule(t, 5, `{"name":"night activity","facility":"f16","zone":"block-a","kinds":["camera_activity"],"severity":"high",`+night+`}`),
		mustRule(t, 6, `{"name":"disabled","camera":"c1","mute":true,"disabled":true}`),
	}
	at := func(h int) time.Time { return time.Date(2025, 3, 3, h, 0, 0, 0, time.UTC) }
	cases := []struct {
		name  string
		kind  Kind
		p     place
		now   time.Time
		alert bool
		sev   Severity
		rule  int64
	}{
		{"default", KindCameraTamper, place{camera: "c5", facility: "f27"}, at(12), true, SeverityHigh, 0},
		{"global rule", KindCameraOffline, place{camera: "c5", facility: "f27"}, at(12), true, SeverityHigh, 1},
		{"facility beats global", KindCameraOffline, place{camera: "c1", facility: "f16", zone: "block-a"}, at(12), true, SeverityLow, 2},
		{"zone mute", KindCameraOffline, place{camera: "c2", facility: "f16", zone: "yard"}, at(12), false, "", 3},
		{"camera beats zone", KindCameraOffline, place{camera: "c9", facility: "f16", zone: "yard"}, at(12), true, SeverityCritical, 4},
		{"activity by day: no rule", KindCameraActivity, place{camera: "c1", facility: "f16", zone: "block-a"}, at(12), false, "", 0},
		{"activity at night", KindCameraActivity, place{camera: "c1", facility: "f16", zone: "block-a"}, at(23), true, SeverityHigh, 5},
		{"activity elsewhere", KindCameraActivity, place{camera: "c2", facility: "f16", zone: "yard"}, at(23), false, "", 0},
		{"camera rule without kinds skips activity", KindCameraActivity, place{camera: "c9", facility: "f16", zone: "x"}, at(23), false, "", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := decide(rules, tc.kind, "", tc.p, tc.now)
			if d.alert != tc.alert || d.severity != tc.sev || d.ruleID != tc.rule {
				t.Errorf("decision %+v, want alert %v severity %q rule %d", d, tc.alert, tc.sev, tc.rule)
			}
		})
	}
}

var webhookCases = []struct {
	name string
	doc  string
	bad  []string
}{
	{name: "full", doc: "- name: control-room\n  url: https://hooks.example.org/kuzet\n  secret: 0123456789abcdef0123\n  facilities: [f16, f27]\n  min_severity: high\n  events: [opened, escalated]\n  timeout: 3s\n"},
	{name: "minimal", doc: "- name: pager\n  url: http://127.0.0.1:9000/\n  secret: aaaaaaaaaaaaaaaa\n"},
	{name: "empty", doc: ""},
	{name: "bad fields", doc: "- name: Pager!\n  url: ftp://x\n  secret: short\n  facilities: [F16]\n  min_severity: urgent\n  events: [exploded]\n  timeout: 2h\n",
		bad: []string{"[0].name", "[0].url", "[0].secret", "[0].facilities[0]", "[0].min_severity", "[0].events[0]", "[0].timeout"}},
	{name: "credentials in url", doc: "- name: a\n  url: https://user:pw@x.org/\n  secret: aaaaaaaaaaaaaaaa\n", bad: []string{"[0].url"}},
	{name: "duplicate", doc: "- {name: a, url: 'http://x/', secret: aaaaaaaaaaaaaaaa}\n- {name: a, url: 'http://y/', secret: aaaaaaaaaaaaaaaa}\n", bad: []string{"[1].name"}},
	{name: "unknown key", doc: "- name: a\n  url: http://x/\n  secret: aaaaaaaaaaaaaaaa\n  password: x\n", bad: []string{""}},
	{name: "two documents", doc: "[]\n---\n[]\n", bad: []string{""}},
	{name: "not a list", doc: "name: a\n", bad: []string{""}},
}

func TestParseWebhooks(t *testing.T) {
	for _, tc := range webhookCases {
		t.Run(tc.name, func(t *testing.T) {
			ws, err := ParseWebhooks([]byte(tc.doc))
			if tc.bad == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				for _, w := range ws {
					if w.Timeout <= 0 || w.MinSeverity == "" {
						t.Errorf("defaults not set: %+v", w)
					}
				}
				return
			}
			var ve *registry.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("err %v, want a validation error", err)
			}
			got := map[string]bool{}
			for _, f := range ve.Fields {
				got[f.Field] = true
				if strings.Contains(f.Message, "short") || strings.Contains(f.Message, "pw@") {
					t.Errorf("error echoes a secret: %q", f.Message)
				}
			}
			for _, f := range tc.bad {
				if !got[f] {
					t.Errorf("field %q not rejected; got %+v", f, ve.Fields)
				}
			}
		})
	}
}

func FuzzParseWebhooks(f *testing.F) {
	for _, tc := range webhookCases {
		f.Add([]byte(tc.doc))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ws, err := ParseWebhooks(b)
		if err != nil {
			return
		}
		if err := CheckWebhooks(ws); err != nil {
			t.Fatalf("parsed webhooks fail their check: %v", err)
		}
		for _, w := range ws {
			w.wants(Event{Type: EventOpened, Alert: Alert{Facility: "f16", Severity: SeverityHigh}})
		}
	})
}

// bodyCases feed FuzzDecodeBodies: the JSON bodies of acknowledge,
// resolve, create-incident and maintenance.
var bodyCases = []string{
	`{"note":"guard sent"}`, `{"note":""}`, `{}`, `{"note":5}`, `{"note":"a","x":1}`, `{"note":"a"} {}`,
	`{"type":"assault","severity":"serious","description":"fight in the yard"}`,
	`{"note":"lens replaced","until":"2030-01-01T00:00:00Z"}`, `{"until":"yesterday"}`, "\xff", `[]`, `null`,
}

func FuzzDecodeBodies(f *testing.F) {
	for _, c := range bodyCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, v := range []any{&noteInput{}, &incidentInput{}, &maintenanceInput{}} {
			r := httptest.NewRequest("POST", "/api/v1/alerts/1/ack", bytes.NewReader(b))
			r.Header.Set("Content-Type", "application/json")
			err := decode(r, v)
			if err != nil && !errors.Is(err, registry.ErrInvalid) {
				t.Fatalf("decode error %v is not a validation error", err)
			}
			if n, ok := v.(*noteInput); ok && err == nil {
				_ = n.check()
			}
		}
	})
}
