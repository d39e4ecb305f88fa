package viewer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/pion/stun/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kuzet/kuzet/ingest"
	"github.com/kuzet/kuzet/registry"
)

// LiveConfig configures live viewing: WebRTC (WHEP) sessions, the fMP4
// WebSocket fallback and the network side of ICE. The zero value of each
// field means its default.
type LiveConfig struct {
	// ICEUDPListen is the one UDP address every WebRTC session shares (UDP
	// mux). A host part pins it to one local address; an empty host
	// ("":8189") listens on every interface. Port 0 picks a free port.
	// Default ":8189".
	ICEUDPListen string
	// ICETCPListen is the one TCP address for ICE-TCP, for networks that
	// block UDP. Default ":8189". DisableICETCP turns ICE-TCP off.
	ICETCPListen  string
	DisableICETCP bool
	// PublicIPs replace the local addresses in the host candidates the
	// server advertises: the addresses of a 1:1 NAT in front of the server
	// (a cloud instance's elastic IP, a firewall's DNAT). Default: none,
	// the local addresses are advertised.
	PublicIPs []string
	// IncludeLoopback advertises loopback candidates too (a browser on the
	// server itself; tests). Default false.
	IncludeLoopback bool
	// ICEServers are STUN and TURN servers handed to the server's ICE agent
	// (for server-reflexive and relayed candidates). Default: none.
	ICEServers []ICEServer

	// ConnectTimeout closes a session whose peer connection is not up this
	// long after the offer. Default 15s.
	ConnectTimeout time.Duration
	// DisconnectedTimeout and FailedTimeout: ICE declares a peer
	// disconnected after DisconnectedTimeout without traffic, and failed
	// FailedTimeout later; a failed session is closed and its resources
	// released. Defaults 5s and 10s.
	DisconnectedTimeout time.Duration
	FailedTimeout       time.Duration
	// GatherTimeout bounds the wait for ICE candidate gathering before the
	// answer is sent (it is quick with host candidates; STUN and TURN
	// take a round trip). Default 3s.
	GatherTimeout time.Duration

	// MaxSessions bounds the live sessions (WebRTC and fallback) of this
	// process; more are refused with 503. Default 256.
	MaxSessions int
	// QueueItems is the capacity of each viewer's reader queue in access
	// units; a viewer that falls further behind skips to the next
	// keyframe. Default 128.
	QueueItems int
	// QueueBytes bounds the media bytes in each viewer's queue. Default
	// 16 MiB.
	QueueBytes int
	// CatchUpSpeed is how much faster than real time the cached GOP is
	// sent to a viewer that joins mid-GOP. Default 10.
	CatchUpSpeed float64
	// PayloadMaxSize is the largest RTP payload sent, in bytes, so that
	// packets fit the path MTU with SRTP and header extensions. Default
	// 1200.
	PayloadMaxSize int
	// NACKBufferPackets is how many sent packets each session keeps for
	// retransmission on NACK (a power of two up to 32768). Default 512.
	NACKBufferPackets int
}

// ICEServer is a STUN or TURN server.
type ICEServer struct {
	// URLs like "stun:stun.example.org:3478" or "turn:turn.example.org:3478?transport=tcp".
	URLs []string
	// Username and Credential authenticate to a TURN server.
	Username   string
	Credential string
}

func (c *LiveConfig) setDefaults() {
	if c.ICEUDPListen == "" {
		c.ICEUDPListen = ":8189"
	}
	if c.ICETCPListen == "" {
		c.ICETCPListen = ":8189"
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = 15 * time.Second
	}
	if c.DisconnectedTimeout <= 0 {
		c.DisconnectedTimeout = 5 * time.Second
	}
	if c.FailedTimeout <= 0 {
		c.FailedTimeout = 10 * time.Second
	}
	if c.GatherTimeout <= 0 {
		c.GatherTimeout = 3 * time.Second
	}
	if c.MaxSessions <= 0 {
		c.MaxSessions = 256
	}
	if c.QueueItems <= 0 {
		c.QueueItems = 128
	}
	if c.QueueItems < 8 {
		c.QueueItems = 8
	}
	if c.QueueBytes <= 0 {
		c.QueueBytes = 16 << 20
	}
	if c.CatchUpSpeed <= 0 {
		c.CatchUpSpeed = 10
	}
	if c.CatchUpSpeed < 1 {
		c.CatchUpSpeed = 1
	}
	if c.PayloadMaxSize <= 0 {
		c.PayloadMaxSize = 1200
	}
	if c.NACKBufferPackets <= 0 {
		c.NACKBufferPackets = 512
	}
}

