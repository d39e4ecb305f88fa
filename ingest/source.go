package ingest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
)

// Transport selects how RTP reaches the server.
type Transport string

// Transports.
const (
	TransportTCP  Transport = "tcp"  // interleaved in the RTSP connection (default)
	TransportUDP  Transport = "udp"  // UDP unicast
	TransportAuto Transport = "auto" // UDP first, TCP when no UDP packet arrives
)

// Details of discontinuity events the source publishes. A new session's
// first event carries DetailSessionStarted, or DetailSSRCChanged when the
// session was restarted because the camera changed its SSRC.
const (
	DetailSessionStarted = "session started"
	DetailSSRCChanged    = "ssrc changed"
	DetailTimestampJump  = "timestamp jump"
	DetailSequenceGap    = "sequence gap"
	DetailParameterSets  = "parameter sets changed"
	DetailStopped        = "stopped"
)

// SourceConfig configures the source of one camera.
type SourceConfig struct {
	// Camera is the camera id (labels, logs). Required.
	Camera string
	// Facility is the facility code of the camera (labels). Default: none.
	Facility string
	// URL is the rtsp:// or rtsps:// URL of the stream, without
	// credentials. Required.
	URL string
	// Username and Password authenticate (Basic or Digest, as the camera
	// offers). Default: none.
	Username string
	Password string
	// Transport of RTP. Default: tcp.
	Transport Transport
	// ReadTimeout ends a session when no RTP packet arrived for this long,
	// and bounds each RTSP request. Default: 10s.
	ReadTimeout time.Duration
	// BackoffMin and BackoffMax bound the jittered exponential delay
	// between sessions. Defaults: 1s and 30s.
	BackoffMin time.Duration
	BackoffMax time.Duration
	// StableAfter is how long media must have flowed for a session to
	// count as stable, which resets the backoff. Default: 30s.
	StableAfter time.Duration
	// MaxAccessUnit is the largest access unit accepted, in bytes; a
	// larger one is dropped (never buffered beyond this) and counted.
	// Default: 4 MiB.
	MaxAccessUnit int
	// TLSConfig is used for rtsps:// (cloned per session). Default: the
	// system roots, verifying the URL's host name.
	TLSConfig *tls.Config
}

func (c *SourceConfig) setDefaults() {
	if c.Transport == "" {
		c.Transport = TransportTCP
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = 10 * time.Second
	}
	if c.BackoffMin <= 0 {
		c.BackoffMin = time.Second
	}
	if c.BackoffMax <= 0 {
		c.BackoffMax = 30 * time.Second
	}
	if c.BackoffMax < c.BackoffMin {
		c.BackoffMax = c.BackoffMin
	}
	if c.StableAfter <= 0 {
		c.StableAfter = 30 * time.Second
	}
	if c.MaxAccessUnit <= 0 {
		c.MaxAccessUnit = 4 << 20
	}
}

// parseCameraURL checks a camera URL and returns it parsed. Its errors never
// quote the URL, which could hold credentials by mistake.
func parseCameraURL(raw string) (*base.URL, error) {
	pu, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("url does not parse")
	}
	if pu.Scheme != "rtsp" && pu.Scheme != "rtsps" {
		return nil, fmt.Errorf("url scheme must be rtsp or rtsps, not %q", pu.Scheme)
	}
	if pu.User != nil {
		return nil, errors.New("url must not carry credentials; set username and password")
	}
	if pu.Host == "" {
		return nil, errors.New("url has no host")
	}
	u, err := base.ParseURL(raw)
	if err != nil {
		return nil, errors.New("url does not parse")
	}
	return u, nil
}

// Source pulls one camera and publishes its media into a Stream, reconnecting
// forever until its Run context ends.
//
// Concurrency: Run is called once. Health may be called from any goroutine.
// The packet callbacks of a session (one goroutine over TCP, one per track
// over UDP) share the source lock with Health; they publish into the Stream,
// which never blocks.
type Source struct {
	cfg     SourceConfig
	url     *base.URL // with credentials, for the RTSP client only
	stream  *Stream
	metrics *Metrics
	log     *slog.Logger
	red     redactor

	mu sync.Mutex
	h  Health
	// rates of the current session
	rates rateWindow
	// timelineOpen is true while readers have Tracks from this source and
	// no offline event after them.
	timelineOpen bool
	// offlinePublished is true once an offline event was published for
	// the current outage, so that retries do not repeat it.
	offlinePublished bool
	lastLogged       OfflineReason
}

