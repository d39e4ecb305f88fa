package alerts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kuzet/kuzet/alerts/scene"
	"github.com/kuzet/kuzet/ingest"
	"github.com/kuzet/kuzet/registry"
)

// Config configures the alert service. Every zero field takes its default.
type Config struct {
	// Node names this process in the subjects of system alerts
	// ("node-1/spool"), so that each node's spool and store are alerted on
	// separately. Default "local".
	Node string
	// Interval is how often conditions are evaluated. Default 1s.
	Interval time.Duration

	// OfflineAfter: a camera without media for this long is offline.
	// Default 10s.
	OfflineAfter time.Duration
	// FlapReconnects reconnects within FlapWindow make a camera flapping.
	// Defaults 3 and 5m.
	FlapReconnects int
	FlapWindow     time.Duration
	// LowFPSRatio and LowFPSFor: a frame rate under LowFPSRatio of the
	// camera's nominal rate (learned while it is healthy) for LowFPSFor.
	// Defaults 0.5 and 30s.
	LowFPSRatio float64
	LowFPSFor   time.Duration
	// KeyframeMissingAfter: media flows but no keyframe came for this
	// long. Default 10s.
	KeyframeMissingAfter time.Duration
	// TamperFor: the picture's inter frames collapsed (covered, black or
	// frozen) for this long. Default 5s.
	TamperFor time.Duration
	// SceneChangeFor: inter frames as large as keyframes for this long
	// mean the whole view changed; the alert holds for SceneChangeHold.
	// Defaults 2s and 60s.
	SceneChangeFor  time.Duration
	SceneChangeHold time.Duration
	// ActivityMinSeconds active seconds within ActivityWindow start
	// activity; it ends after ActivityQuiet without an active second.
	// Defaults 2, 5s and 30s.
	ActivityMinSeconds int
	ActivityWindow     time.Duration
	ActivityQuiet      time.Duration
	// ClockOffsetMax and ClockOffsetFor: a camera clock further than this
	// from the server's, for this long. Defaults 2s and 10s.
	ClockOffsetMax time.Duration
	ClockOffsetFor time.Duration
	// RecordingLagMax: footage older than this not yet stored. Default 2m.
	RecordingLagMax time.Duration
	// UploadFailures failed uploads within UploadFailureWindow. Defaults 3
	// and 5m.
	UploadFailures      int
	UploadFailureWindow time.Duration
	// SpoolLevels are the spool fill ratios alerted at medium, high and
	// critical severity. Default 0.5, 0.8, 0.95.
	SpoolLevels [3]float64
	// DependencyDownFor: the object store or PostgreSQL unreachable for
	// this long. Default 10s.
	DependencyDownFor time.Duration
	// ClearFor: a condition must be clear this long before its alert
	// resolves. Default 3s.
	ClearFor time.Duration
	// EscalateAfter: an alert not acknowledged this long is escalated (one
	// severity up, and notified again), and again after as long, up to
	// critical. Default 5m; negative never escalates. Rules may override.
	EscalateAfter time.Duration
	// EventRetention is how long the event feed (what SSE clients resume
	// from) is kept. Alerts themselves are kept. Default 30 days.
	EventRetention time.Duration

	// HistoryInterval and HistoryPoints: each camera's health is sampled
	// every HistoryInterval, keeping HistoryPoints samples. Defaults 10s
	// and 360 (an hour).
	HistoryInterval time.Duration
	HistoryPoints   int

	// Scene tunes the compressed-stream analysis (see package scene).
	Scene scene.Config
	// DetectorQueue is the capacity of each camera's detector reader, in
	// units. Default 512.
	DetectorQueue int

	// Webhooks receive every alert event they select.
	Webhooks []WebhookConfig
	// WebhookQueue bounds each webhook's queue of undelivered events;
	// when full, new events are dropped and counted. Default 1024.
	WebhookQueue int
	// WebhookRetryMin and WebhookRetryMax bound the backoff between
	// attempts; WebhookMaxAttempts ends the attempts of one event.
	// Defaults 1s, 1m and 12.
	WebhookRetryMin    time.Duration
	WebhookRetryMax    time.Duration
	WebhookMaxAttempts int

	// SSEKeepalive is the interval of keepalive comments on event streams;
	// SSEReauth how often a stream's session is checked again; SSEBuffer
	// the events queued per client (a client further behind is cut off and
	// resumes from the database). Defaults 15s, 1m, 256.
	SSEKeepalive time.Duration
	SSEReauth    time.Duration
	SSEBuffer    int
	// PollInterval is how often the event feed is read when no
	// notification came (events of other nodes if LISTEN fails). Default 2s.
	PollInterval time.Duration

	// Now is the clock. Default time.Now.
	Now func() time.Time
}

