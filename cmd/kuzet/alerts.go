package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kuzet/kuzet/alerts"
	"github.com/kuzet/kuzet/internal/config"
	"github.com/kuzet/kuzet/recorder"
	"github.com/kuzet/kuzet/viewer"
)

// newAlerts builds the alert service from its configuration section; the
// webhooks (with their HMAC secrets) come from their own file.
func newAlerts(c config.Alerts, deps alerts.Deps, reg prometheus.Registerer) (*alerts.Service, error) {
	m, err := alerts.NewMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("alerts metrics: %w", err)
	}
	deps.Metrics = m
	cfg := alerts.Config{
		Node:            c.Node,
		OfflineAfter:    c.OfflineAfter,
		LowFPSFor:       c.LowFPSFor,
		ClockOffsetMax:  c.ClockOffsetMax,
		RecordingLagMax: c.RecordingLagMax,
		EscalateAfter:   c.EscalateAfter,
		EventRetention:  c.EventRetention,
	}
	if c.WebhooksFile != "" {
		b, err := os.ReadFile(c.WebhooksFile)
		if err != nil {
			return nil, fmt.Errorf("config key \"alerts.webhooks_file\": %w", err)
		}
		if cfg.Webhooks, err = alerts.ParseWebhooks(b); err != nil {
			return nil, fmt.Errorf("config key \"alerts.webhooks_file\" (%s): %w", c.WebhooksFile, err)
		}
	}
	return alerts.New(cfg, deps)
}

// recorderStorage reports the recorder's spool, upload and dependency state
// to the alert detectors.
type recorderStorage struct{ rec *recorder.Recorder }

func (r recorderStorage) StorageHealth() alerts.StorageHealth {
	h := r.rec.Health()
	return alerts.StorageHealth{
		SpoolUsed:          h.SpoolUsed,
		SpoolQuota:         h.SpoolQuota,
		UploadBacklog:      h.UploadBacklog,
		UploadBacklogBytes: h.UploadBacklogBytes,
		RecordingLag:       h.RecordingLag,
		UploadFailures:     h.UploadFailures,
		StoreUp:            h.StoreUp,
		StoreError:         h.StoreLastError,
		DatabaseUp:         h.IndexUp,
		DatabaseError:      h.IndexLastError,
	}
}

// alertEvents shows a camera's alerts as events on incident footage and
// timelines.
type alertEvents struct{ svc *alerts.Service }

func (a alertEvents) Events(ctx context.Context, camera string, from, to time.Time) ([]viewer.FootageEvent, error) {
	as, err := a.svc.CameraAlerts(ctx, camera, from, to)
	if err != nil {
		return nil, err
	}
	out := make([]viewer.FootageEvent, 0, len(as))
	for i := len(as) - 1; i >= 0; i-- { // oldest first
		x := as[i]
		out = append(out, viewer.FootageEvent{
			ID: strconv.FormatInt(x.ID, 10), At: x.Since, Kind: string(x.Kind),
			Detail: fmt.Sprintf("%s (%s, %s)", x.Title, x.Severity, x.State),
		})
	}
	return out, nil
}
