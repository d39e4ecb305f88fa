package alerts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kuzet/kuzet/ingest"
	"github.com/kuzet/kuzet/registry"
)

// memStore is an in-memory alertStore with the same rules as the database:
// one active alert per kind and subject, events numbered in order.
type memStore struct {
	mu     sync.Mutex
	alerts []Alert
	events []Event
	rs     []Rule
	maint  []Maintenance
	down   bool // every call fails as if PostgreSQL were unreachable
}

var errDown = errors.New("connection refused")

func (m *memStore) failing() error {
	if m.down {
		return errDown
	}
	return nil
}

func (m *memStore) record(t EventType, a Alert) []Event {
	e := Event{Seq: int64(len(m.events) + 1), Type: t, At: time.Now(), Alert: a}
	m.events = append(m.events, e)
	return []Event{e}
}

func (m *memStore) find(id int64) *Alert {
	for i := range m.alerts {
		if m.alerts[i].ID == id {
			return &m.alerts[i]
		}
	}
	return nil
}

func (m *memStore) open(_ context.Context, a Alert) (Alert, []Event, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.failing(); err != nil {
		return Alert{}, nil, false, err
	}
	for _, x := range m.alerts {
		if x.Kind == a.Kind && x.Subject == a.Subject && x.State != StateResolved {
			return x, nil, false, nil
		}
	}
	a.ID, a.State, a.OpenedAt, a.LastChangedAt = int64(len(m.alerts)+1), StateOpen, time.Now(), time.Now()
	m.alerts = append(m.alerts, a)
	return a, m.record(EventOpened, a), true, nil
}

func (m *memStore) change(id int64, t EventType, fn func(a *Alert) error) (Alert, []Event, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.failing(); err != nil {
		return Alert{}, nil, err
	}
	a := m.find(id)
	if a == nil {
		return Alert{}, nil, ErrNotFound
	}
	if err := fn(a); err != nil {
		return Alert{}, nil, err
	}
	a.LastChangedAt = time.Now()
	return *a, m.record(t, *a), nil
}

func (m *memStore) raise(_ context.Context, id int64, sev Severity, detail string) (Alert, []Event, error) {
	return m.change(id, EventUpdated, func(a *Alert) error { a.Severity, a.Detail = sev, detail; return nil })
}

func (m *memStore) escalate(_ context.Context, id int64) (Alert, []Event, error) {
	return m.change(id, EventEscalated, func(a *Alert) error {
		if a.State != StateOpen {
			return ErrConflict
		}
		now := time.Now()
		a.Severity, a.EscalatedAt, a.Escalations = a.Severity.Raise(), &now, a.Escalations+1
		return nil
	})
}

func (m *memStore) resolveAuto(_ context.Context, id int64, note string) (Alert, []Event, error) {
	return m.change(id, EventResolved, func(a *Alert) error {
		if a.State == StateResolved {
			return ErrConflict
		}
		now := time.Now()
		a.State, a.ResolvedAt, a.ResolvedBy, a.ResolveNote = StateResolved, &now, "system", note
		return nil
	})
}

// ack and resolveByHand play a person in the tests.
func (m *memStore) ack(id int64) {
	_, _, _ = m.change(id, EventAcknowledged, func(a *Alert) error {
		now := time.Now()
		a.State, a.AckedAt, a.AckedBy = StateAcknowledged, &now, "op"
		return nil
	})
}

func (m *memStore) resolveByHand(id int64) {
	_, _, _ = m.change(id, EventResolved, func(a *Alert) error {
		now := time.Now()
		a.State, a.ResolvedAt, a.ResolvedBy = StateResolved, &now, "op"
		return nil
	})
}

func (m *memStore) recordPast(_ context.Context, a Alert, resolvedAt time.Time, note string) ([]Event, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.failing(); err != nil {
		return nil, err
	}
	a.ID, a.State, a.ResolvedAt, a.ResolvedBy, a.ResolveNote = int64(len(m.alerts)+1), StateResolved, &resolvedAt, "system", note
	m.alerts = append(m.alerts, a)
	return append(m.record(EventOpened, a), m.record(EventResolved, a)...), nil
}

func (m *memStore) activeAlerts(context.Context) ([]Alert, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.failing(); err != nil {
		return nil, err
	}
	var out []Alert
	for _, a := range m.alerts {
		if a.State != StateResolved {
			out = append(out, a)
		}
	}
	return out, nil
}

func (m *memStore) rules(context.Context) ([]Rule, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.rs), m.failing()
}

func (m *memStore) maintenance(_ context.Context, now time.Time) ([]Maintenance, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Maintenance
	for _, x := range m.maint {
		if x.Until == nil || x.Until.After(now) {
			out = append(out, x)
		}
	}
	return out, m.failing()
}

func (m *memStore) openCounts(context.Context) (map[[2]string]int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[[2]string]int{}
	for _, a := range m.alerts {
		if a.State != StateResolved {
			out[[2]string{a.Facility, string(a.Severity)}]++
		}
	}
	return out, m.failing()
}

func (m *memStore) pruneEvents(context.Context, time.Time) (int64, error) { return 0, m.failing() }

// active returns the active alert of kind on subject.
func (m *memStore) active(kind Kind, subject string) (Alert, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, a := range m.alerts {
		if a.Kind == kind && a.Subject == subject && a.State != StateResolved {
			return a, true
		}
	}
	return Alert{}, false
}

// all returns every alert of kind on subject.
func (m *memStore) all(kind Kind, subject string) []Alert {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Alert
	for _, a := range m.alerts {
		if a.Kind == kind && a.Subject == subject {
			out = append(out, a)
		}
	}
	return out
}

