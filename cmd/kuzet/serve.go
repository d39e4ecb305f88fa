package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/kuzet/kuzet/alerts"
	"github.com/kuzet/kuzet/ingest"
	"github.com/kuzet/kuzet/internal/config"
	"github.com/kuzet/kuzet/internal/migrate"
	"github.com/kuzet/kuzet/recorder"
	"github.com/kuzet/kuzet/registry"
	"github.com/kuzet/kuzet/viewer"
)

func serveCommand() command {
	return command{
		name:    "serve",
		usage:   "[--config FILE]",
		summary: "Run the Kuzet service: ingest, recording, alerts, the API and the UI.\n\nConfiguration comes from FILE (YAML) with KUZET_* environment variables over it\n(KUZET_DATABASE_URL sets database.url); see deploy/kuzet.example.yaml.\nSIGINT or SIGTERM shuts it down cleanly.",
		flags: func(fs *flag.FlagSet) func(context.Context, []string) error {
			path := fs.String("config", os.Getenv("KUZET_CONFIG"), "configuration `file` (YAML); default none, or $KUZET_CONFIG")
			return func(ctx context.Context, args []string) error {
				if len(args) > 0 {
					return usageErrorf("unexpected argument %q", args[0])
				}
				cfg, err := config.Load(*path, os.Environ())
				if err != nil {
					return err
				}
				log := newLogger(os.Stderr, cfg.Log)
				return serve(ctx, cfg, log, nil)
			}
		},
	}
}

// newLogger builds the process logger from the log configuration.
func newLogger(w io.Writer, c config.Log) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// serveHooks lets demo (and tests) take part in the start.
type serveHooks struct {
	// seed runs once the registry exists, before cameras start.
	seed func(ctx context.Context, reg *registry.Registry) error
	// ready is called with the HTTP address once the server listens.
	ready func(addr string)
	// frameMark reads the capture time simulated cameras embed in frames,
	// so that playback positions carry it (demo only).
	frameMark viewer.FrameMarkFunc
}

