package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/kuzet/kuzet/ingest"
	"github.com/kuzet/kuzet/internal/config"
	"github.com/kuzet/kuzet/registry"
)

// cameraSources is what the camera sync reads from the registry.
type cameraSources interface {
	CameraSources(ctx context.Context) ([]registry.CameraSource, error)
}

// syncCameras keeps the ingest manager's camera set equal to the static
// cameras of the configuration plus the enabled cameras of the registry,
// checking every interval. Only cameras that changed are restarted (the
// manager compares). A registry that cannot be read leaves the set as it
// is: cameras keep recording through a database outage.
func syncCameras(ctx context.Context, mgr *ingest.Manager, static []config.Camera, reg cameraSources, interval time.Duration, log *slog.Logger) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	var lastErr string
	isStatic := map[string]bool{}
	for _, c := range static {
		isStatic[c.ID] = true
	}
	for {
		cams := make([]ingest.CameraConfig, 0, len(static))
		for _, c := range static {
			cams = append(cams, ingest.CameraConfig{
				ID: c.ID, Facility: c.Facility, URL: c.URL.String(),
				Username: c.Username, Password: c.Password, Enabled: c.Enabled,
			})
		}
		srcs, err := reg.CameraSources(ctx)
		if err != nil && srcs == nil {
			if msg := err.Error(); msg != lastErr {
				log.Warn("camera sync: registry unreadable; keeping the current cameras", "err", err)
				lastErr = msg
			}
		} else {
			if err != nil {
				log.Warn("camera sync: some cameras left out", "err", err)
			}
			lastErr = ""
			for _, s := range srcs {
				if isStatic[s.ID] {
					continue // the configuration file wins over the registry
				}
				c := ingest.CameraConfig{ID: s.ID, Facility: s.Facility, URL: s.URL, Enabled: s.Enabled}
				if s.Credentials != nil {
					c.Username, c.Password = s.Credentials.Username, s.Credentials.Password
				}
				cams = append(cams, c)
			}
			if err := mgr.Apply(ctx, cams); err != nil && ctx.Err() == nil {
				log.Warn("camera sync: some cameras not applied", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
