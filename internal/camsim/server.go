package camsim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"
)

// DefaultClip is the clip looped when Config.Clip is empty, relative to the
// repository root.
const DefaultClip = "testdata/clips/h264_640x360.ts"

// MaxCameras bounds Config.Cameras.
const MaxCameras = 10000

// Config configures a Server.
type Config struct {
	// Listen is the RTSP (TCP) address; "127.0.0.1:0" picks a free port.
	// Default "127.0.0.1:8554".
	Listen string
	// Cameras is how many cameras are served, at rtsp://ADDR/cam/1 ..
	// /cam/N. Default 1, at most MaxCameras.
	Cameras int
	// Clip is the MPEG-TS clip every camera loops (H.264 or H.265 without
	// B-frames, optionally AAC). Default DefaultClip, found in the working
	// directory or the nearest parent holding it.
	Clip string
	// CameraClips overrides Clip for single cameras, by camera number.
	CameraClips map[int]string
	// Username and Password, when Username is set, protect every camera
	// with RTSP authentication (Basic and Digest MD5 offered). Neither may
	// contain ':'.
	Username, Password string
	// Faults are injected on schedule; see Fault and ParseFault.
	Faults []Fault
	// SenderReportPeriod is the longest interval between RTCP sender
	// reports; a camera also sends one before every key frame. Default 5 s.
	SenderReportPeriod time.Duration
	// WriteQueueSize is the number of packets queued per session before
	// the server drops them for a slow reader (a power of two). Default 1024.
	WriteQueueSize int

	// newPacer replaces real-time pacing (benchmarks).
	newPacer func(start time.Time) pacer
}

// Server serves the simulated cameras from one gortsplib server. Each
// camera has one goroutine that paces its clip and writes into its
// gortsplib.ServerStream.
type Server struct {
	cfg     Config
	log     *slog.Logger
	cameras []*Camera
	clips   map[string]*clip

	mu      sync.Mutex
	started bool
	closed  bool
	addr    string
	srv     *gortsplib.Server
	streams []*gortsplib.ServerStream
	stop    context.CancelFunc
	wg      sync.WaitGroup
}

// New validates cfg, loads and packetizes the clips, and returns a server
// that Start or Run starts.
func New(cfg Config, log *slog.Logger) (*Server, error) {
	if log == nil {
		return nil, errors.New("camsim: nil logger")
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:8554"
	}
	if cfg.Cameras == 0 {
		cfg.Cameras = 1
	}
	if cfg.Cameras < 1 || cfg.Cameras > MaxCameras {
		return nil, fmt.Errorf("camsim: cameras %d: want 1..%d", cfg.Cameras, MaxCameras)
	}
	if cfg.SenderReportPeriod == 0 {
		cfg.SenderReportPeriod = 5 * time.Second
	}
	if cfg.SenderReportPeriod < 0 {
		return nil, errors.New("camsim: negative sender report period")
	}
	if cfg.WriteQueueSize == 0 {
		cfg.WriteQueueSize = 1024
	}
	if cfg.Username == "" && cfg.Password != "" {
		return nil, errors.New("camsim: password without username")
	}
	if strings.Contains(cfg.Username, ":") || strings.Contains(cfg.Password, ":") {
		// The RTSP server cannot take a ':' through Basic authentication.
		return nil, errors.New("camsim: username and password must not contain ':'")
	}
	for i := range cfg.Faults {
		f := &cfg.Faults[i]
		if err := f.validate(); err != nil {
			return nil, fmt.Errorf("camsim: fault %d: %w", i+1, err)
		}
		for _, n := range f.Cameras {
			if n > cfg.Cameras {
				return nil, fmt.Errorf("camsim: fault %q: camera %d does not exist", f, n)
			}
		}
	}
	for n := range cfg.CameraClips {
		if n < 1 || n > cfg.Cameras {
			return nil, fmt.Errorf("camsim: clip for camera %d: camera does not exist", n)
		}
	}
	if cfg.Clip == "" {
		p, err := findDefaultClip()
		if err != nil {
			return nil, err
		}
		cfg.Clip = p
	}

	s := &Server{cfg: cfg, log: log, clips: map[string]*clip{}}
	for n := 1; n <= cfg.Cameras; n++ {
		path := cfg.Clip
		if p, ok := cfg.CameraClips[n]; ok {
			path = p
		}
		cl, ok := s.clips[path]
		if !ok {
			var err error
			if cl, err = loadClip(path); err != nil {
				return nil, fmt.Errorf("camsim: camera %d: %w", n, err)
			}
			s.clips[path] = cl
			log.Info("clip loaded", "path", path, "codec", cl.codec,
				"width", cl.width, "height", cl.height, "frames", len(cl.frames),
				"loop", duration(cl.loopTicks, videoClockRate), "audio", cl.audio != nil,
				"kbps", cl.bytes*8*videoClockRate/cl.loopTicks/1000)
		}
		s.cameras = append(s.cameras, newCamera(n, cl, cfg.Faults, cfg.SenderReportPeriod, log))
	}
	return s, nil
}