// serve runs every component until ctx ends. Start order: metrics registry,
// PostgreSQL (migrations applied), object store, then the data flow from its
// source: ingest, recorder, alerts, and last the HTTP server, so nothing is
// served before what it shows exists.
//
// Shutdown order (ctx cancelled by SIGINT/SIGTERM): every component's Run
// returns on ctx; the HTTP server stops accepting and drains within
// http.shutdown_timeout; ingest closes camera sessions, which ends the
// recorder's streams, and the recorder closes its open segments in the
// spool (uploaded at next start if there was no time now); the database pool
// closes last, after the errgroup has waited for everyone.
func serve(ctx context.Context, cfg config.Config, log *slog.Logger, hooks *serveHooks) error {
	if cfg.Database.URL.IsZero() {
		return errors.New("config key \"database.url\" is required (or set KUZET_DATABASE_URL)")
	}
	metrics := prometheus.NewRegistry()
	metrics.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewBuildInfoCollector(),
	)
	up := prometheus.NewGauge(prometheus.GaugeOpts{Name: "kuzet_up", Help: "1 while the Kuzet service runs."})
	metrics.MustRegister(up)

	pool, err := openDatabase(ctx, cfg.Database, log)
	if err != nil {
		return err
	}
	defer pool.Close()
	results, err := migrate.Apply(ctx, pool, migrationSets()...)
	if err != nil {
		return err
	}
	for _, r := range results {
		if len(r.Applied) > 0 {
			log.Info("database schema migrated", "component", r.Component, "applied", r.Applied, "version", r.Current)
		}
	}
	secret, err := registry.LoadSecretKey(cfg.SecretKeyFile, os.Getenv("KUZET_SECRET_KEY"))
	if err != nil {
		return err
	}
	if secret == nil {
		log.Warn("no secret key (secret_key_file or KUZET_SECRET_KEY): cameras with credentials cannot be registered")
	}
	objects, err := openStore(ctx, cfg.Store, log, metrics)
	if err != nil {
		return err
	}
	defer objects.Close()
	recMetrics, err := recorder.NewMetrics(metrics)
	if err != nil {
		return err
	}
	rec, err := recorder.New(recorder.Config{
		SpoolDir:         cfg.Recorder.SpoolDir,
		SpoolQuota:       int64(cfg.Recorder.SpoolQuota),
		SegmentDuration:  cfg.Recorder.SegmentDuration,
		FragmentDuration: cfg.Recorder.FragmentDuration,
		SyncInterval:     cfg.Recorder.SyncInterval,
		RetentionDays:    cfg.Recorder.RetentionDays,
		QueueCapacity:    cfg.Ingest.RecorderQueue,
	}, recorder.Deps{Pool: pool, Store: objects, Log: log.With("component", "recorder"), Metrics: recMetrics})
	if err != nil {
		return err
	}
	reg, err := registry.New(registry.Config{
		SecretKey:        secret,
		SessionIdle:      cfg.Auth.SessionIdle,
		SessionMax:       cfg.Auth.SessionMax,
		LoginMaxFailures: cfg.Auth.LoginMaxFailures,
		LoginWindow:      cfg.Auth.LoginLockout,
		LoginLockout:     cfg.Auth.LoginLockout,
		HoldBefore:       cfg.Incident.HoldBefore,
		HoldAfter:        cfg.Incident.HoldAfter,
	}, pool, holdPlacer{rec}, log.With("component", "registry"))
	if err != nil {
		return err
	}
	if hooks != nil && hooks.seed != nil {
		if err := hooks.seed(ctx, reg); err != nil {
			return err
		}
	}

	checks := []viewer.ReadyCheck{
		{Name: "database", Check: func(ctx context.Context) error {
			if err := pool.Ping(ctx); err != nil {
				return fmt.Errorf("PostgreSQL unreachable: %v", redactErr(err, cfg.Database.URL))
			}
			return nil
		}},
		{Name: "object_store", Check: func(ctx context.Context) error {
			if err := objects.Ping(ctx); err != nil {
				return fmt.Errorf("object store unreachable: %v", err)
			}
			return nil
		}},
		{Name: "recorder", Check: rec.Ready},
	}
	// The alert service reads the manager's health and the manager hands
	// it each new camera's stream: it is assigned below, before Run starts
	// any camera.
	var alertSvc *alerts.Service
	ingestMetrics, err := ingest.NewMetrics(metrics)
	if err != nil {
		return err
	}
	mgr, err := ingest.NewManager(ingest.ManagerConfig{
		Transport:     ingest.Transport(cfg.Ingest.Transport),
		ReadTimeout:   cfg.Ingest.ReadTimeout,
		BackoffMin:    cfg.Ingest.BackoffMin,
		BackoffMax:    cfg.Ingest.BackoffMax,
		MaxAccessUnit: int(cfg.Ingest.MaxAccessUnit),
		GOPCacheBytes: int(cfg.Ingest.GOPCache),
		OnStream: func(cam ingest.CameraConfig, s *ingest.Stream) {
			alertSvc.AttachStream(s)
			if !cfg.Recorder.Enabled {
				return
			}
			if err := rec.Record(recorder.Camera{ID: cam.ID, Facility: cam.Facility, Stream: s}); err != nil {
				log.Error("camera not recorded", "camera", cam.ID, "err", err)
			}
		},
	}, ingestMetrics, log.With("component", "ingest"))
	if err != nil {
		return err
	}

	proxies, err := parsePrefixes(cfg.Auth.TrustedProxies)
	if err != nil {
		return err
	}
	var api *viewer.API
	alertSvc, err = newAlerts(cfg.Alerts, alerts.Deps{
		Pool: pool, Health: mgr, Storage: recorderStorage{rec},
		Directory: reg, Incidents: reg, Audit: reg.Audit(),
		// The API authenticates alert requests too; it is built just
		// below and assigned before the server serves any request.
		Authenticate: func(r *http.Request) (registry.Principal, error) { return api.Authenticate(r) },
		Log:          log.With("component", "alerts"),
	}, metrics)
	if err != nil {
		return err
	}
	var frameMark viewer.FrameMarkFunc
	if hooks != nil {
		frameMark = hooks.frameMark
	}
	playback, exporter, err := newRecordedFootage(recordedSettings{
		ExportDir: cfg.Export.Dir, SigningKeyFile: cfg.Export.SigningKeyFile,
		MaxRunning: cfg.Export.MaxRunning, MaxJobs: cfg.Export.MaxJobs, Keep: cfg.Export.Keep,
		MaxSessions: cfg.Playback.MaxSessions,
	}, rec.Index(), objects, nil, reg.Audit(), frameMark, metrics, log)
	if err != nil {
		return err
	}
	defer playback.Close()
	api, err = viewer.NewAPI(viewer.APIConfig{
		SecureCookies:  cfg.Auth.SecureCookies,
		FootageBefore:  cfg.Incident.FootageBefore,
		FootageAfter:   cfg.Incident.FootageAfter,
		TrustedProxies: proxies,
	}, viewer.APIDeps{
		Registry: reg, Footage: footageIndex{rec.Index()}, Events: alertEvents{alertSvc},
		Playback: playback, Exports: exporter, Log: log.With("component", "api"),
	})
	if err != nil {
		return err
	}
	dir, err := viewer.NewLiveDirectory(reg, mgr)
	if err != nil {
		return err
	}
	live, err := viewer.NewLive(liveConfig(cfg), viewer.LiveDeps{
		Streams: mgr, Cameras: dir, Auth: api, Audit: reg.Audit(),
		Metrics: metrics, Log: log.With("component", "live"),
	})
	if err != nil {
		return err
	}
	defer live.Close()
	playback.UseLive(live) // recorded playback shares live viewing's ICE ports
	ui, err := viewer.NewUI()
	if err != nil {
		return err
	}
	srv, err := viewer.New(viewer.Config{
		Listen:          cfg.HTTP.Listen,
		TLSCert:         cfg.HTTP.TLSCert,
		TLSKey:          cfg.HTTP.TLSKey,
		ShutdownTimeout: cfg.HTTP.ShutdownTimeout,
	}, log, metrics, checks, api, live, ui, alertSvc)
	if err != nil {
		return err
	}
	addr, err := srv.Listen()
	if err != nil {
		return err
	}
	if hooks != nil && hooks.ready != nil {
		hooks.ready(addr.String())
	}

	// Ingest stops after the recorder: the recorder closes its open
	// segments while the cameras still send, so the shutdown is recorded as
	// recorder_down at the next start rather than as a camera problem.
	ingestCtx, stopIngest := context.WithCancel(context.WithoutCancel(ctx))
	defer stopIngest()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return mgr.Run(ingestCtx) })
	g.Go(func() error {
		defer stopIngest()
		return rec.Run(gctx)
	})

	g.Go(func() error { return syncCameras(gctx, mgr, cfg.Cameras, reg, 5*time.Second, log) })
	g.Go(func() error { return alertSvc.Run(gctx) })
	g.Go(func() error { return live.Run(gctx) })
	g.Go(func() error { return playback.Run(gctx) })
	g.Go(func() error { return exporter.Run(gctx) })
	g.Go(func() error { return srv.Run(gctx) })
	up.Set(1)
	log.Info("kuzet running", "http", addr.String())
	err = g.Wait()
	up.Set(0)
	if err != nil && ctx.Err() == nil {
		return err
	}
	log.Info("kuzet stopped")
	return nil
}