// fakeCam is one camera as the fake health source reports it.
type fakeCam struct {
	facility   string
	state      ingest.State
	flowing    bool // media flows: LastFrame is now
	lastFrame  time.Time
	fps        float64
	reconnects uint64
	offset     time.Duration
	offsetOK   bool
}

// fakeHealth is a HealthSource whose cameras the test steers.
type fakeHealth struct {
	mu   sync.Mutex
	cams map[string]*fakeCam
}

func newFakeHealth() *fakeHealth { return &fakeHealth{cams: map[string]*fakeCam{}} }

func (f *fakeHealth) set(id string, fn func(c *fakeCam)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.cams[id]
	if !ok {
		c = &fakeCam{facility: "f16", state: ingest.StateOnline, flowing: true, fps: 25}
		f.cams[id] = c
	}
	wasFlowing := c.flowing
	if fn != nil {
		fn(c)
	}
	if c.flowing || wasFlowing {
		c.lastFrame = time.Now() // media flowed until now
	}
}

func (f *fakeHealth) Health() []ingest.Health {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	var out []ingest.Health
	for id, c := range f.cams {
		if c.flowing {
			c.lastFrame = now
		}
		h := ingest.Health{Camera: id, Facility: c.facility, State: c.state, LastFrame: c.lastFrame, FPS: c.fps,
			Reconnects: c.reconnects, ClockOffset: c.offset, ClockOffsetKnown: c.offsetOK}
		if !c.lastFrame.IsZero() {
			h.LastFrameAge = now.Sub(c.lastFrame)
		}
		if !c.flowing {
			h.FPS = 0
		}
		if c.state == ingest.StateOffline {
			h.Reason, h.Detail = ingest.OfflineTimeout, "no answer"
		}
		out = append(out, h)
	}
	slices.SortFunc(out, func(a, b ingest.Health) int { return cmpStr(a.Camera, b.Camera) })
	return out
}

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// fakeStorage is a StorageSource the test steers.
type fakeStorage struct {
	mu sync.Mutex
	h  StorageHealth
}

func (f *fakeStorage) StorageHealth() StorageHealth {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.h
}

func (f *fakeStorage) set(fn func(h *StorageHealth)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(&f.h)
}

// fakeDirectory is the registry's cameras and facilities.
type fakeDirectory struct {
	cams []registry.Camera
	facs []registry.Facility
}

func (d *fakeDirectory) ListCameras(_ context.Context, _ registry.Scope, _ registry.CameraFilter, p registry.Page) ([]registry.Camera, error) {
	if p.Offset >= len(d.cams) {
		return nil, nil
	}
	return d.cams[p.Offset:], nil
}

func (d *fakeDirectory) ListFacilities(_ context.Context, _ registry.Scope, p registry.Page) ([]registry.Facility, error) {
	if p.Offset >= len(d.facs) {
		return nil, nil
	}
	return d.facs[p.Offset:], nil
}

// eventLog collects published events with the (fake) time they came.
type eventLog struct {
	mu  sync.Mutex
	evs []Event
	at  []time.Time
}

func (l *eventLog) publish(evs ...Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range evs {
		l.evs = append(l.evs, e)
		l.at = append(l.at, time.Now())
	}
}

// first returns when the first event of type t for kind on subject came.
func (l *eventLog) first(t EventType, kind Kind, subject string) (time.Time, Event, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, e := range l.evs {
		if e.Type == t && e.Alert.Kind == kind && e.Alert.Subject == subject {
			return l.at[i], e, true
		}
	}
	return time.Time{}, Event{}, false
}

func (l *eventLog) count(t EventType, kind Kind, subject string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, e := range l.evs {
		if e.Type == t && e.Alert.Kind == kind && e.Alert.Subject == subject {
			n++
		}
	}
	return n
}

func (l *eventLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := ""
	for i, e := range l.evs {
		s += fmt.Sprintf("%s %s %s %s %s\n", l.at[i].Format("15:04:05.000"), e.Type, e.Alert.Kind, e.Alert.Subject, e.Alert.Severity)
	}
	return s
}

// testEngine is an engine over fakes, for synctest bubbles.
type testEngine struct {
	*engine
	mem     *memStore
	health  *fakeHealth
	storage *fakeStorage
	log     *eventLog
}

func newTestEngine(t *testing.T, cfg Config) *testEngine {
	t.Helper()
	if err := cfg.setDefaults(); err != nil {
		t.Fatal(err)
	}
	te := &testEngine{mem: &memStore{}, health: newFakeHealth(), storage: &fakeStorage{h: StorageHealth{StoreUp: true, DatabaseUp: true, SpoolQuota: 1000}}, log: &eventLog{}}
	dir := &fakeDirectory{
		facs: []registry.Facility{{ID: "f16", Timezone: "UTC"}, {ID: "f27", Timezone: "Europe/Vilnius"}},
		cams: []registry.Camera{{ID: "c1", Facility: "f16", Zone: "block-a"}, {ID: "c2", Facility: "f16", Zone: "yard"}, {ID: "c3", Facility: "f27", Zone: "block-a"}},
	}
	te.engine = newEngine(cfg, te.mem, te.health, te.storage, dir, newHistory(cfg.HistoryPoints), nil,
		slog.New(slog.DiscardHandler), te.log.publish)
	return te
}

// start runs the engine until the test's bubble ends.
func (te *testEngine) start(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		te.run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	// The test acts half-way between evaluations, so that the order of
	// its changes and the engine's ticks at the same fake instant never
	// matters.
	time.Sleep(500 * time.Millisecond)
}
