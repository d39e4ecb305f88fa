package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
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

// PostgresBin finds a PostgreSQL server binary (initdb, pg_ctl, postgres):
// on PATH or under /usr/lib/postgresql/*/bin.
func PostgresBin(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/" + name)
	if len(matches) > 0 {
		return matches[len(matches)-1], nil
	}
	return "", fmt.Errorf("%s not found (apt-get install postgresql)", name)
}

// throwawayCluster starts (or reuses) a private cluster under the cache
// directory, listening on a Unix socket and a fixed loopback port. It stays
// running for later test packages; `make clean` removes it.
func throwawayCluster() (string, error) {
	initdb, err := PostgresBin("initdb")
	if err != nil {
		return "", err
	}
	pgctl, err := PostgresBin("pg_ctl")
	if err != nil {
		return "", err
	}
	dir := filepath.Join(CacheDir(), "pg")
	data := filepath.Join(dir, "data")
	const port = "55432"
	u := "postgres://postgres@127.0.0.1:" + port + "/postgres?sslmode=disable"
	if ping(u) == nil {
		return u, nil
	}
	asUser := func(cmd *exec.Cmd) *exec.Cmd { return cmd }
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root: run it as nobody-owned files via
		// the postgres system user when it exists.
		if _, err := exec.LookPath("runuser"); err == nil {
			if _, err := exec.Command("id", "postgres").Output(); err == nil {
				asUser = func(cmd *exec.Cmd) *exec.Cmd {
					args := append([]string{"-u", "postgres", "--", cmd.Path}, cmd.Args[1:]...)
					return exec.Command("runuser", args...)
				}
			}
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if os.Geteuid() == 0 {
		_ = exec.Command("chown", "-R", "postgres", dir).Run()
	}
	if _, err := os.Stat(filepath.Join(data, "PG_VERSION")); err != nil {
		out, err := asUser(exec.Command(initdb, "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8")).CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("initdb: %v: %s", err, out)
		}
	}
	out, err := asUser(exec.Command(pgctl, "-D", data, "-l", filepath.Join(dir, "log"), "-w", "-t", "30",
		"-o", "-p "+port+" -k "+dir+" -c listen_addresses=127.0.0.1 -c fsync=off", "start")).CombinedOutput()
	if err != nil && ping(u) != nil {
		return "", fmt.Errorf("pg_ctl start: %v: %s", err, out)
	}
	return u, ping(u)
}
