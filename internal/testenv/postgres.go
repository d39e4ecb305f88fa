package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kuzet/kuzet/internal/pgserver"
)

var (
	adminOnce sync.Once
	adminURL  string
	adminErr  error
)

// PostgresURL creates a fresh, empty database for this test and returns its
// URL; the database is dropped when the test ends. The server is, in order:
// KUZET_TEST_DATABASE_URL, PostgreSQL on 127.0.0.1:5432 (user postgres), or a
// throwaway cluster started with initdb/pg_ctl under the test cache directory.
func PostgresURL(t testing.TB) string {
	t.Helper()
	adminOnce.Do(func() { adminURL, adminErr = findPostgres() })
	if adminErr != nil {
		Missing(t, "PostgreSQL", adminErr.Error())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		t.Fatalf("testenv: connect to PostgreSQL: %v", err)
	}
	defer conn.Close(ctx)
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "kuzet_test_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("testenv: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, adminURL)
		if err != nil {
			t.Logf("testenv: drop database %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("testenv: drop database %s: %v", name, err)
		}
	})
	u, _ := url.Parse(adminURL)
	u.Path = "/" + name
	return u.String()
}

// Postgres returns a pool on a fresh database for this test (see PostgresURL).
func Postgres(t testing.TB) *pgxpool.Pool {
	t.Helper()
	u := PostgresURL(t)
	pool, err := pgxpool.New(context.Background(), u)
	if err != nil {
		t.Fatalf("testenv: pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// AdminURL returns the URL of the test server's maintenance database, for
// tests that need superuser rights (creating roles, tampering with tables).
func AdminURL(t testing.TB) string {
	t.Helper()
	adminOnce.Do(func() { adminURL, adminErr = findPostgres() })
	if adminErr != nil {
		Missing(t, "PostgreSQL", adminErr.Error())
	}
	return adminURL
}

func findPostgres() (string, error) {
	candidates := []string{}
	if u := os.Getenv("KUZET_TEST_DATABASE_URL"); u != "" {
		candidates = append(candidates, u)
	}
	candidates = append(candidates, "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable")
	var errs []string
	for _, u := range candidates {
		if err := ping(u); err == nil {
			return u, nil
		} else {
			errs = append(errs, err.Error())
		}
	}
	u, err := throwawayCluster()
	if err == nil {
		return u, nil
	}
	errs = append(errs, err.Error())
	return "", fmt.Errorf("no PostgreSQL reachable and none could be started (%s); install it with apt-get install postgresql, or set KUZET_TEST_DATABASE_URL", strings.Join(errs, "; "))
}

func ping(u string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, u)
	if err != nil {
		return fmt.Errorf("%s: %w", redact(u), err)
	}
	defer c.Close(ctx)
	return c.Ping(ctx)
}

func redact(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	return "(url)"
}

// throwawayCluster starts (or reuses) a private cluster under the system
// temporary directory on a fixed loopback port. It stays running for later
// test packages; `make clean` stops and removes it.
func throwawayCluster() (string, error) {
	c, err := pgserver.Start(context.Background(), filepath.Join(os.TempDir(), "kuzet-test-pg"), 55432)
	if err != nil {
		return "", err
	}
	return c.URL, nil
}
