package alerts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/kuzet/kuzet/ingest"
	"github.com/kuzet/kuzet/registry"
)

// alertStore is what the engine needs of the database; *store implements
// it (tests use an in-memory one).
type alertStore interface {
	open(ctx context.Context, a Alert) (Alert, []Event, bool, error)
	raise(ctx context.Context, id int64, sev Severity, detail string) (Alert, []Event, error)
	escalate(ctx context.Context, id int64) (Alert, []Event, error)
	resolveAuto(ctx context.Context, id int64, note string) (Alert, []Event, error)
	recordPast(ctx context.Context, a Alert, resolvedAt time.Time, note string) ([]Event, error)
	activeAlerts(ctx context.Context) ([]Alert, error)
	rules(ctx context.Context) ([]Rule, error)
	maintenance(ctx context.Context, now time.Time) ([]Maintenance, error)
	openCounts(ctx context.Context) (map[[2]string]int, error)
	pruneEvents(ctx context.Context, before time.Time) (int64, error)
}

// condition is a detector's finding: kind on subject, holding since Since.
type condition struct {
	kind     Kind
	subject  string
	camera   string
	facility string // from ingest, overridden by the registry
	severity Severity
	title    string
	detail   string
	since    time.Time
}

type condKey struct {
	kind    Kind
	subject string
}

func (c condition) key() condKey { return condKey{c.kind, c.subject} }

// engine evaluates the detectors every Interval and keeps the alerts of
// this node's conditions in step with them.
//
// Concurrency: run is one goroutine; readMedia one per camera stream; they
// share only mediaState values (each under its own lock) and the media
// map (under mu). The directory, rules and maintenance are refreshed by
// run only; API handlers ask for a refresh with refresh().
type engine struct {
	cfg      Config
	st       alertStore
	health   HealthSource
	storage  StorageSource
	dir      Directory
	history  *history
	metrics  *Metrics
	log      *slog.Logger
	publish  func(...Event)
	wantLoad chan struct{}

	mu     sync.Mutex
	media  map[string]*mediaState
	places map[string]place // camera → place from the registry
	zones  map[string]*time.Location
	// Snapshots for the API: conditions by subject, cameras in maintenance.
	condSnap  map[string][]string
	maintSnap map[string]bool

	// Owned by run.
	cams       map[string]*camState
	sys        sysState
	rules      []Rule
	maint      map[string]bool
	dirAt      time.Time
	confAt     time.Time
	pruneAt    time.Time
	clearSince map[condKey]time.Time
	latched    map[condKey]bool
	lastActive map[condKey]int64 // alerts active at the last refresh
	resolved   map[int64]bool    // alerts this engine resolved
	loggedAt   map[string]time.Time
	lastConds  map[condKey]condition
	dbDown     *dbOutage
}

// dbOutage is a database outage being alerted without the database.
type dbOutage struct {
	alert    Alert
	notified bool
}

func newEngine(cfg Config, st alertStore, h HealthSource, storage StorageSource, dir Directory, hist *history,
	m *Metrics, log *slog.Logger, publish func(...Event)) *engine {
	return &engine{
		cfg: cfg, st: st, health: h, storage: storage, dir: dir, history: hist, metrics: m, log: log, publish: publish,
		wantLoad: make(chan struct{}, 1),
		media:    map[string]*mediaState{}, cams: map[string]*camState{}, places: map[string]place{},
		zones: map[string]*time.Location{}, maint: map[string]bool{}, clearSince: map[condKey]time.Time{},
		latched: map[condKey]bool{}, lastActive: map[condKey]int64{}, resolved: map[int64]bool{},
		loggedAt: map[string]time.Time{},
	}
}

// refresh makes the next evaluation reload rules and maintenance.
func (e *engine) refresh() {
	select {
	case e.wantLoad <- struct{}{}:
	default:
	}
}

func (e *engine) run(ctx context.Context) {
	t := time.NewTicker(e.cfg.Interval)
	defer t.Stop()
	e.tick(ctx, e.cfg.Now())
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.wantLoad:
			e.confAt = time.Time{}
		case <-t.C:
			e.tick(ctx, e.cfg.Now())
		}
	}
}