func (c *Config) setDefaults() error {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.Node == "" {
		c.Node = "local"
	}
	def(&c.Interval, time.Second)
	def(&c.OfflineAfter, 10*time.Second)
	if c.FlapReconnects == 0 {
		c.FlapReconnects = 3
	}
	def(&c.FlapWindow, 5*time.Minute)
	if c.LowFPSRatio == 0 {
		c.LowFPSRatio = 0.5
	}
	def(&c.LowFPSFor, 30*time.Second)
	def(&c.KeyframeMissingAfter, 10*time.Second)
	def(&c.TamperFor, 5*time.Second)
	def(&c.SceneChangeFor, 2*time.Second)
	def(&c.SceneChangeHold, time.Minute)
	if c.ActivityMinSeconds == 0 {
		c.ActivityMinSeconds = 2
	}
	def(&c.ActivityWindow, 5*time.Second)
	def(&c.ActivityQuiet, 30*time.Second)
	def(&c.ClockOffsetMax, 2*time.Second)
	def(&c.ClockOffsetFor, 10*time.Second)
	def(&c.RecordingLagMax, 2*time.Minute)
	if c.UploadFailures == 0 {
		c.UploadFailures = 3
	}
	def(&c.UploadFailureWindow, 5*time.Minute)
	if c.SpoolLevels == [3]float64{} {
		c.SpoolLevels = [3]float64{0.5, 0.8, 0.95}
	}
	def(&c.DependencyDownFor, 10*time.Second)
	def(&c.ClearFor, 3*time.Second)
	def(&c.EscalateAfter, 5*time.Minute)
	def(&c.EventRetention, 30*24*time.Hour)
	def(&c.HistoryInterval, 10*time.Second)
	if c.HistoryPoints == 0 {
		c.HistoryPoints = 360
	}
	if c.DetectorQueue == 0 {
		c.DetectorQueue = 512
	}
	if c.WebhookQueue == 0 {
		c.WebhookQueue = 1024
	}
	def(&c.WebhookRetryMin, time.Second)
	def(&c.WebhookRetryMax, time.Minute)
	if c.WebhookMaxAttempts == 0 {
		c.WebhookMaxAttempts = 12
	}
	def(&c.SSEKeepalive, 15*time.Second)
	def(&c.SSEReauth, time.Minute)
	if c.SSEBuffer == 0 {
		c.SSEBuffer = 256
	}
	def(&c.PollInterval, 2*time.Second)
	if c.Now == nil {
		c.Now = time.Now
	}
	positive := []time.Duration{c.Interval, c.OfflineAfter, c.FlapWindow, c.LowFPSFor, c.KeyframeMissingAfter,
		c.TamperFor, c.SceneChangeFor, c.SceneChangeHold, c.ActivityWindow, c.ActivityQuiet, c.ClockOffsetMax,
		c.ClockOffsetFor, c.RecordingLagMax, c.UploadFailureWindow, c.DependencyDownFor, c.ClearFor,
		c.EventRetention, c.HistoryInterval, c.WebhookRetryMin, c.WebhookRetryMax, c.SSEKeepalive, c.SSEReauth, c.PollInterval}
	for _, d := range positive {
		if d < 0 {
			return errors.New("alerts: negative duration in configuration")
		}
	}
	switch {
	case !registry.ValidFacilityID(c.Node):
		return fmt.Errorf("alerts: node name %q must match [a-z0-9-]{1,32}", c.Node)
	case c.FlapReconnects < 1, c.ActivityMinSeconds < 1, c.UploadFailures < 1, c.HistoryPoints < 1,
		c.DetectorQueue < 8, c.WebhookQueue < 1, c.WebhookMaxAttempts < 1, c.SSEBuffer < 1:
		return errors.New("alerts: counts in the configuration must be positive (detector queue at least 8)")
	case !(c.LowFPSRatio > 0 && c.LowFPSRatio < 1):
		return errors.New("alerts: low fps ratio out of (0, 1)")
	case !(c.SpoolLevels[0] > 0 && c.SpoolLevels[0] < c.SpoolLevels[1] && c.SpoolLevels[1] < c.SpoolLevels[2] && c.SpoolLevels[2] <= 1):
		return errors.New("alerts: spool levels must rise within (0, 1]")
	case c.WebhookRetryMin > c.WebhookRetryMax:
		return errors.New("alerts: webhook retry min above max")
	}
	if err := CheckWebhooks(c.Webhooks); err != nil {
		return fmt.Errorf("alerts: webhooks: %w", err)
	}
	for i := range c.Webhooks {
		c.Webhooks[i].setDefaults()
	}
	if _, err := scene.New(c.Scene); err != nil {
		return fmt.Errorf("alerts: %w", err)
	}
	return nil
}

