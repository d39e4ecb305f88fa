package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kuzet/kuzet/internal/config"
	"github.com/kuzet/kuzet/recorder/store"
)

// openStore builds the configured object store and prepares it: the fs
// store sweeps temporary files a crash left behind; for s3 a bucket without
// object lock is reported, since legal holds then bind only Kuzet itself.
func openStore(ctx context.Context, c config.Store, log *slog.Logger, reg prometheus.Registerer) (store.Store, error) {
	m, err := store.NewMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("store metrics: %w", err)
	}
	switch c.Kind {
	case "fs":
		fs, err := store.NewFS(store.FSConfig{Dir: c.FS.Dir}, log, m)
		if err != nil {
			return nil, fmt.Errorf("config key \"store.fs.dir\": %w", err)
		}
		if n, err := fs.Sweep(ctx, time.Hour); err != nil {
			log.Warn("object store: sweeping temporary files", "err", err)
		} else if n > 0 {
			log.Info("object store: removed temporary files left by a crash", "count", n)
		}
		return fs, nil
	case "s3":
		s3, err := store.NewS3(store.S3Config{
			Endpoint:           c.S3.Endpoint,
			Bucket:             c.S3.Bucket,
			Region:             c.S3.Region,
			AccessKey:          c.S3.AccessKey,
			SecretKey:          c.S3.SecretKey,
			TLS:                c.S3.TLS,
			MultipartThreshold: int64(c.S3.MultipartThreshold),
		}, log, m)
		if err != nil {
			return nil, fmt.Errorf("store s3: %w", err)
		}
		lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if on, err := s3.LockEnabled(lctx); err != nil {
			log.Warn("object store: cannot tell whether the bucket has object lock; will retry uploads", "bucket", c.S3.Bucket, "err", err)
		} else if !on {
			log.Warn("object store: bucket has no object lock; legal holds will not bind the store's own administrators", "bucket", c.S3.Bucket)
		}
		return s3, nil
	default:
		return nil, fmt.Errorf("config key \"store.kind\": unknown kind %q", c.Kind)
	}
}