func (c *LiveConfig) validate() error {
	if c.PayloadMaxSize < 200 || c.PayloadMaxSize > 1400 {
		return fmt.Errorf("payload max size %d outside 200..1400 bytes", c.PayloadMaxSize)
	}
	if n := c.NACKBufferPackets; n > 32768 || n&(n-1) != 0 {
		return fmt.Errorf("NACK buffer %d is not a power of two up to 32768", n)
	}
	if c.FailedTimeout < time.Second || c.DisconnectedTimeout < time.Second {
		return errors.New("ICE timeouts must be at least 1s")
	}
	for _, s := range c.ICEServers {
		if len(s.URLs) == 0 {
			return errors.New("an ICE server has no URLs")
		}
		for _, raw := range s.URLs {
			u, err := stun.ParseURI(raw)
			if err != nil {
				return fmt.Errorf("ICE server URL %q: %w", raw, err)
			}
			if (u.Scheme == stun.SchemeTypeTURN || u.Scheme == stun.SchemeTypeTURNS) && (s.Username == "" || s.Credential == "") {
				return fmt.Errorf("TURN server %q needs a username and a credential", raw)
			}
		}
	}
	return nil
}

// LiveStreams finds the fan-out hub of a camera: the ingest manager. ok is
// false for a camera that is not pulled here.
type LiveStreams interface {
	Stream(camera string) (s *ingest.Stream, ok bool)
}

// LiveStreamsFunc adapts a function to LiveStreams.
type LiveStreamsFunc func(camera string) (*ingest.Stream, bool)

// Stream calls f.
func (f LiveStreamsFunc) Stream(camera string) (*ingest.Stream, bool) { return f(camera) }

// LiveCamera is one camera as the live wall shows it: registry data merged
// with ingest health.
type LiveCamera struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Facility string `json:"facility"`
	Zone     string `json:"zone"`
	ZoneName string `json:"zone_name"`
	// State is "online", "connecting", "offline" or "disabled".
	State string `json:"state"`
	// Reason is why the camera is not online, machine-readable
	// ("timeout", "refused", "auth_failed", "disabled", ...); Detail says
	// it for people. Both empty when online.
	Reason string `json:"reason,omitempty"`
	Detail string `json:"detail,omitempty"`
	// Since is when State last changed (zero when unknown).
	Since time.Time `json:"since,omitzero"`
	// Codec of the camera's video ("H264", "H265"; empty when unknown) and
	// audio (empty when none).
	Codec string `json:"codec,omitempty"`
	Audio string `json:"audio,omitempty"`
}

// LiveFacility is a facility the live wall can show.
type LiveFacility struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// ErrUnknownCamera is returned by a CameraDirectory for a camera id it does
// not know.
var ErrUnknownCamera = errors.New("unknown camera")

// CameraDirectory lists cameras with their state for the live wall. cmd
// wires it to the registry and the ingest health.
type CameraDirectory interface {
	// LiveFacilities lists every facility.
	LiveFacilities(ctx context.Context) ([]LiveFacility, error)
	// LiveCameras lists the cameras of facility ("" for every facility),
	// ordered for display (zone, then name).
	LiveCameras(ctx context.Context, facility string) ([]LiveCamera, error)
	// LiveCamera returns one camera, or an error wrapping ErrUnknownCamera.
	LiveCamera(ctx context.Context, id string) (LiveCamera, error)
}

// Authenticator says who sent a request: a session cookie or an API token.
// An error means nobody (401); the policy decides the rest.
type Authenticator interface {
	Authenticate(r *http.Request) (registry.Principal, error)
}

