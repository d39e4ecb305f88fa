package registry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

func writeAuditRows(t *testing.T, e *env, n int) {
	t.Helper()
	for i := range n {
		err := e.reg.Audit().Record(context.Background(), Entry{Actor: "alice", Role: "investigator", Client: "10.0.0.1",
			Action: AuditPlayback, Facility: "f16", Objects: []string{"camera:f16-c01", "incident:7"},
			From: e.clock.Now().Add(-time.Hour), To: e.clock.Now(), Reason: fmt.Sprintf("case %d", i)})
		if err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(time.Second)
	}
}

func TestAuditChainVerifiesAndIsLinearUnderConcurrency(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 5 {
				errs <- e.reg.Audit().Record(ctx, Entry{Actor: fmt.Sprintf("w%d", w), Action: AuditLiveStart,
					Objects: []string{fmt.Sprintf("camera:c%d", i)}})
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	res, err := VerifyAudit(ctx, e.pool)
	if err != nil {
		t.Fatal(err)
	}
	if res.Rows != 40 || res.HeadSeq != 40 || len(res.HeadHash) != 32 {
		t.Fatalf("verify: %+v", res)
	}
	rows, err := e.reg.Audit().List(ctx, AuditFilter{AnyFacility: true, Actor: "w3"})
	if err != nil || len(rows) != 5 {
		t.Fatalf("list w3: %d rows, %v", len(rows), err)
	}
}

func TestAuditRefusesEntriesWithoutRequiredFields(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	for name, en := range map[string]Entry{
		"no actor":           {Action: AuditLogin},
		"no action":          {Actor: "a"},
		"playback no reason": {Actor: "a", Action: AuditPlayback},
		"export no reason":   {Actor: "a", Action: AuditExport},
		"NUL in detail":      {Actor: "a", Action: "x", Detail: "a\x00b"},
	} {
		if err := e.reg.Audit().Record(ctx, en); !errors.Is(err, ErrAudit) {
			t.Errorf("%s: err = %v, want ErrAudit", name, err)
		}
	}
	if res, err := VerifyAudit(ctx, e.pool); err != nil || res.Rows != 0 {
		t.Fatalf("after refusals: %+v, %v", res, err)
	}
}

// superuser returns a connection to e's database as the superuser, with
// triggers off (session_replication_role = replica), to tamper as an
// attacker with full rights would.
func superuser(t *testing.T, e *env) *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, e.url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	var super bool
	if err := c.QueryRow(ctx, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user").Scan(&super); err != nil || !super {
		t.Fatalf("test database user is not a superuser (%v)", err)
	}
	if _, err := c.Exec(ctx, "SET session_replication_role = replica"); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestAuditTamperingIsDetectedAndNamesTheRow(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		tamper  string
		wantSeq int64
		want    string
	}{
		{"change reason", "UPDATE audit_log SET reason = 'nothing to see' WHERE seq = 3", 3, "altered"},
		{"change actor and rehash nothing", "UPDATE audit_log SET actor = 'mallory' WHERE seq = 5", 5, "altered"},
		{"change time", "UPDATE audit_log SET at = at + interval '1 hour' WHERE seq = 2", 2, "altered"},
		{"delete a row", "DELETE FROM audit_log WHERE seq = 4", 4, "missing"},
		{"delete the last row", "DELETE FROM audit_log WHERE seq = 6", 6, "missing"},
		{"reorder two rows", "UPDATE audit_log SET seq = 1000 WHERE seq = 3; UPDATE audit_log SET seq = 3 WHERE seq = 4; UPDATE audit_log SET seq = 4 WHERE seq = 1000", 3, "prev_hash"},
		{"renumber to hide a deletion", "DELETE FROM audit_log WHERE seq = 2; UPDATE audit_log SET seq = seq - 1 WHERE seq > 2", 2, "prev_hash"},
		{"wind back the head", "UPDATE audit_chain_head SET seq = 5, hash = (SELECT hash FROM audit_log WHERE seq = 5)", 6, "head"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			writeAuditRows(t, e, 6)
			ctx := context.Background()
			if _, err := VerifyAudit(ctx, e.pool); err != nil {
				t.Fatalf("before tampering: %v", err)
			}
			su := superuser(t, e)
			if _, err := su.Exec(ctx, tc.tamper); err != nil {
				t.Fatalf("tamper: %v", err)
			}
			_, err := VerifyAudit(ctx, e.pool)
			var ce *ChainError
			if !errors.As(err, &ce) {
				t.Fatalf("tampering not detected: %v", err)
			}
			if ce.Seq != tc.wantSeq || !strings.Contains(ce.Error(), tc.want) {
				t.Fatalf("got %v, want row %d and %q", ce, tc.wantSeq, tc.want)
			}
		})
	}
}