// HealthSource gives the health of every camera this node pulls;
// *ingest.Manager implements it.
type HealthSource interface {
	Health() []ingest.Health
}

// StorageHealth is the recorder's state as the storage detectors need it.
type StorageHealth struct {
	// SpoolUsed and SpoolQuota are bytes.
	SpoolUsed, SpoolQuota int64
	// UploadBacklog and UploadBacklogBytes are closed segments waiting for
	// the object store.
	UploadBacklog      int64
	UploadBacklogBytes int64
	// RecordingLag is the age of the oldest footage not yet stored and
	// indexed, over all cameras (0 when nothing waits).
	RecordingLag time.Duration
	// UploadFailures counts failed upload attempts since start.
	UploadFailures uint64
	// StoreUp and DatabaseUp say whether the object store and PostgreSQL
	// answered the recorder's latest operations; the errors say why not.
	StoreUp       bool
	StoreError    string
	DatabaseUp    bool
	DatabaseError string
}

// StorageSource gives the recorder's state; cmd adapts the recorder to it.
type StorageSource interface {
	StorageHealth() StorageHealth
}

// Directory gives the registry's cameras (for their zones) and facilities
// (for their time zones); *registry.Registry implements it.
type Directory interface {
	ListCameras(ctx context.Context, s registry.Scope, f registry.CameraFilter, p registry.Page) ([]registry.Camera, error)
	ListFacilities(ctx context.Context, s registry.Scope, p registry.Page) ([]registry.Facility, error)
}

// IncidentCreator opens incidents; *registry.Registry implements it.
type IncidentCreator interface {
	CreateIncident(ctx context.Context, act registry.Actor, in registry.IncidentInput) (registry.Incident, error)
}

// Auditor writes audit rows; (*registry.Registry).Audit() implements it.
type Auditor interface {
	Record(ctx context.Context, e registry.Entry) error
}

// Authenticator says who sent a request (viewer's (*API).Authenticate):
// a principal, or an error for an unauthenticated request.
type Authenticator func(r *http.Request) (registry.Principal, error)

// Deps are what the service works with.
type Deps struct {
	// Pool is the database, migrated with Migrations. Required.
	Pool *pgxpool.Pool
	// Health is this node's cameras. Required.
	Health HealthSource
	// Storage is this node's recorder; nil: no storage alerts.
	Storage StorageSource
	// Directory, Incidents and Audit are the registry. Required.
	Directory Directory
	Incidents IncidentCreator
	Audit     Auditor
	// Authenticate identifies API callers. Required.
	Authenticate Authenticator
	// ClientAddr gives a request's client address for audit rows. Default:
	// the remote address.
	ClientAddr func(r *http.Request) string
	// Metrics may be nil (no metrics).
	Metrics *Metrics
	// HTTPClient delivers webhooks. Default: a client without redirects.
	HTTPClient *http.Client
	// Log may be nil (discard).
	Log *slog.Logger
}

// Service is the alert path: detectors over this node's cameras and
// recorder, the alert lifecycle in PostgreSQL, the SSE feed, webhooks and
// the HTTP API. Create it with New, attach each camera stream with
// AttachStream (from ingest's OnStream), mount it on the HTTP server
// (Register) and Run it.
type Service struct {
	cfg     Config
	log     *slog.Logger
	metrics *Metrics
	store   *store
	engine  *engine
	hub     *hub
	hooks   *webhooks
	api     *api
	history *history

	mu       sync.Mutex
	running  bool
	stopped  bool
	pending  []*ingest.Stream
	attachCh chan struct{}
}

