package viewer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kuzet/kuzet/registry"
)

// PlaybackConfig configures recorded playback. Zero fields take their
// default.
type PlaybackConfig struct {
	// MaxSessions bounds the playback sessions of this process; more are
	// refused with 503. Default 32.
	MaxSessions int
	// MaxCameras bounds the cameras of one session. Default 16.
	MaxCameras int
	// Prefetch is how many fragments each camera of a session reads ahead.
	// Default 2.
	Prefetch int
	// MaxFragmentBytes is the largest fragment read; a larger one is
	// skipped with an error event. With Prefetch it bounds a session's
	// memory: about (Prefetch+2) × MaxFragmentBytes per camera. Default
	// 16 MiB.
	MaxFragmentBytes int64
	// PositionInterval is how often a session reports its position.
	// Default 250ms.
	PositionInterval time.Duration
	// CatchUpSpeed is how much faster than real time the frames between a
	// keyframe and the instant sought are sent. Default 10.
	CatchUpSpeed float64
	// SeekWait bounds how long a seek waits for every camera's first
	// footage before the clock starts without the late ones. Default 3s.
	SeekWait time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

func (c *PlaybackConfig) setDefaults() {
	if c.MaxSessions <= 0 {
		c.MaxSessions = 32
	}
	if c.MaxCameras <= 0 {
		c.MaxCameras = 16
	}
	if c.Prefetch <= 0 {
		c.Prefetch = 2
	}
	if c.MaxFragmentBytes <= 0 {
		c.MaxFragmentBytes = 16 << 20
	}
	if c.PositionInterval <= 0 {
		c.PositionInterval = 250 * time.Millisecond
	}
	if c.CatchUpSpeed < 1 {
		c.CatchUpSpeed = 10
	}
	if c.SeekWait <= 0 {
		c.SeekWait = 3 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// FrameMarkFunc reads a capture time a camera embedded in a frame (the
// camera simulator's SEI marks): playback reports it with each position.
type FrameMarkFunc func(codec string, nalus [][]byte) (time.Time, bool)

// PlaybackDeps are what recorded playback needs.
type PlaybackDeps struct {
	Recordings Recordings   // required
	Objects    ObjectReader // required
	Audit      Auditor      // required
	// Live provides WebRTC: playback sessions share its ICE ports and
	// settings. Nil: timeline and downloads work, sessions are refused.
	Live *Live
	// FrameMark may be nil.
	FrameMark FrameMarkFunc
	// Metrics registers the playback metrics; nil registers none.
	Metrics prometheus.Registerer
	// Log may be nil (discard).
	Log *slog.Logger
}

// Playback serves recorded footage: WebRTC playback sessions of one or more
// cameras on one clock, and MP4 downloads. The API authorises requests and
// hands them over (POST /api/v1/playback, GET .../recording.mp4).
//
// Concurrency and backpressure: each session runs one goroutine (its
// clock), one fetcher goroutine per camera and pion's goroutines; Playback
// owns them and Close waits for all. A fetcher reads the store fragment by
// fragment (one ranged read each, at most MaxFragmentBytes) into a queue
// of Prefetch items and blocks when it is full, so a session's memory does
// not grow with segment size or session length. Frames leave at their due
// time; a viewer whose network is slower than the stream loses packets
// (NACK retransmission covers losses within its buffer) but never slows
// other sessions.
type Playback struct {
	cfg     PlaybackConfig
	recs    Recordings
	objects ObjectReader
	audit   Auditor
	live    atomic.Pointer[Live]
	mark    FrameMarkFunc
	log     *slog.Logger
	metrics *playbackMetrics

	mu       sync.Mutex
	sessions map[string]*playSession
	closed   bool
	wg       sync.WaitGroup
}

// NewPlayback validates its dependencies and returns the service.
func NewPlayback(cfg PlaybackConfig, deps PlaybackDeps) (*Playback, error) {
	cfg.setDefaults()
	if deps.Recordings == nil || deps.Objects == nil || deps.Audit == nil {
		return nil, errors.New("playback: recordings, objects and audit are required")
	}
	log := deps.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := newPlaybackMetrics(deps.Metrics)
	if err != nil {
		return nil, fmt.Errorf("playback: metrics: %w", err)
	}
	p := &Playback{cfg: cfg, recs: deps.Recordings, objects: deps.Objects, audit: deps.Audit,
		mark: deps.FrameMark, log: log.With("component", "playback"), metrics: m, sessions: map[string]*playSession{}}
	p.live.Store(deps.Live)
	return p, nil
}

// UseLive gives playback its WebRTC when Live is built after Playback (Live
// authenticates through the API, which carries Playback): the composition
// root calls it before serving. Sessions started without one are refused
// with 503.
func (p *Playback) UseLive(l *Live) { p.live.Store(l) }

// Run blocks until ctx ends, then ends every session.
func (p *Playback) Run(ctx context.Context) error {
	<-ctx.Done()
	p.Close()
	return nil
}

// Close ends every session and waits for their goroutines. New sessions are
// refused afterwards.
func (p *Playback) Close() {
	p.mu.Lock()
	p.closed = true
	ss := make([]*playSession, 0, len(p.sessions))
	for _, s := range p.sessions {
		ss = append(ss, s)
	}
	p.mu.Unlock()
	for _, s := range ss {
		s.stop(errLiveShutdown)
	}
	p.wg.Wait()
}

// Sessions returns the number of open playback sessions.
func (p *Playback) Sessions() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.sessions)
}

var (
	errPlaybackFull        = errors.New("too many playback sessions")
	errPlaybackClosed      = errors.New("playback shutting down")
	errPlaybackUnavailable = errors.New("this server has no WebRTC for playback")
)

// addSession registers s and starts its goroutine.
func (p *Playback) addSession(s *playSession, run func()) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errPlaybackClosed
	}
	if len(p.sessions) >= p.cfg.MaxSessions {
		return errPlaybackFull
	}
	p.sessions[s.id] = s
	p.metrics.sessions.Inc()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer func() {
			p.mu.Lock()
			delete(p.sessions, s.id)
			p.mu.Unlock()
			p.metrics.sessions.Dec()
		}()
		run()
	}()
	return nil
}