// AuthenticatorFunc adapts a function to Authenticator.
type AuthenticatorFunc func(r *http.Request) (registry.Principal, error)

// Authenticate calls f.
func (f AuthenticatorFunc) Authenticate(r *http.Request) (registry.Principal, error) { return f(r) }

// Auditor writes audit rows; *registry.Audit is one. An error means the row
// was not written, and the action it describes must be refused.
type Auditor interface {
	Record(ctx context.Context, e registry.Entry) error
}

// LiveDeps are what live viewing needs from the rest of Kuzet.
type LiveDeps struct {
	Streams LiveStreams     // required
	Cameras CameraDirectory // required
	Auth    Authenticator   // required
	Audit   Auditor         // required
	// Metrics registers the live metrics; nil registers none.
	Metrics prometheus.Registerer
	// Log may be nil (discard).
	Log *slog.Logger
}

// Live serves live video: WHEP signalling and WebRTC sessions, the fMP4
// WebSocket fallback, and the camera list and states of the live wall.
//
// Every viewer of a camera reads the camera's one ingest.Stream (never a
// new RTSP session) through its own Reader of kind live: FromGOP, so that
// the first frame sent is the cached keyframe, a queue of QueueItems units
// and QueueBytes bytes, and the SkipToKeyframe policy. The cached GOP is
// sent at CatchUpSpeed × real time (kuzet_live_catchup_units_total), then
// live units as they come.
//
// Concurrency and backpressure: each session runs one goroutine (plus
// pion's, which end with its peer connection, and for the fallback a
// WebSocket reader and pinger), owned by Live: Close and Run wait for all
// of them. A session blocks only on its own network writes; meanwhile its
// reader's queue fills, and when it overflows the reader drops everything
// queued and resumes at the next keyframe, counted in
// kuzet_ingest_reader_dropped_units_total{reader="live"}. So a slow viewer
// never slows the camera, the recorder or other viewers. Sessions whose
// peer fails ICE (DisconnectedTimeout + FailedTimeout), never connects
// (ConnectTimeout), leaves (DELETE, DTLS close, WebSocket close) or stops
// answering pings (fallback) end and release their reader and sockets;
// kuzet_live_sessions{transport} counts the open ones.
type Live struct {
	cfg     LiveConfig
	streams LiveStreams
	cams    CameraDirectory
	auth    Authenticator
	audit   Auditor
	policy  registry.Policy
	log     *slog.Logger
	metrics *liveMetrics
	ice     *liveICE
	now     func() time.Time

	mu       sync.Mutex
	sessions map[string]*liveSession
	closed   bool
	wg       sync.WaitGroup
}

// NewLive validates cfg, binds the ICE UDP (and TCP) ports, and returns the
// live service. Close (or Run) releases the ports.
func NewLive(cfg LiveConfig, deps LiveDeps) (*Live, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("live: %w", err)
	}
	if deps.Streams == nil || deps.Cameras == nil || deps.Auth == nil || deps.Audit == nil {
		return nil, errors.New("live: streams, cameras, auth and audit are required")
	}
	log := deps.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "live")
	m, err := newLiveMetrics(deps.Metrics)
	if err != nil {
		return nil, fmt.Errorf("live: metrics: %w", err)
	}
	ice, err := newLiveICE(&cfg, log)
	if err != nil {
		return nil, fmt.Errorf("live: %w", err)
	}
	return &Live{
		cfg: cfg, streams: deps.Streams, cams: deps.Cameras, auth: deps.Auth, audit: deps.Audit,
		log: log, metrics: m, ice: ice, now: time.Now,
		sessions: make(map[string]*liveSession),
	}, nil
}

