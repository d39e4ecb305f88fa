package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kuzet/kuzet/alerts"
	"github.com/kuzet/kuzet/internal/config"
	"github.com/kuzet/kuzet/internal/migrate"
	"github.com/kuzet/kuzet/recorder/index"
	"github.com/kuzet/kuzet/registry"
)

// migrationSets lists every component's schema, in the order they apply.
func migrationSets() []migrate.Set {
	return []migrate.Set{registry.Migrations(), index.Migrations, alerts.Migrations()}
}

// databaseFlags are the --config and --database flags shared by the
// commands that only need the database.
type databaseFlags struct {
	config, database *string
}

func addDatabaseFlags(fs *flag.FlagSet) databaseFlags {
	return databaseFlags{
		config:   fs.String("config", os.Getenv("KUZET_CONFIG"), "configuration `file` (YAML) to take database.url from; default none, or $KUZET_CONFIG"),
		database: fs.String("database", "", "PostgreSQL `URL`; default database.url of the configuration, or $KUZET_DATABASE_URL"),
	}
}

// open connects to the database named by the flags.
func (d databaseFlags) open(ctx context.Context, log *slog.Logger) (*pgxpool.Pool, error) {
	cfg, err := config.Load(*d.config, os.Environ())
	if err != nil {
		return nil, err
	}
	if *d.database != "" {
		u, err := config.ParseURL(*d.database)
		if err != nil {
			return nil, usageErrorf("--database: %v", err)
		}
		if u.Scheme != "postgres" && u.Scheme != "postgresql" {
			return nil, usageErrorf("--database: scheme must be postgres:// or postgresql://")
		}
		cfg.Database.URL = u
	}
	if cfg.Database.URL.IsZero() {
		return nil, usageErrorf("no database: give --database URL, set KUZET_DATABASE_URL, or database.url in --config")
	}
	return openDatabase(ctx, cfg.Database, log)
}

func migrateCommand() command {
	return command{
		name:  "migrate",
		usage: "[--database URL] [--config FILE]",
		summary: "Apply the database schema migrations of every component.\n\n" +
			"Migrations are embedded in the binary and applied in order, each in its own\n" +
			"transaction; running it again is a no-op. kuzet serve applies them at start too.",
		flags: func(fs *flag.FlagSet) func(context.Context, []string) error {
			db := addDatabaseFlags(fs)
			admin := fs.String("bootstrap-admin", "", "when the registry has no user yet, create this `user` as an administrator of\n"+
				"all facilities with a random password, printed once")
			return func(ctx context.Context, args []string) error {
				if len(args) > 0 {
					return usageErrorf("unexpected argument %q", args[0])
				}
				if *admin != "" && !registry.ValidUsername(*admin) {
					return usageErrorf("--bootstrap-admin: %q is not a user name (lower-case letters, digits, '.', '_', '-')", *admin)
				}
				return runMigrate(ctx, db, *admin, os.Stdout)
			}
		},
	}
}

// noHolds refuses legal holds: kuzet migrate runs without a recorder, and
// nothing it does places one.
type noHolds struct{}

var errNoRecorder = errors.New("no recorder in this command")

func (noHolds) PlaceHold(context.Context, string, time.Time, time.Time, string, int64) error {
	return errNoRecorder
}
func (noHolds) ReleaseHold(context.Context, string, int64) error { return errNoRecorder }

func runMigrate(ctx context.Context, db databaseFlags, bootstrapAdmin string, out io.Writer) error {
	pool, err := db.open(ctx, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer pool.Close()
	res, err := migrate.Apply(ctx, pool, migrationSets()...)
	for _, r := range res {
		if len(r.Applied) == 0 {
			fmt.Fprintf(out, "%s: up to date at version %d\n", r.Component, r.Current)
		} else {
			fmt.Fprintf(out, "%s: applied %s; now at version %d\n", r.Component, strings.Join(r.Applied, ", "), r.Current)
		}
	}
	if err != nil || bootstrapAdmin == "" {
		return err
	}
	reg, err := registry.New(registry.Config{}, pool, noHolds{}, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	pw, created, err := reg.BootstrapAdmin(ctx, registry.System("migrate"), bootstrapAdmin)
	if err != nil {
		return fmt.Errorf("bootstrap administrator: %w", err)
	}
	if !created {
		fmt.Fprintf(out, "registry: users exist already; no administrator created\n")
		return nil
	}
	fmt.Fprintf(out, "registry: created administrator %s with password %s\n(shown once: log in and change it)\n", bootstrapAdmin, pw)
	return nil
}