// New validates cfg and builds the service.
func New(cfg Config, deps Deps) (*Service, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	switch {
	case deps.Pool == nil:
		return nil, errors.New("alerts: nil pool")
	case deps.Health == nil:
		return nil, errors.New("alerts: nil health source")
	case deps.Directory == nil || deps.Incidents == nil || deps.Audit == nil:
		return nil, errors.New("alerts: registry dependencies missing")
	case deps.Authenticate == nil:
		return nil, errors.New("alerts: nil authenticator")
	}
	log := deps.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	st := &store{pool: deps.Pool, audit: deps.Audit, now: cfg.Now}
	s := &Service{cfg: cfg, log: log, metrics: deps.Metrics, store: st, attachCh: make(chan struct{}, 1)}
	s.history = newHistory(cfg.HistoryPoints)
	s.hub = newHub(cfg, deps.Pool, st, deps.Metrics, log)
	client := deps.HTTPClient
	if client == nil {
		client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	s.hooks = newWebhooks(cfg, client, deps.Metrics, log)
	s.engine = newEngine(cfg, st, deps.Health, deps.Storage, deps.Directory, s.history, deps.Metrics, log, s.publish)
	s.api = &api{cfg: cfg, log: log, store: st, hub: s.hub, engine: s.engine, history: s.history, health: deps.Health,
		storage: deps.Storage, incidents: deps.Incidents, authn: deps.Authenticate, client: deps.ClientAddr,
		publish: s.publish, metrics: deps.Metrics}
	return s, nil
}

// publish hands committed (or unstorable) events to the local feed and
// the webhooks.
func (s *Service) publish(evs ...Event) {
	for _, e := range evs {
		if e.Seq == 0 {
			s.hub.transient(e)
		}
		s.hooks.enqueue(e)
		if s.metrics != nil {
			s.metrics.event(e)
		}
	}
	if len(evs) > 0 {
		s.hub.poke()
	}
}

// AttachStream starts the detectors of a camera's stream: it adds a
// detector reader at once and reads it from a goroutine Run owns. It never
// blocks, so it may be called from ingest's OnStream.
func (s *Service) AttachStream(st *ingest.Stream) {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	s.pending = append(s.pending, st)
	s.mu.Unlock()
	select {
	case s.attachCh <- struct{}{}:
	default:
	}
}

// Run evaluates, notifies and delivers until ctx ends; then every goroutine
// it started has ended.
func (s *Service) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return errors.New("alerts: Run called twice")
	}
	s.running = true
	s.mu.Unlock()

	var wg sync.WaitGroup
	wg.Go(func() { s.hub.run(ctx) })
	wg.Go(func() { s.hooks.run(ctx) })
	wg.Go(func() { s.engine.run(ctx) })
	for {
		s.mu.Lock()
		pend := s.pending
		s.pending = nil
		s.mu.Unlock()
		for _, st := range pend {
			if r := s.engine.attach(st); r != nil {
				wg.Go(func() { s.engine.readMedia(ctx, st.Camera(), r) })
			}
		}
		select {
		case <-s.attachCh:
			continue
		case <-ctx.Done():
		}
		break
	}
	s.mu.Lock()
	s.stopped = true
	s.pending = nil
	s.mu.Unlock()
	wg.Wait()
	return nil
}

// History returns a camera's sampled health, oldest first.
func (s *Service) History(camera string) []Sample { return s.history.get(camera) }

// PutRule creates (r.ID 0) or replaces a rule on behalf of act, audited, as
// the API does after checking the caller's rights (for seeding, such as
// the demo's night-time activity rule). r must come from ParseRule.
func (s *Service) PutRule(ctx context.Context, act registry.Actor, r Rule) (Rule, error) {
	if err := r.check(); err != nil {
		return Rule{}, err
	}
	got, err := s.store.putRule(ctx, act, r)
	if err != nil {
		return Rule{}, err
	}
	s.engine.refresh()
	return got, nil
}

// CameraAlerts returns the alerts of a camera opened in [from, to), newest
// first, at most 1000: the alert markers of a timeline. The caller has
// already authorised access to the camera.
func (s *Service) CameraAlerts(ctx context.Context, camera string, from, to time.Time) ([]Alert, error) {
	return s.store.list(ctx, registry.Scope{All: true}, Filter{Camera: camera, From: from, To: to, Limit: 1000})
}
