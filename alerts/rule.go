package alerts

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kuzet/kuzet/registry"
)

// Rule adjusts alerts where it applies: its scope (a facility, a zone of
// it, or one camera; nothing for every facility), its kinds, and its
// schedule. The most specific rule that applies wins (camera, then zone,
// then facility, then global); among equally specific ones a mute wins,
// then the highest severity, then the lowest id.
//
// Activity alerts only exist where a rule names camera_activity: activity
// is normal most of the time, and a rule says when it is not ("activity in
// zone block-a between 22:00 and 06:00 → high").
type Rule struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
	// Facility, Zone and Camera scope the rule; Zone needs Facility.
	// All empty: every facility (needs a scope of all facilities to set).
	Facility string `json:"facility,omitempty"`
	Zone     string `json:"zone,omitempty"`
	Camera   string `json:"camera,omitempty"`
	// Kinds the rule applies to. Empty: every kind but camera_activity.
	Kinds []Kind `json:"kinds,omitempty"`
	// Severity of the alerts it applies to; empty keeps the kind's default.
	Severity Severity `json:"severity,omitempty"`
	// Mute: no alert while the rule applies.
	Mute bool `json:"mute,omitempty"`
	// Schedule limits when the rule applies; nil: always.
	Schedule *Schedule `json:"schedule,omitempty"`
	// EscalateAfter overrides the escalation delay of the alerts it
	// applies to ("10m"); empty keeps the configured one, "0s" never
	// escalates.
	EscalateAfter string `json:"escalate_after,omitempty"`
	// Disabled rules are kept but not applied.
	Disabled bool `json:"disabled,omitempty"`

	UpdatedAt time.Time `json:"updated_at"`
	UpdatedBy string    `json:"updated_by"`

	escalate *time.Duration
}

// Schedule is a daily window in a time zone.
type Schedule struct {
	// Days the window starts on: "mon" … "sun". Empty: every day.
	Days []string `json:"days,omitempty"`
	// From and To are "HH:MM". A window with To before From runs past
	// midnight into the next day (and belongs to the day it starts on);
	// From equal to To is the whole day.
	From string `json:"from"`
	To   string `json:"to"`
	// TimeZone is an IANA zone ("Europe/Vilnius"). Default: the
	// facility's time zone, else UTC.
	TimeZone string `json:"timezone,omitempty"`

	from, to int // minutes of the day
	days     [7]bool
	loc      *time.Location
}

// MaxRuleBytes bounds a rule document.
const MaxRuleBytes = 64 << 10

