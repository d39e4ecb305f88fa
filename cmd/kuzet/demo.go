package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/kuzet/kuzet/internal/camsim"
	"github.com/kuzet/kuzet/internal/config"
	"github.com/kuzet/kuzet/internal/pgserver"
	"github.com/kuzet/kuzet/registry"
)

// demoCameras is how many simulated cameras the demo serves: the demo
// registry has four cameras in each of facilities #16, #27 and #47,
// at /cam/1 ... /cam/12.
const demoCameras = 12

// demoOptions are the flags of kuzet demo.
type demoOptions struct {
	dir        string
	listen     string
	rtspListen string
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
			fs.IntVar(&o.pgPort, "pg-port", 54329, "loopback `port` of the private PostgreSQL")
			fs.StringVar(&o.clip, "clip", "", "clip the simulated cameras loop (default: the embedded 640x360 H.264 clip)")
			return func(ctx context.Context, args []string) error {
				if len(args) > 0 {
					return usageErrorf("unexpected argument %q", args[0])
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
	cfg.SecretKeyFile = filepath.Join(o.dir, "secret.key")
	cfg.WebRTC.IncludeLoopback = true // the browser is on this machine
	if err := config.ApplyEnv(&cfg, os.Environ()); err != nil {
		return err
	}
	if err := ensureSecretKey(cfg.SecretKeyFile); err != nil {
		return err
	}
	if cfg.Export.SigningKeyFile == "" {
		cfg.Export.SigningKeyFile = filepath.Join(o.dir, "export-signing.pem")
		cfg.Export.Dir = filepath.Join(o.dir, "exports")
		if _, err := os.Stat(cfg.Export.SigningKeyFile); err != nil {
			if err := makeExportKey(cfg.Export.SigningKeyFile, io.Discard); err != nil {
				return fmt.Errorf("demo export signing key: %w", err)
			}
		}
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
		Cameras: demoCameras,
		Clip:    o.clip,
	}, log.With("component", "camsim"))
	if err != nil {
		return fmt.Errorf("camera simulator: %w", err)
	}
	if err := sim.Start(); err != nil {
		return fmt.Errorf("camera simulator: %w", err)
	}
	defer sim.Close()
	if err := cfg.Validate(); err != nil {
		return err
	}

	var logins []registry.DemoLogin
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		return serve(gctx, cfg, log, &serveHooks{
			seed: func(ctx context.Context, reg *registry.Registry) error {
				var err error
				logins, err = registry.SeedDemo(ctx, reg, "rtsp://"+sim.Addr())
				if err != nil {
					return fmt.Errorf("demo data: %w", err)
				}
				return nil
			},
			ready: func(addr string) { printDemo(out, addr, sim, o.dir, logins) },
			frameMark: func(codec string, nalus [][]byte) (time.Time, bool) {
				m, ok := camsim.FindMark(codec, nalus)
				return m.Capture, ok
			},
		})
	})
	if err := g.Wait(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

func printDemo(out io.Writer, addr string, sim *camsim.Server, dir string, logins []registry.DemoLogin) {
	fmt.Fprintf(out, "\nKuzet demo is running.\n\n  UI:      http://%s/\n  metrics: http://%s/metrics\n  cameras: %d simulated at rtsp://%s/cam/N\n\nDemo logins (new passwords at every start):\n",
		addr, addr, sim.Cameras(), sim.Addr())
	for _, l := range logins {
		scope := "all facilities"
		if len(l.Facilities) > 0 {
			scope = strings.Join(l.Facilities, ", ")
		}
		roles := make([]string, len(l.Roles))
		for i, r := range l.Roles {
			roles[i] = string(r)
		}
		fmt.Fprintf(out, "  %-22s %-20s %-26s %s\n", l.Username, l.Password, strings.Join(roles, ","), scope)
	}
	fmt.Fprintf(out, "\nCtrl-C stops it; state is kept in %s.\n\n", dir)
}

// ensureSecretKey writes a random key for camera credentials at path on the
// first run; later runs reuse it, so credentials sealed before stay readable.
func ensureSecretKey(path string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	var k [registry.SecretKeySize]byte
	if _, err := rand.Read(k[:]); err != nil {
		return err
	}
	if err := os.WriteFile(path, []byte(hex.EncodeToString(k[:])+"\n"), 0o600); err != nil {
		return fmt.Errorf("demo secret key: %w", err)
	}
	return nil
}
