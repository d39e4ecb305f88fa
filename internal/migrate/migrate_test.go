package migrate

import (
	"context"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/kuzet/kuzet/internal/testenv"
)

func TestApplyIsIdempotentAndOrdered(t *testing.T) {
	pool := testenv.Postgres(t)
	ctx := context.Background()
	files := fstest.MapFS{
		"m/0002_b.sql": {Data: []byte("ALTER TABLE t ADD COLUMN b int;")},
		"m/0001_a.sql": {Data: []byte("CREATE TABLE t (a int);")},
		"m/README":     {Data: []byte("ignored")},
	}
	set := Set{Component: "test", FS: files, Dir: "m"}
	res, err := Apply(ctx, pool, set)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(res[0].Applied, ","); got != "0001_a.sql,0002_b.sql" || res[0].Current != 2 {
		t.Fatalf("first apply: applied %q current %d", got, res[0].Current)
	}
	res, err = Apply(ctx, pool, set)
	if err != nil {
		t.Fatal(err)
	}
	if len(res[0].Applied) != 0 || res[0].Current != 2 {
		t.Fatalf("second apply not a no-op: %+v", res[0])
	}
	if _, err := pool.Exec(ctx, "INSERT INTO t (a, b) VALUES (1, 2)"); err != nil {
		t.Fatalf("schema not applied: %v", err)
	}
}

func TestApplyRefusesChangedMigration(t *testing.T) {
	pool := testenv.Postgres(t)
	ctx := context.Background()
	files := fstest.MapFS{"m/0001_a.sql": {Data: []byte("CREATE TABLE t (a int);")}}
	if _, err := Apply(ctx, pool, Set{Component: "test", FS: files, Dir: "m"}); err != nil {
		t.Fatal(err)
	}
	files["m/0001_a.sql"] = &fstest.MapFile{Data: []byte("CREATE TABLE t (a bigint);")}
	_, err := Apply(ctx, pool, Set{Component: "test", FS: files, Dir: "m"})
	if err == nil || !strings.Contains(err.Error(), "changed after it was applied") {
		t.Fatalf("want refusal of a changed migration, got %v", err)
	}
}

func TestApplyRollsBackAFailedMigration(t *testing.T) {
	pool := testenv.Postgres(t)
	ctx := context.Background()
	files := fstest.MapFS{
		"m/0001_a.sql":   {Data: []byte("CREATE TABLE t (a int);")},
		"m/0002_bad.sql": {Data: []byte("CREATE TABLE u (x int); SELECT no_such_function();")},
	}
	_, err := Apply(ctx, pool, Set{Component: "test", FS: files, Dir: "m"})
	if err == nil || !strings.Contains(err.Error(), "0002_bad.sql") {
		t.Fatalf("want error naming 0002_bad.sql, got %v", err)
	}
	var n int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE tablename = 'u'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("failed migration left table u behind (n=%d, err=%v)", n, err)
	}
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM kuzet_schema_migrations WHERE component='test'").Scan(&n); err != nil || n != 1 {
		t.Fatalf("want only 0001 recorded, got %d (%v)", n, err)
	}
}

func TestLoadRejectsBadNames(t *testing.T) {
	for name, files := range map[string]fstest.MapFS{
		"no number": {"m/a.sql": {Data: []byte("")}},
		"duplicate": {"m/0001_a.sql": {}, "m/1_b.sql": {}},
		"zero":      {"m/0000_a.sql": {}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := (Set{Component: "x", FS: files, Dir: "m"}).Load(); err == nil {
				t.Fatal("want error")
			}
		})
	}
}
