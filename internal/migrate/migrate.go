// Package migrate applies versioned SQL migrations embedded in the binary.
//
// Each component (the registry, the recorder index, ...) owns a set of files
// named NNNN_description.sql, applied in order, each in its own transaction,
// and recorded in kuzet_schema_migrations (component, version). Applying is
// idempotent: a migration already recorded is skipped, so running at every
// start is a no-op once the schema is current. A PostgreSQL advisory lock
// serialises concurrent starts of several nodes. A migration file that was
// changed after being applied is refused (its SHA-256 is recorded), because
// the database would no longer match the code.
//
// It holds no state and starts no goroutines.
package migrate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// advisoryKey is the pg_advisory_lock key taken while migrating.
const advisoryKey = 0x6b757a6574 // "kuzet"

// Set is one component's migrations.
type Set struct {
	// Component names the owner ("registry", "recorder"). Required.
	Component string
	// FS holds the files; Dir is the directory in it. Files not ending in
	// .sql are ignored.
	FS  fs.FS
	Dir string
}

// Migration is one parsed file.
type Migration struct {
	Version int
	Name    string
	SQL     string
	Sum     string
}

// Load reads and orders the migrations of a set.
func (s Set) Load() ([]Migration, error) {
	entries, err := fs.ReadDir(s.FS, s.Dir)
	if err != nil {
		return nil, fmt.Errorf("migrate %s: %w", s.Component, err)
	}
	var ms []Migration
	seen := map[int]string{}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migrate %s: %s: name must be NNNN_description.sql", s.Component, e.Name())
		}
		if prev, dup := seen[v]; dup {
			return nil, fmt.Errorf("migrate %s: %s and %s share version %d", s.Component, prev, e.Name(), v)
		}
		seen[v] = e.Name()
		b, err := fs.ReadFile(s.FS, path.Join(s.Dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("migrate %s: %w", s.Component, err)
		}
		sum := sha256.Sum256(b)
		ms = append(ms, Migration{Version: v, Name: e.Name(), SQL: string(b), Sum: hex.EncodeToString(sum[:])})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	return ms, nil
}

// Result says what Apply did for one set.
type Result struct {
	Component string
	Applied   []string // names applied now
	Current   int      // highest version now applied
}

// Apply brings the database up to date with every set, in the order given.
func Apply(ctx context.Context, pool *pgxpool.Pool, sets ...Set) ([]Result, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate: connect: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", advisoryKey); err != nil {
		return nil, fmt.Errorf("migrate: lock: %w", err)
	}
	defer func() { _, _ = conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", advisoryKey) }()
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS kuzet_schema_migrations (
		component  text        NOT NULL,
		version    integer     NOT NULL,
		name       text        NOT NULL,
		sha256     text        NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now(),
		PRIMARY KEY (component, version))`); err != nil {
		return nil, fmt.Errorf("migrate: bookkeeping table: %w", err)
	}
	var results []Result
	for _, s := range sets {
		ms, err := s.Load()
		if err != nil {
			return results, err
		}
		res := Result{Component: s.Component}
		applied := map[int]string{}
		rows, err := conn.Query(ctx, "SELECT version, sha256 FROM kuzet_schema_migrations WHERE component = $1", s.Component)
		if err != nil {
			return results, fmt.Errorf("migrate %s: %w", s.Component, err)
		}
		for rows.Next() {
			var v int
			var sum string
			if err := rows.Scan(&v, &sum); err != nil {
				rows.Close()
				return results, fmt.Errorf("migrate %s: %w", s.Component, err)
			}
			applied[v] = sum
			res.Current = max(res.Current, v)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return results, fmt.Errorf("migrate %s: %w", s.Component, err)
		}
		for _, m := range ms {
			if sum, ok := applied[m.Version]; ok {
				if sum != m.Sum {
					return results, fmt.Errorf("migrate %s: %s was changed after it was applied (recorded sha256 %s, file %s)", s.Component, m.Name, sum[:12], m.Sum[:12])
				}
				continue
			}
			err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, m.SQL); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, "INSERT INTO kuzet_schema_migrations (component, version, name, sha256) VALUES ($1, $2, $3, $4)",
					s.Component, m.Version, m.Name, m.Sum)
				return err
			})
			if err != nil {
				return results, fmt.Errorf("migrate %s: %s: %w", s.Component, m.Name, err)
			}
			res.Applied = append(res.Applied, m.Name)
			res.Current = max(res.Current, m.Version)
		}
		results = append(results, res)
	}
	return results, nil
}
