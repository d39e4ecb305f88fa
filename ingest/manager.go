package ingest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"
)

// ErrManagerStopped is returned by Apply, Set and Remove once Run returned.
var ErrManagerStopped = errors.New("ingest manager stopped")

// CameraConfig is one camera as the Manager pulls it.
type CameraConfig struct {
	// ID identifies the camera; it names its Stream. Required.
	ID string
	// Facility is the facility code (metrics label). Default: none.
	Facility string
	// URL is the rtsp:// or rtsps:// URL without credentials. Required.
	URL string
	// Username and Password authenticate to the camera. Default: none.
	Username string
	Password string
	// Enabled pulls the camera; a disabled camera keeps its Stream (with a
	// disabled event) and pulls nothing.
	Enabled bool
	// Transport overrides the manager's transport. Default: the manager's.
	Transport Transport
}

// ManagerConfig configures a Manager: what every camera's source and stream
// get. cmd fills it from config.Ingest.
type ManagerConfig struct {
	// Transport, ReadTimeout, BackoffMin, BackoffMax, StableAfter,
	// MaxAccessUnit and TLSConfig are SourceConfig's, for every camera
	// (same defaults).
	Transport     Transport
	ReadTimeout   time.Duration
	BackoffMin    time.Duration
	BackoffMax    time.Duration
	StableAfter   time.Duration
	MaxAccessUnit int
	TLSConfig     *tls.Config
	// GOPCacheBytes bounds each camera's GOP cache. Default: 8 MiB;
	// negative disables the cache.
	GOPCacheBytes int
	// ReaderMaxBytes caps the media bytes any one reader of a camera may
	// hold queued (see StreamConfig). Default: 64 MiB.
	ReaderMaxBytes int
	// OnStream, when set, is called with each new camera (its credentials
	// left out) and its Stream, from the goroutine that called Apply or
	// Set, before the camera's source starts. It must not block; use it to
	// attach the recorder and detectors (recorder.Record).
	OnStream func(cam CameraConfig, s *Stream)
}

func (c *ManagerConfig) setDefaults() {
	if c.GOPCacheBytes == 0 {
		c.GOPCacheBytes = 8 << 20
	}
	if c.GOPCacheBytes < 0 {
		c.GOPCacheBytes = 0
	}
	if c.ReaderMaxBytes <= 0 {
		c.ReaderMaxBytes = 64 << 20
	}
}

// Manager runs the sources of a changing set of cameras and holds their
// streams. Changing one camera starts, stops or restarts that camera's
// source only.
//
// Concurrency: Run is called once and owns the source goroutines. Apply,
// Set, Remove, Stream, Streams and Health may be called from any goroutine,
// before or while Run runs; changes made before Run take effect when it
// starts. When Run returns, every source has stopped and every stream is
// closed (readers drain, then get ErrStreamClosed).
type Manager struct {
	cfg     ManagerConfig
	metrics *Metrics
	log     *slog.Logger

	reqs chan chan struct{}
	done chan struct{} // closed when Run returns

	mu      sync.Mutex
	cams    map[string]*managedCamera
	running bool
	stopped bool
}

// managedCamera is one camera: what is wanted (cfg, removed) under m.mu,
// and what runs (run), owned by Run.
type managedCamera struct {
	cfg     CameraConfig
	removed bool
	stream  *Stream
	// disabledPublished: a disabled event was published since the camera
	// was last pulled.
	disabledPublished bool
	// disabled reports the health of the camera while it is disabled.
	disabled *staticHealth

	run *runningSource
}

type runningSource struct {
	cfg    CameraConfig
	src    *Source
	cancel context.CancelFunc
	done   chan struct{}
}

// staticHealth reports a fixed Health (a disabled camera).
type staticHealth struct{ h Health }

func (s *staticHealth) Health() Health { return s.h }