// tick is one evaluation.
func (e *engine) tick(ctx context.Context, now time.Time) {
	start := time.Now()
	hs := e.health.Health()
	e.history.sample(hs, now, e.cfg.HistoryInterval)
	conds := e.cameraConditions(hs, now)
	conds = append(conds, e.systemConditions(now)...)
	e.loadConfig(ctx, now)

	active, err := e.st.activeAlerts(ctx)
	dbOK := err == nil
	if err != nil && ctx.Err() == nil {
		e.storeError("refresh", err)
	}
	if c, down := e.databaseCondition(now, dbOK); down {
		conds = append(conds, c)
	}
	snap := map[string][]string{}
	for _, c := range conds {
		snap[c.subject] = append(snap[c.subject], string(c.kind))
	}
	e.mu.Lock()
	e.condSnap = snap
	e.maintSnap = e.maint
	e.mu.Unlock()
	if e.metrics != nil {
		e.metrics.setConditions(conds)
		e.metrics.databaseUp.Set(b2f(dbOK))
	}
	if dbOK {
		e.lifecycle(ctx, now, hs, conds, active)
		if counts, err := e.st.openCounts(ctx); err == nil && e.metrics != nil {
			e.metrics.setOpen(counts)
		}
		if now.Sub(e.pruneAt) > time.Hour {
			e.pruneAt = now
			if n, err := e.st.pruneEvents(ctx, now.Add(-e.cfg.EventRetention)); err != nil {
				e.storeError("prune", err)
			} else if n > 0 {
				e.log.Info("alerts: old events pruned", "events", n)
			}
		}
	} else {
		e.outage(now, conds)
	}
	if e.metrics != nil {
		e.metrics.evaluation.Observe(time.Since(start).Seconds())
	}
}

// storeError counts a failed database operation and logs it, at most
// once every 30 s per operation (the evaluation retries every second).
func (e *engine) storeError(op string, err error) {
	if e.metrics != nil {
		e.metrics.storeErrors.WithLabelValues(op).Inc()
	}
	now := time.Now()
	if now.Sub(e.loggedAt[op]) < 30*time.Second {
		return
	}
	e.loggedAt[op] = now
	e.log.Warn("alerts: database", "op", op, "err", err)
}

// loadConfig refreshes the registry places every 30s and the rules and
// maintenance every 10s (or when asked).
func (e *engine) loadConfig(ctx context.Context, now time.Time) {
	if now.Sub(e.dirAt) >= 30*time.Second || e.dirAt.After(now) {
		if err := e.loadDirectory(ctx); err != nil {
			e.log.Warn("alerts: registry", "err", err)
		} else {
			e.dirAt = now
		}
	}
	if now.Sub(e.confAt) >= 10*time.Second || e.confAt.After(now) {
		rules, err := e.st.rules(ctx)
		if err != nil {
			e.storeError("rules", err)
			return
		}
		ms, err := e.st.maintenance(ctx, now)
		if err != nil {
			e.storeError("maintenance", err)
			return
		}
		e.rules = rules
		e.maint = map[string]bool{}
		for _, m := range ms {
			e.maint[m.Camera] = true
		}
		e.confAt = now
	}
}

func (e *engine) loadDirectory(ctx context.Context) error {
	places := map[string]place{}
	zones := map[string]*time.Location{}
	for off := 0; ; off += 500 {
		fs, err := e.dir.ListFacilities(ctx, registry.Scope{All: true}, registry.Page{Limit: 500, Offset: off})
		if err != nil {
			return err
		}
		for _, f := range fs {
			if loc, err := loadZone(f.Timezone); err == nil {
				zones[f.ID] = loc
			}
		}
		if len(fs) < 500 {
			break
		}
	}
	for off := 0; ; off += 500 {
		cs, err := e.dir.ListCameras(ctx, registry.Scope{All: true}, registry.CameraFilter{}, registry.Page{Limit: 500, Offset: off})
		if err != nil {
			return err
		}
		for _, c := range cs {
			places[c.ID] = place{camera: c.ID, zone: c.Zone, facility: c.Facility, loc: zones[c.Facility]}
		}
		if len(cs) < 500 {
			break
		}
	}
	e.mu.Lock()
	e.places, e.zones = places, zones
	e.mu.Unlock()
	return nil
}

// placeOf is where camera is, from the registry, else from ingest
// (facility); known is false when the registry does not know the camera.
func (e *engine) placeOf(camera, facility string) place {
	p, _ := e.lookup(camera, facility)
	return p
}

func (e *engine) lookup(camera, facility string) (place, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if p, ok := e.places[camera]; ok {
		return p, true
	}
	return place{camera: camera, facility: facility, loc: e.zones[facility]}, false
}

// conditionsOf lists the kinds of the conditions holding on subject (or
// on every subject starting with it when it ends in "/"), as of the last
// evaluation.
func (e *engine) conditionsOf(subject string) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := []string{}
	for s, ks := range e.condSnap {
		if s == subject || (strings.HasSuffix(subject, "/") && strings.HasPrefix(s, subject)) {
			out = append(out, ks...)
		}
	}
	sort.Strings(out)
	return out
}