// TestAuditAppendOnlyForApplicationRole connects as an ordinary role with
// every table privilege, as the application would, and checks that the
// database refuses to change or remove audit rows or wind back the head.
func TestAuditAppendOnlyForApplicationRole(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	writeAuditRows(t, e, 3)
	ctx := context.Background()
	var b [4]byte
	_, _ = rand.Read(b[:])
	role := "kuzet_app_" + hex.EncodeToString(b[:])
	su, err := pgx.Connect(ctx, e.url)
	if err != nil {
		t.Fatal(err)
	}
	defer su.Close(ctx)
	for _, q := range []string{
		"CREATE ROLE " + role + " LOGIN NOSUPERUSER",
		"GRANT USAGE ON SCHEMA public TO " + role,
		"GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA public TO " + role,
	} {
		if _, err := su.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), e.url)
		if err != nil {
			t.Log(err)
			return
		}
		defer c.Close(context.Background())
		_, _ = c.Exec(context.Background(), "DROP OWNED BY "+role)
		_, _ = c.Exec(context.Background(), "DROP ROLE "+role)
	})
	u, _ := url.Parse(e.url)
	u.User = url.User(role)
	app, err := pgx.Connect(ctx, u.String())
	if err != nil {
		t.Fatalf("connect as %s: %v", role, err)
	}
	defer app.Close(ctx)
	var super bool
	if err := app.QueryRow(ctx, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user").Scan(&super); err != nil || super {
		t.Fatalf("application role is superuser=%t (%v)", super, err)
	}
	// The role can read and append (through the registry's own path).
	if _, err := VerifyAudit(ctx, app); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"UPDATE audit_log SET reason = 'x' WHERE seq = 2",
		"DELETE FROM audit_log WHERE seq = 3",
		"TRUNCATE audit_log",
		"UPDATE audit_chain_head SET seq = 1",
		"DELETE FROM audit_chain_head",
		"SET session_replication_role = replica",
		"ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only",
	} {
		_, err := app.Exec(ctx, q)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "42501" {
			t.Errorf("%s: got %v, want insufficient_privilege (42501)", q, err)
		}
	}
	res, err := VerifyAudit(ctx, e.pool)
	if err != nil || res.Rows != 3 {
		t.Fatalf("after attempts: %+v, %v", res, err)
	}
}

func TestAuditRowHashCoversEveryField(t *testing.T) {
	t.Parallel()
	from := time.Date(2025, 1, 2, 3, 4, 5, 6000, time.UTC)
	base := AuditRow{Seq: 7, At: from, Actor: "a", Role: "r", Client: "c", Action: "x", Facility: "f",
		Objects: []string{"o1", "o2"}, From: &from, To: &from, Reason: "why", Outcome: "ok", Detail: "d", PrevHash: make([]byte, 32)}
	h0 := string(base.chainHash())
	later := from.Add(time.Microsecond)
	muts := map[string]func(r *AuditRow){
		"seq": func(r *AuditRow) { r.Seq++ }, "at": func(r *AuditRow) { r.At = later },
		"actor": func(r *AuditRow) { r.Actor = "b" }, "role": func(r *AuditRow) { r.Role = "s" },
		"client": func(r *AuditRow) { r.Client = "d" }, "action": func(r *AuditRow) { r.Action = "y" },
		"facility": func(r *AuditRow) { r.Facility = "g" }, "objects": func(r *AuditRow) { r.Objects = []string{"o1o2"} },
		"objects order": func(r *AuditRow) { r.Objects = []string{"o2", "o1"} },
		"from":          func(r *AuditRow) { r.From = &later }, "to nil": func(r *AuditRow) { r.To = nil },
		"reason": func(r *AuditRow) { r.Reason = "whyy" }, "outcome": func(r *AuditRow) { r.Outcome = "denied" },
		"detail": func(r *AuditRow) { r.Detail = "" }, "prev": func(r *AuditRow) { r.PrevHash = make([]byte, 31) },
		"shift between fields": func(r *AuditRow) { r.Actor, r.Role = "ar", "" },
	}
	for name, m := range muts {
		r := base
		m(&r)
		if string(r.chainHash()) == h0 {
			t.Errorf("changing %s does not change the hash", name)
		}
	}
}