var (
	dayNames = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}
	zoneRE   = regexp.MustCompile(`^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+){0,3}$`)
	clockRE  = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]$`)
)

// ParseRule decodes and checks a rule document (JSON, as the API takes it).
// Unknown fields are refused. A rejected rule is a *registry.ValidationError
// listing every bad field.
func ParseRule(data []byte) (Rule, error) {
	if len(data) > MaxRuleBytes {
		return Rule{}, &registry.ValidationError{Fields: []registry.FieldError{{Field: "", Message: fmt.Sprintf("larger than %d bytes", MaxRuleBytes)}}}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var r Rule
	if err := dec.Decode(&r); err != nil {
		return Rule{}, &registry.ValidationError{Fields: []registry.FieldError{{Field: "", Message: "not a rule document: " + jsonErr(err)}}}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Rule{}, &registry.ValidationError{Fields: []registry.FieldError{{Field: "", Message: "trailing data after the rule"}}}
	}
	r.ID, r.UpdatedAt, r.UpdatedBy = 0, time.Time{}, ""
	if err := r.check(); err != nil {
		return Rule{}, err
	}
	return r, nil
}

// jsonErr shortens a decoding error without echoing large input.
func jsonErr(err error) string {
	s := err.Error()
	if len(s) > 200 {
		s = s[:200]
	}
	return strings.ToValidUTF8(s, "?")
}

type fieldErrs []registry.FieldError

func (f *fieldErrs) add(field, format string, a ...any) {
	*f = append(*f, registry.FieldError{Field: field, Message: fmt.Sprintf(format, a...)})
}

func text(f *fieldErrs, field, s string, minLen, maxLen int) {
	if !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
		f.add(field, "must be UTF-8 text without NUL characters")
		return
	}
	if n := utf8.RuneCountInString(s); n < minLen || n > maxLen {
		f.add(field, "must be %d to %d characters", minLen, maxLen)
	}
}

// check validates r and prepares its schedule.
func (r *Rule) check() error {
	var f fieldErrs
	text(&f, "name", r.Name, 1, 200)
	if r.Facility != "" && !registry.ValidFacilityID(r.Facility) {
		f.add("facility", "not a facility id")
	}
	if r.Zone != "" {
		if !registry.ValidFacilityID(r.Zone) {
			f.add("zone", "not a zone id")
		}
		if r.Facility == "" {
			f.add("zone", "needs facility")
		}
	}
	if r.Camera != "" && !registry.ValidCameraID(r.Camera) {
		f.add("camera", "not a camera id")
	}
	if r.Camera != "" && r.Zone != "" {
		f.add("zone", "give a zone or a camera, not both")
	}
	if len(r.Kinds) > len(Kinds()) {
		f.add("kinds", "at most %d", len(Kinds()))
	}
	for i, k := range r.Kinds {
		if !k.Valid() {
			f.add(fmt.Sprintf("kinds[%d]", i), "unknown kind")
		} else if slices.Index(r.Kinds, k) != i {
			f.add(fmt.Sprintf("kinds[%d]", i), "duplicate")
		}
	}
	if r.Severity != "" && !r.Severity.Valid() {
		f.add("severity", "must be low, medium, high or critical")
	}
	if r.Mute && r.Severity != "" {
		f.add("severity", "a muting rule has no severity")
	}
	if r.EscalateAfter != "" {
		d, err := time.ParseDuration(r.EscalateAfter)
		if err != nil || d < 0 || d > 7*24*time.Hour {
			f.add("escalate_after", "must be a duration from 0s to 168h")
		} else {
			r.escalate = &d
		}
	}
	if r.Schedule != nil {
		r.Schedule.check(&f)
	}
	if len(f) > 0 {
		return &registry.ValidationError{Fields: f}
	}
	return nil
}

func (s *Schedule) check(f *fieldErrs) {
	parse := func(field, v string) int {
		if !clockRE.MatchString(v) {
			f.add(field, "must be HH:MM")
			return 0
		}
		return int(v[0]-'0')*600 + int(v[1]-'0')*60 + int(v[3]-'0')*10 + int(v[4]-'0')
	}
	s.from = parse("schedule.from", s.From)
	s.to = parse("schedule.to", s.To)
	if len(s.Days) > 7 {
		f.add("schedule.days", "at most 7")
	}
	s.days = [7]bool{}
	for i, d := range s.Days {
		n := slices.Index(dayNames, d)
		switch {
		case n < 0:
			f.add(fmt.Sprintf("schedule.days[%d]", i), "must be one of %s", strings.Join(dayNames, ", "))
		case s.days[n]:
			f.add(fmt.Sprintf("schedule.days[%d]", i), "duplicate")
		default:
			s.days[n] = true
		}
	}
	if len(s.Days) == 0 {
		s.days = [7]bool{true, true, true, true, true, true, true}
	}
	s.loc = nil
	if s.TimeZone != "" {
		loc, err := loadZone(s.TimeZone)
		if err != nil {
			f.add("schedule.timezone", "unknown time zone")
		} else {
			s.loc = loc
		}
	}
}

// loadZone loads an IANA time zone by a name of the usual shape only.
func loadZone(name string) (*time.Location, error) {
	if len(name) > 64 || !zoneRE.MatchString(name) || strings.Contains(name, "..") {
		return nil, errors.New("bad time zone name")
	}
	return time.LoadLocation(name)
}

// active reports whether the schedule's window holds t; def is the time
// zone when the schedule names none.
func (s *Schedule) active(t time.Time, def *time.Location) bool {
	loc := s.loc
	if loc == nil {
		loc = def
	}
	if loc == nil {
		loc = time.UTC
	}
	lt := t.In(loc)
	m := lt.Hour()*60 + lt.Minute()
	day := int(lt.Weekday())
	switch {
	case s.from == s.to:
		return s.days[day]
	case s.from < s.to:
		return s.days[day] && m >= s.from && m < s.to
	default: // past midnight: the evening belongs to today, the morning to yesterday
		if m >= s.from {
			return s.days[day]
		}
		return m < s.to && s.days[(day+6)%7]
	}
}

// specificity ranks a rule's scope: camera 3, zone 2, facility 1, global 0.
func (r *Rule) specificity() int {
	switch {
	case r.Camera != "":
		return 3
	case r.Zone != "":
		return 2
	case r.Facility != "":
		return 1
	}
	return 0
}

// appliesTo reports whether r covers kind k on a subject at place p.
func (r *Rule) appliesTo(k Kind, p place) bool {
	if r.Disabled {
		return false
	}
	if len(r.Kinds) == 0 {
		if k == KindCameraActivity {
			return false
		}
	} else if !slices.Contains(r.Kinds, k) {
		return false
	}
	switch {
	case r.Camera != "":
		return r.Camera == p.camera && (r.Facility == "" || r.Facility == p.facility)
	case r.Zone != "":
		return r.Facility == p.facility && r.Zone == p.zone
	case r.Facility != "":
		return r.Facility == p.facility
	}
	return true
}

// place is where a condition is: its camera, zone and facility (all empty
// for system conditions), and the facility's time zone.
type place struct {
	camera, zone, facility string
	loc                    *time.Location
}

// decision is what the rules make of a condition.
type decision struct {
	alert    bool
	severity Severity
	ruleID   int64
	escalate *time.Duration
}

// decide applies rules to a condition of kind k at p with detector severity
// sev ("" for the kind's default) at time now.
func decide(rules []Rule, k Kind, sev Severity, p place, now time.Time) decision {
	var best *Rule
	for i := range rules {
		r := &rules[i]
		if !r.appliesTo(k, p) || (r.Schedule != nil && !r.Schedule.active(now, p.loc)) {
			continue
		}
		if best == nil || better(r, best) {
			best = r
		}
	}
	def, ok := defaultSeverity(k)
	if sev == "" {
		sev = def
	}
	if best == nil {
		return decision{alert: ok, severity: sev}
	}
	if best.Mute {
		return decision{ruleID: best.ID}
	}
	d := decision{alert: true, severity: sev, ruleID: best.ID, escalate: best.escalate}
	if best.Severity != "" {
		d.severity = best.Severity
	}
	if d.severity == "" {
		d.severity = SeverityMedium
	}
	return d
}

func better(a, b *Rule) bool {
	if sa, sb := a.specificity(), b.specificity(); sa != sb {
		return sa > sb
	}
	if a.Mute != b.Mute {
		return a.Mute
	}
	if ra, rb := a.Severity.Rank(), b.Severity.Rank(); ra != rb {
		return ra > rb
	}
	return a.ID < b.ID
}
