package registry

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kuzet/kuzet/internal/migrate"
	"github.com/kuzet/kuzet/internal/testenv"
)

// fakeHolds records the holds placed and released.
type fakeHolds struct {
	mu       sync.Mutex
	placed   []holdCall
	released []holdCall
	fail     error
}

type holdCall struct {
	Camera   string
	From, To time.Time
	Reason   string
	Incident int64
}

func (f *fakeHolds) PlaceHold(_ context.Context, camera string, from, to time.Time, reason string, incident int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	f.placed = append(f.placed, holdCall{camera, from, to, reason, incident})
	return nil
}

func (f *fakeHolds) ReleaseHold(_ context.Context, camera string, incident int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	f.released = append(f.released, holdCall{Camera: camera, Incident: incident})
	return nil
}

func (f *fakeHolds) calls() ([]holdCall, []holdCall) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]holdCall(nil), f.placed...), append([]holdCall(nil), f.released...)
}

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type env struct {
	reg   *Registry
	pool  *pgxpool.Pool
	url   string
	holds *fakeHolds
	clock *clock
}

var testKey = []byte("0123456789abcdef0123456789abcdef")

// newEnv returns a registry over a fresh migrated database, with a cheap
// password hash and a test clock.
func newEnv(t *testing.T, mod ...func(*Config)) *env {
	t.Helper()
	url := testenv.PostgresURL(t)
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if _, err := migrate.Apply(context.Background(), pool, Migrations()); err != nil {
		t.Fatal(err)
	}
	c := &clock{t: time.Date(2025, 3, 10, 12, 0, 0, 0, time.UTC)}
	cfg := Config{
		SecretKey: testKey,
		Password:  PasswordParams{Time: 1, MemoryKiB: 64, Threads: 1},
		Now:       c.Now,
	}
	for _, m := range mod {
		m(&cfg)
	}
	h := &fakeHolds{}
	reg, err := New(cfg, pool, h, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return &env{reg: reg, pool: pool, url: url, holds: h, clock: c}
}

var admin = Actor{Principal: Principal{UserID: 1, Username: "root-test", Roles: []Role{RoleAdmin}, AllFacilities: true}, Client: "127.0.0.1"}

func ptr[T any](v T) *T { return &v }

// seedBasic creates facilities f16 and f27 with zones yard and block-a, and
// cameras f16-c01 (yard), f16-c02 (yard), f16-c03 (block-a), f27-c01 (yard).
func (e *env) seedBasic(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	for _, f := range []string{"f16", "f27"} {
		if _, err := e.reg.CreateFacility(ctx, admin, FacilityInput{ID: f, Name: ptr("Facility " + f)}); err != nil {
			t.Fatal(err)
		}
		for _, z := range []string{"yard", "block-a"} {
			kind := "yard"
			if z == "block-a" {
				kind = "cell_block"
			}
			if _, err := e.reg.CreateZone(ctx, admin, f, ZoneInput{ID: z, Name: ptr(z), Kind: &kind}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, c := range []struct{ id, f, z string }{
		{"f16-c01", "f16", "yard"}, {"f16-c02", "f16", "yard"}, {"f16-c03", "f16", "block-a"}, {"f27-c01", "f27", "yard"},
	} {
		if _, err := e.reg.CreateCamera(ctx, admin, CameraInput{ID: c.id, Facility: ptr(c.f), Zone: ptr(c.z),
			URL: ptr("rtsp://127.0.0.1:8554/cam/1")}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestMigrationsApplyToEmptyDatabaseAndReapplyAsNoOp(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	ctx := context.Background()
	res, err := migrate.Apply(ctx, pool, Migrations())
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || len(res[0].Applied) == 0 || res[0].Component != "registry" {
		t.Fatalf("first apply: %+v", res)
	}
	var tables int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'").Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if tables < 15 {
		t.Fatalf("only %d tables after migrating", tables)
	}
	res, err = migrate.Apply(ctx, pool, Migrations())
	if err != nil {
		t.Fatal(err)
	}
	if len(res[0].Applied) != 0 || res[0].Current != 1 {
		t.Fatalf("second apply not a no-op: %+v", res[0])
	}
	var rows int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM audit_chain_head").Scan(&rows); err != nil || rows != 1 {
		t.Fatalf("chain head rows = %d, %v", rows, err)
	}
}