// findDefaultClip looks for DefaultClip in the working directory and its
// parents.
func findDefaultClip() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("camsim: default clip: %w", err)
	}
	for {
		p := filepath.Join(dir, DefaultClip)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("camsim: default clip %s not found in the working directory or its parents; give a clip", DefaultClip)
		}
		dir = parent
	}
}

// Start binds the listener, starts serving and starts the cameras.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("camsim: already started")
	}
	s.started = true

	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("camsim: listen: %w", err)
	}
	s.addr = ln.Addr().String()
	wl := wireListener{Listener: ln}
	h := &handler{s: s}
	s.srv = &gortsplib.Server{
		Handler:     h,
		RTSPAddress: s.addr,
		Listen: func(string, string) (net.Listener, error) {
			return wl, nil
		},
		WriteQueueSize: s.cfg.WriteQueueSize,
		// The cameras send their own sender reports.
		DisableRTCPSenderReports: true,
	}
	if err := s.srv.Start(); err != nil {
		ln.Close()
		return fmt.Errorf("camsim: start RTSP server: %w", err)
	}

	for _, c := range s.cameras {
		desc, video, audio := c.clip.description()
		st := &gortsplib.ServerStream{Server: s.srv, Desc: desc}
		if err := st.Initialize(); err != nil {
			for _, st := range s.streams {
				st.Close()
			}
			s.srv.Close()
			return fmt.Errorf("camsim: camera %d: stream: %w", c.n, err)
		}
		stats := st.Stats()
		c.stream, c.desc, c.video, c.audio = st, desc, video, audio
		c.videoSSRC = stats.Medias[video].Formats[video.Formats[0]].LocalSSRC
		if audio != nil {
			c.audioSSRC = stats.Medias[audio].Formats[audio.Formats[0]].LocalSSRC
		}
		s.streams = append(s.streams, st)
	}

	ctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	start := time.Now()
	for _, c := range s.cameras {
		var p pacer = newRealPacer()
		if s.cfg.newPacer != nil {
			p = s.cfg.newPacer(start)
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			c.run(ctx, start, p)
		}()
	}
	s.log.Info("camera simulator serving", "addr", s.addr, "cameras", len(s.cameras),
		"first", s.URL(1), "auth", s.cfg.Username != "", "faults", len(s.cfg.Faults))
	return nil
}

// Run starts the server, serves until ctx ends, and closes it. It returns
// an error if the server cannot start or fails.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Start(); err != nil {
		return err
	}
	failed := make(chan error, 1)
	go func() { failed <- s.srv.Wait() }()
	select {
	case <-ctx.Done():
		s.Close()
		<-failed
		return nil
	case err := <-failed:
		s.Close()
		return fmt.Errorf("camsim: RTSP server: %w", err)
	}
}

// Close stops the cameras, closes every session and the listener, and waits
// for all goroutines. It may be called more than once.
func (s *Server) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started || s.closed {
		s.closed = true
		return
	}
	s.closed = true
	// Cameras first, so nothing writes into a closed stream; then the
	// streams, which close their sessions; then the server.
	s.stop()
	s.wg.Wait()
	for _, st := range s.streams {
		st.Close()
	}
	s.srv.Close()
	s.log.Info("camera simulator stopped")
}

// Addr returns the bound host:port, once started.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// URL returns the RTSP URL of camera n, without credentials.
func (s *Server) URL(n int) string {
	return "rtsp://" + s.addr + "/cam/" + strconv.Itoa(n)
}

// Cameras returns the number of cameras.
func (s *Server) Cameras() int { return len(s.cameras) }