// openDatabase connects to PostgreSQL within the connect timeout, so that a
// wrong or unreachable database stops the start with a clear message.
func openDatabase(ctx context.Context, c config.Database, log *slog.Logger) (*pgxpool.Pool, error) {
	pcfg, err := pgxpool.ParseConfig(c.URL.String())
	if err != nil {
		return nil, fmt.Errorf("config key \"database.url\": %v", redactErr(err, c.URL))
	}
	pcfg.MaxConns = int32(c.MaxConns)
	pcfg.ConnConfig.ConnectTimeout = c.ConnectTimeout
	cctx, cancel := context.WithTimeout(ctx, c.ConnectTimeout)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(cctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("database %s: %v", c.URL.Redacted(), redactErr(err, c.URL))
	}
	if err := pool.Ping(cctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("database %s unreachable: %v", c.URL.Redacted(), redactErr(err, c.URL))
	}
	log.Info("database connected", "url", c.URL.Redacted())
	return pool, nil
}

// liveConfig maps the configuration onto live viewing.
func liveConfig(cfg config.Config) viewer.LiveConfig {
	servers := make([]viewer.ICEServer, len(cfg.WebRTC.ICEServers))
	for i, s := range cfg.WebRTC.ICEServers {
		servers[i] = viewer.ICEServer{URLs: s.URLs, Username: s.Username, Credential: s.Credential}
	}
	return viewer.LiveConfig{
		ICEUDPListen:    cfg.WebRTC.UDPListen,
		ICETCPListen:    cfg.WebRTC.TCPListen,
		DisableICETCP:   cfg.WebRTC.DisableTCP,
		PublicIPs:       cfg.WebRTC.PublicIPs,
		IncludeLoopback: cfg.WebRTC.IncludeLoopback,
		ICEServers:      servers,
		ConnectTimeout:  cfg.WebRTC.ConnectTimeout,
		MaxSessions:     cfg.WebRTC.MaxSessions,
		QueueItems:      cfg.Ingest.LiveQueue,
	}
}

func parsePrefixes(ss []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range ss {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("config key \"auth.trusted_proxies\": %w", err)
		}
		out = append(out, p)
	}
	return out, nil
}

// redactErr removes the database password from an error message.
func redactErr(err error, u config.URL) string {
	msg := err.Error()
	if u.URL != nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			msg = strings.ReplaceAll(msg, p, "xxxxx")
		}
	}
	return msg
}
