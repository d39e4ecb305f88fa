package pgserver_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/kuzet/kuzet/internal/pgserver"
	"github.com/kuzet/kuzet/internal/testenv"
)

func TestStartCreatesReusesAndStops(t *testing.T) {
	if _, err := pgserver.Bin("initdb"); err != nil {
		testenv.Missing(t, "PostgreSQL server binaries", err.Error())
	}
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "kuzet-pgserver-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	port := testenv.FreePort(t)
	c, err := pgserver.Start(ctx, dir, port)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { _ = c.Stop() })
	u, err := c.EnsureDatabase(ctx, "kuzet")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(strings.Split(u, "?")[0], "/kuzet") {
		t.Fatalf("database url %s", u)
	}
	if _, err := c.EnsureDatabase(ctx, "kuzet"); err != nil {
		t.Fatalf("second EnsureDatabase: %v", err)
	}
	if err := pgserver.Ping(ctx, u); err != nil {
		t.Fatal(err)
	}
	// Start again on the running cluster: found, not re-created.
	if _, err := pgserver.Start(ctx, dir, port); err != nil {
		t.Fatalf("restart on running cluster: %v", err)
	}
	// Another cluster directory on the same port is refused, not mistaken
	// for this one.
	other, err := os.MkdirTemp("", "kuzet-pgserver-other-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(other) })
	if _, err := pgserver.Start(ctx, other, port); err == nil || !strings.Contains(err.Error(), "used by another PostgreSQL") {
		t.Fatalf("another cluster's port: got %v", err)
	}
	// Stop works on a cluster found running (as root it must still go
	// through the postgres user).
	found, err := pgserver.Start(ctx, dir, port)
	if err != nil {
		t.Fatal(err)
	}
	if err := found.Stop(); err != nil {
		t.Fatal(err)
	}
	if pgserver.Ping(ctx, u) == nil {
		t.Fatal("still answering after Stop")
	}
	// Start again on the stopped cluster: the data survives.
	c, err = pgserver.Start(ctx, dir, port)
	if err != nil {
		t.Fatalf("start after stop: %v", err)
	}
	if err := pgserver.Ping(ctx, u); err != nil {
		t.Fatalf("database lost across restart: %v", err)
	}
}