// Camera returns camera n (1-based), or nil if there is none.
func (s *Server) Camera(n int) *Camera {
	if n < 1 || n > len(s.cameras) {
		return nil
	}
	return s.cameras[n-1]
}

// cameraForPath maps "cam/N" (leading and trailing slashes ignored) to the
// camera.
func (s *Server) cameraForPath(path string) *Camera {
	rest, ok := strings.CutPrefix(strings.Trim(path, "/"), "cam/")
	if !ok || rest == "" || len(rest) > 6 {
		return nil
	}
	n, err := strconv.Atoi(rest)
	if err != nil || strconv.Itoa(n) != rest {
		return nil
	}
	return s.Camera(n)
}

// handler answers RTSP requests for the cameras.
type handler struct {
	s *Server
}

// check authorizes a request for path and returns its camera.
func (h *handler) check(conn *gortsplib.ServerConn, req *base.Request, path string) (*Camera, *base.Response, error) {
	cfg := &h.s.cfg
	if cfg.Username != "" && !conn.VerifyCredentials(req, cfg.Username, cfg.Password) {
		return nil, &base.Response{StatusCode: base.StatusUnauthorized}, liberrors.ErrServerAuth{}
	}
	c := h.s.cameraForPath(path)
	if c == nil {
		return nil, &base.Response{StatusCode: base.StatusNotFound}, fmt.Errorf("no camera at %q", path)
	}
	if c.offline() {
		return nil, &base.Response{StatusCode: base.StatusServiceUnavailable}, fmt.Errorf("camera %d is offline", c.n)
	}
	return c, nil, nil
}

func (h *handler) OnDescribe(ctx *gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	c, res, err := h.check(ctx.Conn, ctx.Request, ctx.Path)
	if c == nil {
		return res, nil, err
	}
	return &base.Response{StatusCode: base.StatusOK}, h.stream(c), nil
}

func (h *handler) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if ctx.Session.State() == gortsplib.ServerSessionStatePreRecord {
		return &base.Response{StatusCode: base.StatusBadRequest}, nil, errors.New("cameras do not accept RECORD")
	}
	c, res, err := h.check(ctx.Conn, ctx.Request, ctx.Path)
	if c == nil {
		return res, nil, err
	}
	if prev, ok := ctx.Session.UserData().(*Camera); ok && prev != c {
		return &base.Response{StatusCode: base.StatusBadRequest}, nil, errors.New("one session serves one camera")
	}
	if wc, ok := ctx.Conn.NetConn().(*wireConn); ok {
		wc.bind(c)
	}
	ctx.Session.SetUserData(c)
	c.addSession(ctx.Session)
	return &base.Response{StatusCode: base.StatusOK}, h.stream(c), nil
}

func (h *handler) OnPlay(ctx *gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	c, ok := ctx.Session.UserData().(*Camera)
	if !ok {
		return &base.Response{StatusCode: base.StatusBadRequest}, errors.New("PLAY before SETUP")
	}
	if c.offline() {
		return &base.Response{StatusCode: base.StatusServiceUnavailable}, fmt.Errorf("camera %d is offline", c.n)
	}
	if wc, ok := ctx.Conn.NetConn().(*wireConn); ok {
		wc.bind(c)
	}
	c.log.Debug("session playing", "remote", ctx.Conn.NetConn().RemoteAddr().String())
	return &base.Response{StatusCode: base.StatusOK}, nil
}

func (h *handler) OnSessionClose(ctx *gortsplib.ServerHandlerOnSessionCloseCtx) {
	if c, ok := ctx.Session.UserData().(*Camera); ok {
		c.removeSession(ctx.Session)
		c.log.Debug("session closed", "reason", ctx.Error)
	}
}

func (h *handler) OnStreamWriteError(ctx *gortsplib.ServerHandlerOnStreamWriteErrorCtx) {
	if c, ok := ctx.Session.UserData().(*Camera); ok {
		c.dropped(ctx.Error)
	}
}

func (h *handler) OnConnClose(ctx *gortsplib.ServerHandlerOnConnCloseCtx) {
	h.s.log.Debug("connection closed", "remote", ctx.Conn.NetConn().RemoteAddr().String(), "reason", ctx.Error)
}

func (h *handler) stream(c *Camera) *gortsplib.ServerStream {
	return c.stream.(*gortsplib.ServerStream)
}
