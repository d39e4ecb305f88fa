package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kuzet/kuzet/internal/migrate"
	"github.com/kuzet/kuzet/internal/testenv"
	"github.com/kuzet/kuzet/recorder/index"
	"github.com/kuzet/kuzet/recorder/store"
)

// TestVerifyChainCommand indexes three stored objects, runs `kuzet
// verify-chain` (OK), flips one byte of the second object (exit 1, names
// it), then deletes the first row (names the segment after it).
func TestVerifyChainCommand(t *testing.T) {
	url := testenv.PostgresURL(t)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := migrate.Apply(ctx, pool, index.Migrations); err != nil {
		t.Fatal(err)
	}
	ix, _ := index.New(pool)
	dir := t.TempDir()
	st, err := store.NewFS(store.FSConfig{Dir: dir}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	t0 := time.Date(2026, 11, 21, 15, 0, 0, 0, time.UTC)
	var keys []string
	var ids []int64
	for i := range 3 {
		start := t0.Add(time.Duration(i) * time.Minute)
		key, _ := store.SegmentKey("f16", "cam-9", start, 1, uint64(i))
		body := bytes.Repeat([]byte(fmt.Sprint("segment", i)), 1000)
		sum := sha256.Sum256(body)
		if _, err := st.Put(ctx, key, bytes.NewReader(body), int64(len(body)), sum); err != nil {
			t.Fatal(err)
		}
		s := &index.Segment{Camera: "cam-9", Facility: "f16", Run: 1, Seq: uint64(i), Start: start, End: start.Add(time.Minute),
			MediaDuration: 60 * 90000, WallDuration: time.Minute, Bytes: int64(len(body)), Frames: 1500, Codec: "H264",
			InitSize: 100, Fragments: []byte{1}, ObjectKey: key, SHA256: sum}
		if _, err := ix.InsertSegment(ctx, s); err != nil {
			t.Fatal(err)
		}
		keys, ids = append(keys, key), append(ids, s.ID)
	}
	t.Setenv("KUZET_STORE_FS_DIR", dir)
	run := func() (string, error) {
		var out bytes.Buffer
		db := databaseFlags{config: strptr(""), database: &url}
		err := runVerifyChain(ctx, db, "cam-9", timeRange{}, &out)
		return out.String(), err
	}
	out, err := run()
	if err != nil || !strings.Contains(out, "3 segments read") || !strings.Contains(out, "OK") {
		t.Fatalf("untouched: %v\n%s", err, out)
	}
	path := filepath.Join(dir, filepath.FromSlash(keys[1]))
	b, _ := os.ReadFile(path)
	b[10] ^= 1
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = run()
	if !errors.Is(err, errChainBroken) || !strings.Contains(out, "FIRST PROBLEM: altered_object: segment "+fmt.Sprint(ids[1])+" "+keys[1]) {
		t.Fatalf("altered object: %v\n%s", err, out)
	}
	b[10] ^= 1
	os.WriteFile(path, b, 0o644)
	if _, err := pool.Exec(ctx, "DELETE FROM recorder_segments WHERE id = $1", ids[0]); err != nil {
		t.Fatal(err)
	}
	out, err = run()
	if !errors.Is(err, errChainBroken) || !strings.Contains(out, "FIRST PROBLEM: missing_segment: segment "+fmt.Sprint(ids[1])) {
		t.Fatalf("deleted row: %v\n%s", err, out)
	}
	// Flags are checked.
	var stderr bytes.Buffer
	if code := run2([]string{"verify-chain", "--from", "yesterday", "--camera", "c"}, &stderr); code != 2 {
		t.Fatalf("bad --from: exit %d", code)
	}
}

func run2(args []string, stderr *bytes.Buffer) int {
	var stdout bytes.Buffer
	return run(context.Background(), args, &stdout, stderr)
}