// inMaintenance reports whether camera was in maintenance at the last
// evaluation.
func (e *engine) inMaintenance(camera string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.maintSnap[camera]
}

// activityScore is the camera's latest activity score, if judged.
func (e *engine) activityScore(camera string) (float64, bool) {
	e.mu.Lock()
	ms := e.media[camera]
	e.mu.Unlock()
	if ms == nil {
		return 0, false
	}
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return ms.score, ms.baseline > 0
}

// desired is an alert the conditions and rules ask for.
type desired struct {
	cond     condition
	place    place
	decision decision
}

// lifecycle opens, raises, escalates and resolves this node's alerts.
func (e *engine) lifecycle(ctx context.Context, now time.Time, hs []ingest.Health, conds []condition, active []Alert) {
	if e.dbDown != nil {
		e.endOutage(ctx, now)
	}
	want := map[condKey]desired{}
	e.lastConds = map[condKey]condition{}
	for _, c := range conds {
		e.lastConds[c.key()] = c
		if c.camera != "" && e.maint[c.camera] {
			continue
		}
		p := e.placeOf(c.camera, c.facility)
		d := decide(e.rules, c.kind, c.severity, p, now)
		if d.alert {
			want[c.key()] = desired{cond: c, place: p, decision: d}
		}
	}
	owned := map[string]bool{}
	for _, h := range hs {
		owned[h.Camera] = true
	}
	byKey := map[condKey]Alert{}
	for _, a := range active {
		byKey[condKey{a.Kind, a.Subject}] = a
	}
	// An alert resolved by hand while its condition still holds stays
	// resolved until the condition clears: no new alert for the same
	// occurrence.
	for k, id := range e.lastActive {
		if _, still := byKey[k]; !still && !e.resolved[id] {
			if _, ok := want[k]; ok {
				e.latched[k] = true
			}
		}
	}
	for k := range e.latched {
		if _, ok := want[k]; !ok {
			delete(e.latched, k)
		}
	}
	clear(e.resolved)

	keys := make([]condKey, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].kind != keys[j].kind {
			return keys[i].kind < keys[j].kind
		}
		return keys[i].subject < keys[j].subject
	})
	opened := map[condKey]int64{}
	for _, k := range keys {
		w := want[k]
		delete(e.clearSince, k)
		a, ok := byKey[k]
		if !ok {
			if e.latched[k] {
				continue
			}
			if id := e.openAlert(ctx, w); id != 0 {
				opened[k] = id
			}
			continue
		}
		if w.decision.severity.Rank() > a.Severity.Rank() {
			if _, evs, err := e.st.raise(ctx, a.ID, w.decision.severity, w.cond.detail); err != nil {
				e.storeError("raise", err)
			} else {
				e.publish(evs...)
				a.Severity = w.decision.severity
			}
		}
		e.maybeEscalate(ctx, now, a, w.decision)
	}
	for k, a := range byKey {
		if _, ok := want[k]; ok || !e.owns(a, owned) {
			continue
		}
		since, ok := e.clearSince[k]
		if !ok {
			e.clearSince[k] = now
			since = now
		}
		if !e.lasted(now, since, e.cfg.ClearFor) {
			continue
		}
		note := "condition cleared"
		switch {
		case a.Camera != "" && e.maint[a.Camera]:
			note = "camera in maintenance"
		case e.lastConds[k].kind != "":
			note = "no rule asks for it now"
		}
		if _, evs, err := e.st.resolveAuto(ctx, a.ID, note); err != nil && !errors.Is(err, ErrConflict) {
			e.storeError("resolve", err)
		} else {
			e.resolved[a.ID] = true
			delete(e.clearSince, k)
			e.publish(evs...)
		}
	}
	for k := range e.clearSince {
		if _, ok := byKey[k]; !ok {
			delete(e.clearSince, k)
		}
	}
	e.lastActive = opened
	for k, a := range byKey {
		if e.owns(a, owned) && !e.resolved[a.ID] {
			e.lastActive[k] = a.ID
		}
	}
}

// owns reports whether this node manages alert a: its system alerts and
// the alerts of the cameras it pulls.
func (e *engine) owns(a Alert, cams map[string]bool) bool {
	if a.Camera != "" {
		return cams[a.Camera]
	}
	return len(a.Subject) > len(e.cfg.Node) && a.Subject[:len(e.cfg.Node)+1] == e.cfg.Node+"/"
}

