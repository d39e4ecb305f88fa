// Package pgserver runs a private PostgreSQL cluster from the locally
// installed server binaries (initdb, pg_ctl): the embedded database of
// `kuzet demo` and the fallback database of the tests.
//
// The cluster lives in one directory and listens on 127.0.0.1 at a chosen
// port with trust authentication for the local user postgres. It is meant
// for one machine and one person; production points at a real PostgreSQL.
// Start blocks until the server accepts connections; nothing here keeps
// goroutines running.
package pgserver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// Cluster is a private PostgreSQL cluster.
type Cluster struct {
	Dir  string // holds data/, the socket and log
	Port int
	// URL connects as postgres to the postgres database.
	URL string

	pgctl string
	asPG  bool
}

// Bin finds a PostgreSQL server binary: on PATH or under
// /usr/lib/postgresql/*/bin (where Debian installs them).
func Bin(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/" + name)
	if len(matches) > 0 {
		return matches[len(matches)-1], nil
	}
	return "", fmt.Errorf("PostgreSQL server binary %s not found (install the postgresql package)", name)
}

// Start creates the cluster in dir when it does not exist yet, starts it on
// port (or finds it already running there), and waits until it answers.
func Start(ctx context.Context, dir string, port int) (*Cluster, error) {
	initdb, err := Bin("initdb")
	if err != nil {
		return nil, err
	}
	pgctl, err := Bin("pg_ctl")
	if err != nil {
		return nil, err
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	c := &Cluster{
		Dir:   dir,
		Port:  port,
		URL:   fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port),
		pgctl: pgctl,
	}
	// PostgreSQL refuses to run as root; run it as the postgres system user.
	if os.Geteuid() == 0 {
		if _, err := user.Lookup("postgres"); err != nil {
			return nil, errors.New("running as root needs a 'postgres' system user to own the cluster (install the postgresql package)")
		}
		c.asPG = true
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if c.asPG && exec.Command("runuser", "-u", "postgres", "--", "test", "-x", filepath.Dir(dir)).Run() != nil {
		// The postgres user cannot reach dir (a checkout under /root, say):
		// keep the cluster where it can, named after dir so reruns reuse it.
		sum := sha256.Sum256([]byte(dir))
		c.Dir = filepath.Join(os.TempDir(), "kuzet-pg-"+hex.EncodeToString(sum[:6]))
		dir = c.Dir
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
	}
	if Ping(ctx, c.URL) == nil {
		// Something answers on the port: ours from an earlier run, or
		// another server that must not be mistaken for it.
		if err := c.owns(ctx); err != nil {
			return nil, err
		}
		return c, nil
	}
	data := filepath.Join(dir, "data")
	if c.asPG {
		if out, err := exec.Command("chown", "-R", "postgres", dir).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("chown %s: %v: %s", dir, err, out)
		}
	}
	if _, err := os.Stat(filepath.Join(data, "PG_VERSION")); err != nil {
		out, err := c.command(initdb, "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-instructions").CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("initdb: %v: %s", err, out)
		}
	}
	opts := "-p " + strconv.Itoa(port) + " -k " + dir + " -c listen_addresses=127.0.0.1"
	out, err := c.command(pgctl, "-D", data, "-l", filepath.Join(dir, "postgres.log"), "-w", "-t", "60", "-o", opts, "start").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("pg_ctl start: %v: %s (see %s)", err, out, filepath.Join(dir, "postgres.log"))
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := Ping(ctx, c.URL)
		if err == nil {
			return c, c.owns(ctx)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("private PostgreSQL on port %d did not answer: %w", port, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// owns checks that the server answering on the port runs on this cluster's
// data directory.
func (c *Cluster) owns(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.URL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var dir string
	if err := conn.QueryRow(ctx, "SHOW data_directory").Scan(&dir); err != nil {
		return fmt.Errorf("port %d: %w", c.Port, err)
	}
	want := filepath.Join(c.Dir, "data")
	if filepath.Clean(dir) != want {
		return fmt.Errorf("port %d is used by another PostgreSQL (data directory %s, not %s): choose another port", c.Port, dir, want)
	}
	return nil
}

// Stop shuts the cluster down (fast mode: open sessions are ended).
func (c *Cluster) Stop() error {
	out, err := c.command(c.pgctl, "-D", filepath.Join(c.Dir, "data"), "-m", "fast", "-w", "stop").CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctl stop: %v: %s", err, out)
	}
	return nil
}

func (c *Cluster) command(bin string, args ...string) *exec.Cmd {
	if c.asPG {
		return exec.Command("runuser", append([]string{"-u", "postgres", "--", bin}, args...)...)
	}
	return exec.Command(bin, args...)
}

// Ping connects to url and pings, within 3 s.
func Ping(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	return conn.Ping(ctx)
}

// EnsureDatabase creates database name on the cluster when it is missing
// and returns its URL.
func (c *Cluster) EnsureDatabase(ctx context.Context, name string) (string, error) {
	conn, err := pgx.Connect(ctx, c.URL)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return "", err
	}
	if !exists {
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
			return "", fmt.Errorf("create database %s: %w", name, err)
		}
	}
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.Port, name), nil
}