// NewManager returns a manager without cameras. metrics may be nil; log may
// be nil (discard).
func NewManager(cfg ManagerConfig, metrics *Metrics, log *slog.Logger) (*Manager, error) {
	cfg.setDefaults()
	switch cfg.Transport {
	case "", TransportTCP, TransportUDP, TransportAuto:
	default:
		return nil, fmt.Errorf("ingest manager: transport %q is not tcp, udp or auto", cfg.Transport)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Manager{
		cfg:     cfg,
		metrics: metrics,
		log:     log,
		reqs:    make(chan chan struct{}),
		done:    make(chan struct{}),
		cams:    map[string]*managedCamera{},
	}, nil
}

// Apply makes cams the whole camera set: cameras not in it are removed
// (their stream gets a disabled event and is closed), new ones added,
// changed ones restarted, disabled ones stopped. A camera whose
// configuration is invalid is left as it was and reported in the error.
// While Run runs, Apply returns once the changes are made (sources
// stopped), or when ctx ends.
func (m *Manager) Apply(ctx context.Context, cams []CameraConfig) error {
	want := make(map[string]bool, len(cams))
	var errs []error
	m.mu.Lock()
	if m.stopped {
		m.mu.Unlock()
		return ErrManagerStopped
	}
	var created []*managedCamera
	for _, c := range cams {
		if want[c.ID] {
			errs = append(errs, fmt.Errorf("camera %q: duplicate id", c.ID))
			continue
		}
		want[c.ID] = true
		mc, err := m.setLocked(c)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if mc != nil {
			created = append(created, mc)
		}
	}
	for id, mc := range m.cams {
		if !want[id] {
			mc.removed = true
		}
	}
	m.mu.Unlock()
	m.announce(created)
	if err := m.reconcile(ctx); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Set adds camera c or changes it; only that camera's source restarts, and
// only when its configuration changed.
func (m *Manager) Set(ctx context.Context, c CameraConfig) error {
	m.mu.Lock()
	if m.stopped {
		m.mu.Unlock()
		return ErrManagerStopped
	}
	mc, err := m.setLocked(c)
	m.mu.Unlock()
	if err != nil {
		return err
	}
	if mc != nil {
		m.announce([]*managedCamera{mc})
	}
	return m.reconcile(ctx)
}

// Remove removes camera id: its source stops, its stream gets a disabled
// event and is closed. It reports whether the camera existed.
func (m *Manager) Remove(ctx context.Context, id string) (bool, error) {
	m.mu.Lock()
	if m.stopped {
		m.mu.Unlock()
		return false, ErrManagerStopped
	}
	mc, ok := m.cams[id]
	if ok {
		mc.removed = true
	}
	m.mu.Unlock()
	if !ok {
		return false, nil
	}
	return true, m.reconcile(ctx)
}

// setLocked records the wanted configuration of one camera and returns it
// when it is new.
func (m *Manager) setLocked(c CameraConfig) (*managedCamera, error) {
	if c.ID == "" {
		return nil, errors.New("camera without id")
	}
	if _, err := parseCameraURL(c.URL); err != nil {
		return nil, fmt.Errorf("camera %s: %w", c.ID, err)
	}
	switch c.Transport {
	case "", TransportTCP, TransportUDP, TransportAuto:
	default:
		return nil, fmt.Errorf("camera %s: transport %q is not tcp, udp or auto", c.ID, c.Transport)
	}
	mc, ok := m.cams[c.ID]
	if ok && !mc.removed {
		mc.cfg = c
		return nil, nil
	}
	if ok && mc.removed {
		// Removed but not yet reconciled: the old stream closes, this one
		// starts fresh.
		mc.cfg = c
		mc.removed = false
		return nil, nil
	}
	mc = &managedCamera{cfg: c, stream: NewStream(StreamConfig{
		Camera:         c.ID,
		GOPCacheBytes:  m.cfg.GOPCacheBytes,
		ReaderMaxBytes: m.cfg.ReaderMaxBytes,
	}, m.metrics, m.log)}
	m.cams[c.ID] = mc
	return mc, nil
}

func (m *Manager) announce(cams []*managedCamera) {
	if m.cfg.OnStream == nil {
		return
	}
	for _, mc := range cams {
		cam := mc.cfg
		cam.Username, cam.Password = "", ""
		m.cfg.OnStream(cam, mc.stream)
	}
}

// reconcile asks Run to bring the sources in line with the wanted state and
// waits for it; before Run, it handles what needs no source.
func (m *Manager) reconcile(ctx context.Context) error {
	m.mu.Lock()
	running := m.running
	m.mu.Unlock()
	if !running {
		m.reconcileIdle()
		return nil
	}
	done := make(chan struct{})
	select {
	case m.reqs <- done:
	case <-m.done:
		return ErrManagerStopped
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// reconcileIdle publishes disabled events and closes removed streams
// before Run starts.
func (m *Manager) reconcileIdle() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.running {
		return // Run took over meanwhile and reconciles at start
	}
	for id, mc := range m.cams {
		switch {
		case mc.removed:
			m.dropLocked(id, mc)
		case !mc.cfg.Enabled:
			m.disableLocked(mc)
		}
	}
}

// Run starts the sources of the enabled cameras and follows changes until
// ctx ends; then it stops every source, closes every stream and returns nil.
func (m *Manager) Run(ctx context.Context) error {
	m.mu.Lock()
	if m.running || m.stopped {
		m.mu.Unlock()
		return errors.New("ingest manager: Run called twice")
	}
	m.running = true
	m.mu.Unlock()
	defer close(m.done)

	m.reconcileRunning(ctx)
	for {
		select {
		case done := <-m.reqs:
			m.reconcileRunning(ctx)
			close(done)
		case <-ctx.Done():
			m.shutdown()
			return nil
		}
	}
}

// reconcileRunning starts, stops and restarts sources; called by Run only.
func (m *Manager) reconcileRunning(ctx context.Context) {
	m.mu.Lock()
	type change struct {
		id string
		mc *managedCamera
	}
	var stop, start []change
	for id, mc := range m.cams {
		wantRun := !mc.removed && mc.cfg.Enabled
		if mc.run != nil && (!wantRun || mc.run.cfg != mc.cfg) {
			stop = append(stop, change{id, mc})
		}
		if wantRun && (mc.run == nil || mc.run.cfg != mc.cfg) {
			start = append(start, change{id, mc})
		}
		if !wantRun && mc.run == nil {
			stop = append(stop, change{id, mc}) // removed or disabled, nothing running
		}
	}
	m.mu.Unlock()

	// Stop first (in parallel), so that a restarted camera never has two
	// sources publishing.
	for _, c := range stop {
		if r := c.mc.run; r != nil {
			r.cancel()
		}
	}
	for _, c := range stop {
		if r := c.mc.run; r != nil {
			<-r.done
		}
	}
	m.mu.Lock()
	for _, c := range stop {
		c.mc.run = nil
		switch {
		case c.mc.removed:
			m.dropLocked(c.id, c.mc)
		case !c.mc.cfg.Enabled:
			m.disableLocked(c.mc)
		}
	}
	type started struct {
		r   *runningSource
		ctx context.Context
	}
	var starts []started
	for _, c := range start {
		if c.mc.removed || !c.mc.cfg.Enabled {
			continue
		}
		r, sctx, err := m.startLocked(ctx, c.mc)
		if err != nil {
			m.log.Error("cannot start camera", "camera", c.id, "err", err)
			continue
		}
		starts = append(starts, started{r, sctx})
	}
	m.mu.Unlock()
	for _, st := range starts {
		go func() {
			defer close(st.r.done)
			defer st.r.cancel()
			_ = st.r.src.Run(st.ctx)
		}()
	}
}

// startLocked creates the source of mc and the context its goroutine runs
// under; Run starts the goroutine.
func (m *Manager) startLocked(parent context.Context, mc *managedCamera) (*runningSource, context.Context, error) {
	c := mc.cfg
	tr := c.Transport
	if tr == "" {
		tr = m.cfg.Transport
	}
	src, err := NewSource(SourceConfig{
		Camera: c.ID, Facility: c.Facility, URL: c.URL, Username: c.Username, Password: c.Password,
		Transport: tr, ReadTimeout: m.cfg.ReadTimeout, BackoffMin: m.cfg.BackoffMin, BackoffMax: m.cfg.BackoffMax,
		StableAfter: m.cfg.StableAfter, MaxAccessUnit: m.cfg.MaxAccessUnit, TLSConfig: m.cfg.TLSConfig,
	}, mc.stream, m.metrics, m.log)
	if err != nil {
		return nil, nil, err
	}
	if mc.disabled != nil && m.metrics != nil {
		m.metrics.health.remove(mc.disabled)
	}
	mc.disabled, mc.disabledPublished = nil, false
	ctx, cancel := context.WithCancel(parent)
	r := &runningSource{cfg: c, src: src, cancel: cancel, done: make(chan struct{})}
	mc.run = r
	return r, ctx, nil
}

// disableLocked tells the readers of a disabled camera, once.
func (m *Manager) disableLocked(mc *managedCamera) {
	if mc.disabledPublished {
		return
	}
	mc.disabledPublished = true
	mc.stream.PublishEvent(&Event{Reason: ReasonDisabled, Detail: "disabled", At: time.Now()})
	mc.disabled = &staticHealth{h: Health{Camera: mc.cfg.ID, Facility: mc.cfg.Facility, State: StateDisabled, Since: time.Now()}}
	if m.metrics != nil {
		m.metrics.health.add(mc.disabled)
	}
}

// dropLocked removes a camera whose source has stopped.
func (m *Manager) dropLocked(id string, mc *managedCamera) {
	mc.stream.PublishEvent(&Event{Reason: ReasonDisabled, Detail: "removed", At: time.Now()})
	mc.stream.Close()
	if m.metrics != nil {
		if mc.disabled != nil {
			m.metrics.health.remove(mc.disabled)
		}
		m.metrics.forget(id)
	}
	delete(m.cams, id)
}

// shutdown stops every source and closes every stream.
func (m *Manager) shutdown() {
	m.mu.Lock()
	m.stopped = true
	cams := make([]*managedCamera, 0, len(m.cams))
	for _, mc := range m.cams {
		cams = append(cams, mc)
	}
	m.mu.Unlock()
	for _, mc := range cams {
		if mc.run != nil {
			mc.run.cancel()
		}
	}
	for _, mc := range cams {
		if mc.run != nil {
			<-mc.run.done
		}
	}
	m.mu.Lock()
	for _, mc := range cams {
		mc.run = nil
		mc.stream.Close()
		if mc.disabled != nil && m.metrics != nil {
			m.metrics.health.remove(mc.disabled)
		}
	}
	m.mu.Unlock()
}

// Stream returns the stream of camera id.
func (m *Manager) Stream(id string) (*Stream, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	mc, ok := m.cams[id]
	if !ok || mc.removed {
		return nil, false
	}
	return mc.stream, true
}

// Streams returns the streams of all cameras, sorted by camera id.
func (m *Manager) Streams() []*Stream {
	m.mu.Lock()
	out := make([]*Stream, 0, len(m.cams))
	for _, mc := range m.cams {
		if !mc.removed {
			out = append(out, mc.stream)
		}
	}
	m.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Camera() < out[j].Camera() })
	return out
}

// Health returns the health of every camera, sorted by camera id. It is
// what alerts and the viewer read.
func (m *Manager) Health() []Health {
	m.mu.Lock()
	type entry struct {
		cfg CameraConfig
		src *Source
	}
	es := make([]entry, 0, len(m.cams))
	for _, mc := range m.cams {
		if mc.removed {
			continue
		}
		var src *Source
		if mc.run != nil {
			src = mc.run.src
		}
		es = append(es, entry{mc.cfg, src})
	}
	m.mu.Unlock()
	out := make([]Health, 0, len(es))
	for _, e := range es {
		switch {
		case e.src != nil:
			out = append(out, e.src.Health())
		case !e.cfg.Enabled:
			out = append(out, Health{Camera: e.cfg.ID, Facility: e.cfg.Facility, State: StateDisabled})
		default:
			out = append(out, Health{Camera: e.cfg.ID, Facility: e.cfg.Facility, State: StateConnecting})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Camera < out[j].Camera })
	return out
}

// CameraHealth returns the health of camera id.
func (m *Manager) CameraHealth(id string) (Health, bool) {
	for _, h := range m.Health() {
		if h.Camera == id {
			return h, true
		}
	}
	return Health{}, false
}