// openAlert opens the alert w asks for and returns its id (0 on failure).
func (e *engine) openAlert(ctx context.Context, w desired) int64 {
	c := w.cond
	a := Alert{Kind: c.kind, Subject: c.subject, Camera: c.camera, Facility: w.place.facility, Zone: w.place.zone,
		Severity: w.decision.severity, Title: c.title, Detail: c.detail, RuleID: w.decision.ruleID, Since: c.since}
	if a.Camera == "" {
		a.Facility, a.Zone = "", ""
	}
	got, evs, opened, err := e.st.open(ctx, a)
	if err != nil {
		e.storeError("open", err)
		return 0
	}
	if opened {
		e.log.Info("alert opened", "id", got.ID, "kind", got.Kind, "subject", got.Subject, "severity", got.Severity)
	}
	e.publish(evs...)
	return got.ID
}

// maybeEscalate escalates an open alert left unacknowledged.
func (e *engine) maybeEscalate(ctx context.Context, now time.Time, a Alert, d decision) {
	after := e.cfg.EscalateAfter
	if d.escalate != nil {
		after = *d.escalate
	}
	if a.State != StateOpen || after <= 0 {
		return
	}
	last := a.OpenedAt
	if a.EscalatedAt != nil {
		last = *a.EscalatedAt
	}
	if now.Sub(last) < after || (a.Severity == SeverityCritical && a.Escalations > 0) {
		return
	}
	got, evs, err := e.st.escalate(ctx, a.ID)
	if err != nil {
		if !errors.Is(err, ErrConflict) {
			e.storeError("escalate", err)
		}
		return
	}
	e.log.Warn("alert escalated: not acknowledged", "id", got.ID, "kind", got.Kind, "subject", got.Subject, "severity", got.Severity)
	e.publish(evs...)
}

// databaseCondition is the database outage as seen by the recorder or by
// the engine's own queries.
func (e *engine) databaseCondition(now time.Time, ownOK bool) (condition, bool) {
	s := &e.sys
	up := ownOK
	detail := "the alert service cannot reach PostgreSQL"
	if e.storage != nil {
		if h := e.storage.StorageHealth(); !h.DatabaseUp {
			up, detail = false, "the recorder cannot write the index: "+h.DatabaseError
		}
	}
	if up {
		s.dbBadSince = time.Time{}
		return condition{}, false
	}
	if s.dbBadSince.IsZero() {
		s.dbBadSince = now
	}
	if !e.lasted(now, s.dbBadSince, e.cfg.DependencyDownFor) {
		return condition{}, false
	}
	return condition{kind: KindDatabaseUnreachable, subject: e.cfg.Node + "/database", title: "PostgreSQL unreachable",
		detail: detail, since: s.dbBadSince}, true
}

// outage runs while the engine cannot reach the database: the outage is
// told to webhooks and SSE clients without being stored, once.
func (e *engine) outage(now time.Time, conds []condition) {
	for _, c := range conds {
		if c.kind != KindDatabaseUnreachable {
			continue
		}
		if e.dbDown == nil {
			d := decide(e.rules, c.kind, c.severity, place{}, now)
			if !d.alert {
				return
			}
			e.dbDown = &dbOutage{alert: Alert{Kind: c.kind, Subject: c.subject, Severity: d.severity, State: StateOpen,
				Title: c.title, Detail: c.detail, RuleID: d.ruleID, Since: c.since, OpenedAt: now, LastChangedAt: now}}
		}
		if !e.dbDown.notified {
			e.dbDown.notified = true
			e.log.Error("alert: PostgreSQL unreachable", "since", c.since)
			e.publish(Event{Type: EventOpened, At: now, Alert: e.dbDown.alert})
		}
	}
}

// endOutage stores the database outage once the database is back.
func (e *engine) endOutage(ctx context.Context, now time.Time) {
	o := e.dbDown
	if !o.notified {
		e.dbDown = nil
		return
	}
	evs, err := e.st.recordPast(ctx, o.alert, now, "PostgreSQL reachable again")
	if err != nil {
		e.storeError("record outage", err)
		return
	}
	e.dbDown = nil
	e.log.Info("alert resolved: PostgreSQL reachable again", "since", o.alert.Since)
	e.publish(evs...)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func pct(used, quota int64) string {
	return fmt.Sprintf("%.0f%% (%d of %d bytes)", 100*float64(used)/float64(quota), used, quota)
}

// lasted reports whether a condition first seen at since, on an evaluation
// tick, has lasted d at the tick now. Ticks drift by a few milliseconds, so
// a window that is a whole number of intervals would otherwise often need
// one interval more; half an interval of tolerance keeps "for 10 s" at 10 s
// without ever firing a tick early.
func (e *engine) lasted(now, since time.Time, d time.Duration) bool {
	return now.Sub(since) >= d-e.cfg.Interval/2
}