// Register mounts the live routes:
//
//	POST   /whep/cameras/{id}               WHEP offer → 201 answer
//	DELETE /whep/sessions/{session}         end a WebRTC session
//	PATCH  /whep/sessions/{session}         405 (no trickle ICE)
//	GET    /api/v1/live/facilities          facilities the caller may watch
//	GET    /api/v1/live/cameras?facility=F  cameras with state and reason
//	GET    /api/v1/live/cameras/{id}        one camera
//	GET    /api/v1/live/cameras/{id}/fmp4   WebSocket: fMP4 fallback stream
func (l *Live) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /whep/cameras/{id}", l.whepOffer)
	mux.HandleFunc("DELETE /whep/sessions/{session}", l.whepDelete)
	mux.HandleFunc("PATCH /whep/sessions/{session}", l.whepPatch)
	mux.HandleFunc("OPTIONS /whep/cameras/{id}", l.whepOptions)
	mux.HandleFunc("GET /api/v1/live/facilities", l.listFacilities)
	mux.HandleFunc("GET /api/v1/live/cameras", l.listCameras)
	mux.HandleFunc("GET /api/v1/live/cameras/{id}", l.getCamera)
	mux.HandleFunc("GET /api/v1/live/cameras/{id}/fmp4", l.mseStream)
}

// Run blocks until ctx ends, then closes every session and the ICE ports.
func (l *Live) Run(ctx context.Context) error {
	<-ctx.Done()
	l.Close()
	return nil
}

// Close ends every session, waits for their goroutines and releases the ICE
// ports. New sessions are refused afterwards. It is idempotent.
func (l *Live) Close() {
	l.mu.Lock()
	already := l.closed
	l.closed = true
	ss := make([]*liveSession, 0, len(l.sessions))
	for _, s := range l.sessions {
		ss = append(ss, s)
	}
	l.mu.Unlock()
	for _, s := range ss {
		s.stop(errLiveShutdown)
	}
	l.wg.Wait()
	if !already {
		l.ice.close()
	}
}

// Sessions returns the number of open live sessions.
func (l *Live) Sessions() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.sessions)
}

var errLiveFull = errors.New("too many live sessions")
var errLiveClosed = errors.New("live service shutting down")

// addSession registers s and starts its goroutine, which run drives; the
// session is removed when run returns.
func (l *Live) addSession(s *liveSession, run func()) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return errLiveClosed
	}
	if len(l.sessions) >= l.cfg.MaxSessions {
		return errLiveFull
	}
	l.sessions[s.id] = s
	l.metrics.sessions.WithLabelValues(s.transport).Inc()
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		defer func() {
			l.mu.Lock()
			delete(l.sessions, s.id)
			l.mu.Unlock()
			l.metrics.sessions.WithLabelValues(s.transport).Dec()
		}()
		run()
	}()
	return nil
}

func (l *Live) session(id string) *liveSession {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sessions[id]
}

// newLiveSessionID returns 128 random bits in hex: the session URL is not
// guessable, and DELETE also checks the principal.
func newLiveSessionID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("session id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// liveMetrics are the live path's metrics.
type liveMetrics struct {
	sessions   *prometheus.GaugeVec     // transport
	starts     *prometheus.CounterVec   // transport, outcome
	firstFrame *prometheus.HistogramVec // transport
	auditFail  prometheus.Counter
	paced      prometheus.Counter
}

func newLiveMetrics(reg prometheus.Registerer) (*liveMetrics, error) {
	m := &liveMetrics{
		sessions: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kuzet_live_sessions",
			Help: "Open live viewing sessions, by transport (webrtc, mse).",
		}, []string{"transport"}),
		starts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kuzet_live_session_starts_total",
			Help: "Live session requests by transport and outcome (ok, unauthenticated, forbidden, bad_request, not_playable, unavailable, error).",
		}, []string{"transport", "outcome"}),
		firstFrame: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kuzet_live_first_frame_seconds",
			Help:    "Time from a live session's start to its first video frame leaving the server.",
			Buckets: []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
		}, []string{"transport"}),
		auditFail: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kuzet_live_audit_failures_total",
			Help: "Audit rows of live viewing that could not be written (a failed start row refuses the view).",
		}),
		paced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kuzet_live_catchup_units_total",
			Help: "Cached GOP units sent paced to viewers joining mid-GOP.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.sessions, m.starts, m.firstFrame, m.auditFail, m.paced} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}
