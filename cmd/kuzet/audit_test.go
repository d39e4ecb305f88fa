package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os/exec"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kuzet/kuzet/internal/testenv"
	"github.com/kuzet/kuzet/registry"
)

func strptr(s string) *string { return &s }

func TestMigrateAppliesOnceThenIsANoOp(t *testing.T) {
	url := testenv.PostgresURL(t)
	ctx := context.Background()
	db := databaseFlags{config: strptr(""), database: &url}
	var out bytes.Buffer
	if err := runMigrate(ctx, db, "", &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "registry: applied 0001_registry.sql") {
		t.Fatalf("first run: %q", out.String())
	}
	out.Reset()
	if err := runMigrate(ctx, db, "", &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "registry: up to date at version 1") {
		t.Fatalf("second run: %q", out.String())
	}
	out.Reset()
	if err := runMigrate(ctx, db, "root", &out); err != nil || !strings.Contains(out.String(), "created administrator root with password ") {
		t.Fatalf("bootstrap: %v %q", err, out.String())
	}
	out.Reset()
	if err := runMigrate(ctx, db, "root2", &out); err != nil || !strings.Contains(out.String(), "no administrator created") {
		t.Fatalf("second bootstrap: %v %q", err, out.String())
	}
	bad := "mysql://x"
	if err := runMigrate(ctx, databaseFlags{config: strptr(""), database: &bad}, "", io.Discard); !errors.Is(err, errUsage) {
		t.Fatalf("bad URL: %v", err)
	}
}

// TestAuditVerifyNamesTheFirstTamperedRow writes audit rows through the
// registry, tampers with them as the database superuser (triggers off), and
// runs `kuzet audit verify`: it exits 1 and names the row.
func TestAuditVerifyNamesTheFirstTamperedRow(t *testing.T) {
	url := testenv.PostgresURL(t)
	ctx := context.Background()
	db := databaseFlags{config: strptr(""), database: &url}
	if err := runMigrate(ctx, db, "", io.Discard); err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	reg, err := registry.New(registry.Config{Password: registry.PasswordParams{Time: 1, MemoryKiB: 64, Threads: 1}},
		pool, noHolds{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := reg.Audit().Record(ctx, registry.Entry{Actor: "alice", Action: registry.AuditExport,
			Objects: []string{"camera:f16-c01"}, Reason: "case " + string(rune('A'+i))}); err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	if err := runAuditVerify(ctx, db, &out); err != nil || !strings.Contains(out.String(), "audit log OK: 5 rows; last row 5") {
		t.Fatalf("sound chain: %v %q", err, out.String())
	}
	su, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer su.Close(ctx)
	if _, err := su.Exec(ctx, "SET session_replication_role = replica"); err != nil {
		t.Fatal(err)
	}
	if _, err := su.Exec(ctx, "UPDATE audit_log SET reason = 'nothing to see' WHERE seq = 3"); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(kuzetBinary(t), "audit", "verify", "--database", url)
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	b, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("kuzet audit verify on a tampered log: %v\n%s", err, b)
	}
	if !strings.Contains(string(b), "row 3: content does not match its hash") {
		t.Fatalf("output does not name row 3:\n%s", b)
	}
	// A deleted row is named as missing.
	if _, err := su.Exec(ctx, "UPDATE audit_log SET reason = 'case C' WHERE seq = 3; DELETE FROM audit_log WHERE seq = 2"); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := runAuditVerify(ctx, db, &out); !errors.Is(err, errAuditBroken) || !strings.Contains(out.String(), "row 2: row is missing") {
		t.Fatalf("deleted row: %v %q", err, out.String())
	}
}