// stopSession ends session id of user; false when there is none.
func (p *Playback) stopSession(id string, user int64) bool {
	p.mu.Lock()
	s := p.sessions[id]
	p.mu.Unlock()
	if s == nil || s.principal.UserID != user {
		return false
	}
	s.stop(errLiveDeleted)
	return true
}

// auditRange writes a playback row; a failure is logged and counted (the
// view already happened).
func (p *Playback) record(e registry.Entry) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.audit.Record(ctx, e); err != nil {
		p.metrics.auditFail.Inc()
		p.log.Error("audit of a playback failed", "user", e.Actor, "err", err)
	}
}

// playbackMetrics are the metrics of recorded playback and downloads.
type playbackMetrics struct {
	sessions  prometheus.Gauge
	starts    *prometheus.CounterVec // outcome
	bytes     prometheus.Counter
	frames    prometheus.Counter
	errors    prometheus.Counter
	auditFail prometheus.Counter
	downloads *prometheus.CounterVec // outcome
}

func newPlaybackMetrics(reg prometheus.Registerer) (*playbackMetrics, error) {
	m := &playbackMetrics{
		sessions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kuzet_playback_sessions", Help: "Open recorded-playback sessions."}),
		starts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kuzet_playback_session_starts_total",
			Help: "Playback session requests by outcome (ok, bad_request, full, unavailable, audit_failed, error)."}, []string{"outcome"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kuzet_playback_read_bytes_total", Help: "Bytes read from the object store for playback sessions."}),
		frames: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kuzet_playback_frames_total", Help: "Video frames sent to playback sessions."}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kuzet_playback_read_errors_total", Help: "Recorded footage that could not be read for playback and was skipped."}),
		auditFail: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kuzet_playback_audit_failures_total", Help: "Audit rows of playback and downloads that could not be written after the fact."}),
		downloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kuzet_playback_downloads_total", Help: "MP4 download requests by outcome (ok, no_footage, error)."}, []string{"outcome"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.sessions, m.starts, m.bytes, m.frames, m.errors, m.auditFail, m.downloads} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}
