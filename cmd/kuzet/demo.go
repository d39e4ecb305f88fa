package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"golang.org/x/sync/errgroup"

	"github.com/kuzet/kuzet/internal/camsim"
	"github.com/kuzet/kuzet/internal/config"
	"github.com/kuzet/kuzet/internal/pgserver"
)

// demoFacilities are the pilot facilities of the demo: correctional
// facilities #16, #27 and #47.
var demoFacilities = []string{"f16", "f27", "f47"}

// demoOptions are the flags of kuzet demo.
type demoOptions struct {
	dir        string
	listen     string
	rtspListen string
	perFacil   int
	pgPort     int
	clip       string
}

func demoCommand() command {
	return command{
		name:  "demo",
		usage: "[flags]",
		summary: "Run everything on this machine with simulated cameras and demo data.\n\n" +
			"Starts a private PostgreSQL under DIR/pg from the locally installed server binaries\n" +
			"(unless KUZET_DATABASE_URL is set), a local-disk object store under DIR/store, the\n" +
			"camera simulator with cameras for facilities #16, #27 and #47, and the service with\n" +
			"its UI. Prints the UI address and the demo logins. Re-running reuses DIR.",
		flags: func(fs *flag.FlagSet) func(context.Context, []string) error {
			o := demoOptions{}
			fs.StringVar(&o.dir, "dir", "./var", "`directory` for the demo's database, spool and recordings")
			fs.StringVar(&o.listen, "listen", "127.0.0.1:8080", "HTTP `address` of the UI and API")
			fs.StringVar(&o.rtspListen, "rtsp-listen", "127.0.0.1:8554", "RTSP `address` of the simulated cameras")
			fs.IntVar(&o.perFacil, "cameras-per-facility", 4, "simulated cameras per facility (at least 4)")
			fs.IntVar(&o.pgPort, "pg-port", 54329, "loopback `port` of the private PostgreSQL")
			fs.StringVar(&o.clip, "clip", "", "clip the simulated cameras loop (default: the embedded 640x360 H.264 clip)")
			return func(ctx context.Context, args []string) error {
				if len(args) > 0 {
					return usageErrorf("unexpected argument %q", args[0])
				}
				if o.perFacil < 4 || o.perFacil > 64 {
					return usageErrorf("--cameras-per-facility must be between 4 and 64")
				}
				return demo(ctx, o, os.Stdout, newLogger(os.Stderr, config.Log{Level: "info", Format: "text"}))
			}
		},
	}
}

func demo(ctx context.Context, o demoOptions, out io.Writer, log *slog.Logger) error {
	if err := os.MkdirAll(o.dir, 0o755); err != nil {
		return err
	}
	cfg := config.Default()
	cfg.HTTP.Listen = o.listen
	cfg.Store.FS.Dir = filepath.Join(o.dir, "store")
	cfg.Recorder.SpoolDir = filepath.Join(o.dir, "spool")
	if err := config.ApplyEnv(&cfg, os.Environ()); err != nil {
		return err
	}

	if cfg.Database.URL.IsZero() {
		log.Info("starting private PostgreSQL", "dir", filepath.Join(o.dir, "pg"), "port", o.pgPort)
		cluster, err := pgserver.Start(ctx, filepath.Join(o.dir, "pg"), o.pgPort)
		if err != nil {
			return fmt.Errorf("private PostgreSQL: %w (or set KUZET_DATABASE_URL to use your own)", err)
		}
		defer func() {
			if err := cluster.Stop(); err != nil {
				log.Warn("stopping private PostgreSQL", "err", err)
			}
		}()
		dbURL, err := cluster.EnsureDatabase(ctx, "kuzet")
		if err != nil {
			return err
		}
		if cfg.Database.URL, err = config.ParseURL(dbURL); err != nil {
			return err
		}
	}

	sim, err := camsim.New(camsim.Config{
		Listen:  o.rtspListen,
		Cameras: o.perFacil * len(demoFacilities),
		Clip:    o.clip,
	}, log.With("component", "camsim"))
	if err != nil {
		return fmt.Errorf("camera simulator: %w", err)
	}
	if err := sim.Start(); err != nil {
		return fmt.Errorf("camera simulator: %w", err)
	}
	defer sim.Close()
	cfg.Cameras = demoCameras(sim, o.perFacil)
	if err := cfg.Validate(); err != nil {
		return err
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		return serve(gctx, cfg, log, &serveHooks{ready: func(addr string) {
			fmt.Fprintf(out, "\nKuzet demo is running.\n\n  UI:      http://%s/\n  metrics: http://%s/metrics\n  cameras: %d simulated at rtsp://%s/cam/1..%d\n\nCtrl-C stops it; state is kept in %s.\n\n",
				addr, addr, len(cfg.Cameras), sim.Addr(), len(cfg.Cameras), o.dir)
		}})
	})
	if err := g.Wait(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// demoCameras numbers the simulated cameras across the facilities:
// f16-c01 is /cam/1, f27-c01 is /cam/(perFacility+1), and so on.
func demoCameras(sim *camsim.Server, perFacility int) []config.Camera {
	var cams []config.Camera
	n := 1
	for _, f := range demoFacilities {
		for i := 1; i <= perFacility; i++ {
			u, _ := config.ParseURL(sim.URL(n))
			cams = append(cams, config.Camera{
				ID:       fmt.Sprintf("%s-c%02d", f, i),
				Facility: f,
				Name:     fmt.Sprintf("Facility #%s camera %d", f[1:], i),
				URL:      u,
				Enabled:  true,
			})
			n++
		}
	}
	return cams
}
