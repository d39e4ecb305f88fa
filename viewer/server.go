package viewer

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Config configures the HTTP server.
type Config struct {
	// Listen is host:port. Required.
	Listen string
	// TLSCert and TLSKey are PEM files; both set turns on HTTPS. Default: plain HTTP.
	TLSCert, TLSKey string
	// ShutdownTimeout bounds the graceful shutdown. Default: 10s.
	ShutdownTimeout time.Duration
	// ReadyTimeout bounds each readiness check. Default: 2s.
	ReadyTimeout time.Duration
}

// ReadyCheck is one dependency /readyz checks: PostgreSQL, the object store.
type ReadyCheck struct {
	Name  string
	Check func(ctx context.Context) error
}

// Mounter registers routes on the server's mux (the API, signalling, UI).
type Mounter interface {
	Register(mux *http.ServeMux)
}

// Server is Kuzet's one HTTP server: the API, the UI, signalling, and the
// operational endpoints /healthz, /readyz and /metrics.
type Server struct {
	cfg      Config
	log      *slog.Logger
	mux      *http.ServeMux
	checks   []ReadyCheck
	gatherer prometheus.Gatherer
	ln       net.Listener
}

// New validates cfg and builds the server. gatherer serves /metrics; checks
// feed /readyz; mounts add the rest of the routes.
func New(cfg Config, log *slog.Logger, gatherer prometheus.Gatherer, checks []ReadyCheck, mounts ...Mounter) (*Server, error) {
	if cfg.Listen == "" {
		return nil, errors.New("viewer: listen address required")
	}
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		return nil, errors.New("viewer: TLS certificate and key must be set together")
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 10 * time.Second
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = 2 * time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, log: log, mux: http.NewServeMux(), checks: checks, gatherer: gatherer}
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelError),
		ErrorHandling:     promhttp.ContinueOnError,
		EnableOpenMetrics: false,
	}))
	for _, m := range mounts {
		m.Register(s.mux)
	}
	return s, nil
}

// Handler returns the server's routes, for tests.
func (s *Server) Handler() http.Handler { return s.mux }

// Listen binds the address now, so that callers learn a bind error (or the
// port chosen for ":0") before Run.
func (s *Server) Listen() (net.Addr, error) {
	if s.ln != nil {
		return s.ln.Addr(), nil
	}
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("viewer: listen %s: %w", s.cfg.Listen, err)
	}
	s.ln = ln
	return ln.Addr(), nil
}

// Run serves until ctx ends, then shuts down gracefully within
// ShutdownTimeout (open connections are closed after it).
func (s *Server) Run(ctx context.Context) error {
	if _, err := s.Listen(); err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	ln := s.ln
	if s.cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(s.cfg.TLSCert, s.cfg.TLSKey)
		if err != nil {
			ln.Close()
			return fmt.Errorf("viewer: TLS: %w", err)
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	}
	s.log.Info("http server listening", "addr", s.ln.Addr().String(), "tls", s.cfg.TLSCert != "")
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("viewer: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		s.log.Warn("http shutdown timed out; closing connections", "err", err)
		_ = srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("viewer: serve: %w", err)
	}
	return nil
}