// NewSource validates cfg and returns a source that publishes into stream.
// metrics may be nil; log may be nil (discard).
func NewSource(cfg SourceConfig, stream *Stream, metrics *Metrics, log *slog.Logger) (*Source, error) {
	cfg.setDefaults()
	if cfg.Camera == "" {
		return nil, errors.New("ingest source: camera id is required")
	}
	if stream == nil {
		return nil, fmt.Errorf("ingest source %s: stream is required", cfg.Camera)
	}
	switch cfg.Transport {
	case TransportTCP, TransportUDP, TransportAuto:
	default:
		return nil, fmt.Errorf("ingest source %s: transport %q is not tcp, udp or auto", cfg.Camera, cfg.Transport)
	}
	u, err := parseCameraURL(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("ingest source %s: %w", cfg.Camera, err)
	}
	if cfg.Username != "" || cfg.Password != "" {
		u.User = url.UserPassword(cfg.Username, cfg.Password)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Source{
		cfg:     cfg,
		url:     u,
		stream:  stream,
		metrics: metrics,
		log:     log.With("camera", cfg.Camera, "facility", cfg.Facility),
		red:     newRedactor(cfg.Username, cfg.Password),
	}
	s.h = Health{Camera: cfg.Camera, Facility: cfg.Facility, State: StateConnecting, Since: time.Now()}
	return s, nil
}

// Camera returns the camera id.
func (s *Source) Camera() string { return s.cfg.Camera }

// Stream returns the stream the source publishes into.
func (s *Source) Stream() *Stream { return s.stream }

// Health returns a snapshot of the camera's health.
func (s *Source) Health() Health {
	now := time.Now()
	s.mu.Lock()
	h := s.h
	h.FPS, h.Bitrate = s.rates.rates(now)
	s.mu.Unlock()
	if !h.LastFrame.IsZero() {
		h.LastFrameAge = now.Sub(h.LastFrame)
	}
	h.QueueDrops = s.stream.Dropped()
	return h
}

// Run pulls the camera until ctx ends, and returns nil then. Each session
// that ends is followed by a camera_offline event (once per outage) and a
// jittered backoff; a session whose media flowed for StableAfter resets the
// backoff.
func (s *Source) Run(ctx context.Context) error {
	if s.metrics != nil {
		s.metrics.health.add(s)
		defer s.metrics.health.remove(s)
	}
	bo := newBackoff(s.cfg.BackoffMin, s.cfg.BackoffMax)
	detail := DetailSessionStarted
	quickRestarts := 0
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			s.mu.Lock()
			s.h.Reconnects++
			s.mu.Unlock()
		}
		res := s.runSession(ctx, detail)
		detail = DetailSessionStarted
		if ctx.Err() != nil {
			s.stopped()
			return nil
		}
		if res.online >= s.cfg.StableAfter {
			quickRestarts = 0
		}
		if res.ssrcChanged && quickRestarts < 3 {
			if res.online >= s.cfg.StableAfter {
				bo.reset()
			}
			// The camera changed its SSRC mid-session: the RTP client only
			// follows one SSRC, so a new session picks up the new one at
			// once. Readers see one discontinuity, not an outage.
			quickRestarts++
			detail = DetailSSRCChanged
			s.mu.Lock()
			s.h.Discontinuities++
			s.mu.Unlock()
			s.log.Info("camera changed its SSRC; restarting the session")
			continue
		}
		s.offline(res.err)
		wait := retryDelay(bo, res.online, s.cfg.StableAfter)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			s.stopped()
			return nil
		case <-t.C:
		}
	}
}

// setState records a state change; called with s.mu held.
func (s *Source) setStateLocked(st State, reason OfflineReason, detail string) {
	if s.h.State != st || s.h.Reason != reason {
		s.h.Since = time.Now()
	}
	s.h.State, s.h.Reason, s.h.Detail = st, reason, detail
}

// offline records the end of a session and tells readers, once per outage.
func (s *Source) offline(err error) {
	var se *SessionError
	if !errors.As(err, &se) {
		se = s.sessionError(err)
	}
	s.mu.Lock()
	s.setStateLocked(StateOffline, se.Reason, se.Detail)
	publish := s.timelineOpen || !s.offlinePublished
	s.timelineOpen, s.offlinePublished = false, true
	repeat := s.lastLogged == se.Reason
	s.lastLogged = se.Reason
	s.mu.Unlock()
	if publish {
		s.stream.PublishEvent(&Event{Reason: ReasonCameraOffline, Detail: offlineDetail(se), At: time.Now()})
	}
	if repeat {
		s.log.Debug("camera still offline", "reason", se.Reason, "detail", se.Detail)
	} else {
		s.log.Warn("camera offline", "reason", se.Reason, "detail", se.Detail)
	}
}

func offlineDetail(se *SessionError) string {
	if se.Detail == "" {
		return string(se.Reason)
	}
	return string(se.Reason) + ": " + se.Detail
}

// stopped closes the timeline when the source stops.
func (s *Source) stopped() {
	s.mu.Lock()
	s.setStateLocked(StateOffline, OfflineStopped, "")
	open := s.timelineOpen
	s.timelineOpen = false
	s.mu.Unlock()
	if open {
		s.stream.PublishEvent(&Event{Reason: ReasonCameraOffline, Detail: DetailStopped, At: time.Now()})
	}
}

// sessionError classifies and redacts err.
func (s *Source) sessionError(err error) *SessionError {
	reason := classify(err)
	detail := ""
	if err != nil {
		detail = s.red.redact(err.Error())
	}
	return &SessionError{Camera: s.cfg.Camera, Reason: reason, Detail: detail, err: err}
}
