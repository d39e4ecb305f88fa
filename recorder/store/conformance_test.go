package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// opener creates a store for one test, with the given metrics. A store
// built for the conformance suite must upload objects above 5 MiB in parts
// where the store has parts.
type opener func(t *testing.T, m *Metrics) Store

// testConformance checks the Store contract on the store open returns.
// Every subtest works under its own key prefix, so they may share a bucket.
func testConformance(t *testing.T, open opener) {
	t.Run("PutGetStat", func(t *testing.T) { confPutGetStat(t, open) })
	t.Run("Range", func(t *testing.T) { confRange(t, open) })
	t.Run("List", func(t *testing.T) { confList(t, open) })
	t.Run("Delete", func(t *testing.T) { confDelete(t, open) })
	t.Run("WrongChecksum", func(t *testing.T) { confWrongChecksum(t, open) })
	t.Run("NotFound", func(t *testing.T) { confNotFound(t, open) })
	t.Run("InvalidKey", func(t *testing.T) { confInvalidKey(t, open) })
	t.Run("Large", func(t *testing.T) { confLarge(t, open) })
	t.Run("Hold", func(t *testing.T) { confHold(t, open) })
	t.Run("Canceled", func(t *testing.T) { confCanceled(t, open) })
	t.Run("Concurrent", func(t *testing.T) { confConcurrent(t, open) })
	t.Run("Metrics", func(t *testing.T) { confMetrics(t, open) })
	t.Run("Ping", func(t *testing.T) {
		s := open(t, nil)
		if err := s.Ping(t.Context()); err != nil {
			t.Fatalf("Ping: %v", err)
		}
	})
}

// prefix returns a key prefix no other test uses.
func prefix(t *testing.T) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "t" + hex.EncodeToString(b[:]) + "/"
}

func randomBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func mustPut(t *testing.T, s Store, key string, data []byte) ObjectInfo {
	t.Helper()
	info, err := s.Put(t.Context(), key, bytes.NewReader(data), int64(len(data)), sha256.Sum256(data))
	if err != nil {
		t.Fatalf("Put %q: %v", key, err)
	}
	return info
}

func readAll(t *testing.T, rc io.ReadCloser) []byte {
	t.Helper()
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return b
}

func listKeys(t *testing.T, s Store, prefix string) []string {
	t.Helper()
	var keys []string
	for info, err := range s.List(t.Context(), prefix) {
		if err != nil {
			t.Fatalf("List %q: %v", prefix, err)
		}
		keys = append(keys, info.Key)
	}
	return keys
}

func confPutGetStat(t *testing.T, open opener) {
	s := open(t, nil)
	key := prefix(t) + "F16/cam-1/2026/11/21/15/20261121T152200.000Z-1-000001.mp4"
	data := randomBytes(t, 100_000)
	sum := sha256.Sum256(data)
	before := time.Now().Add(-time.Minute)

	info := mustPut(t, s, key, data)
	if info.Key != key || info.Size != int64(len(data)) || info.SHA256 != sum {
		t.Fatalf("Put returned %+v, want key %q size %d sha %x", info, key, len(data), sum)
	}
	if info.Modified.Before(before) || info.Modified.After(time.Now().Add(time.Minute)) {
		t.Errorf("Put: Modified %v is not now", info.Modified)
	}

	rc, ginfo, err := s.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if got := readAll(t, rc); !bytes.Equal(got, data) {
		t.Fatalf("Get returned %d bytes that differ from the %d put", len(got), len(data))
	}
	if ginfo.Key != key || ginfo.Size != int64(len(data)) {
		t.Errorf("Get info %+v", ginfo)
	}

	st, err := s.Stat(t.Context(), key)
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	if st.Key != key || st.Size != int64(len(data)) {
		t.Errorf("Stat %+v, want size %d", st, len(data))
	}
	if st.SHA256 != ([32]byte{}) && st.SHA256 != sum {
		t.Errorf("Stat SHA256 %x, want %x or unknown", st.SHA256, sum)
	}

	// Replacing an unheld object with new content is allowed and visible.
	data2 := randomBytes(t, 5000)
	mustPut(t, s, key, data2)
	rc, _, err = s.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get after replace: %v", err)
	}
	if got := readAll(t, rc); !bytes.Equal(got, data2) {
		t.Fatal("Get after replace returned the old content")
	}

	// Empty objects are objects.
	empty := prefix(t) + "empty"
	mustPut(t, s, empty, nil)
	if st, err := s.Stat(t.Context(), empty); err != nil || st.Size != 0 {
		t.Fatalf("Stat empty: %+v, %v", st, err)
	}
}

func confRange(t *testing.T, open opener) {
	s := open(t, nil)
	key := prefix(t) + "obj.mp4"
	data := randomBytes(t, 10_000)
	mustPut(t, s, key, data)
	tests := []struct {
		name        string
		off, length int64
		want        []byte
		err         error
	}{
		{"head", 0, 10, data[:10], nil},
		{"middle", 4000, 1234, data[4000:5234], nil},
		{"one byte", 9999, 1, data[9999:], nil},
		{"past end is truncated", 9990, 100, data[9990:], nil},
		{"whole", 0, 10_000, data, nil},
		{"starts at end", 10_000, 1, nil, ErrInvalidRange},
		{"starts after end", 20_000, 1, nil, ErrInvalidRange},
		{"negative offset", -1, 5, nil, ErrInvalidRange},
		{"zero length", 0, 0, nil, ErrInvalidRange},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc, err := s.GetRange(t.Context(), key, tt.off, tt.length)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					if rc != nil {
						rc.Close()
					}
					t.Fatalf("GetRange(%d, %d) error %v, want %v", tt.off, tt.length, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("GetRange(%d, %d): %v", tt.off, tt.length, err)
			}
			if got := readAll(t, rc); !bytes.Equal(got, tt.want) {
				t.Fatalf("GetRange(%d, %d) returned %d bytes, want %d (content differs)", tt.off, tt.length, len(got), len(tt.want))
			}
		})
	}
}

func confList(t *testing.T, open opener) {
	s := open(t, nil)
	p := prefix(t)
	// Put in scrambled order; "a-b" sorts before "a/x" in byte order
	// ('-' < '/'), which a naive directory walk gets wrong.
	names := []string{"b", "a/y/z", "a0", "a/x", "a-b", "a/y/a"}
	sizes := map[string]int64{}
	for i, n := range names {
		data := randomBytes(t, 100+i)
		mustPut(t, s, p+n, data)
		sizes[p+n] = int64(len(data))
	}
	withPrefix := func(ks ...string) []string {
		out := make([]string, len(ks))
		for i, k := range ks {
			out[i] = p + k
		}
		return out
	}
	tests := []struct {
		name, prefix string
		want         []string
	}{
		{"all", p, withPrefix("a-b", "a/x", "a/y/a", "a/y/z", "a0", "b")},
		{"directory", p + "a/", withPrefix("a/x", "a/y/a", "a/y/z")},
		{"partial name", p + "a", withPrefix("a-b", "a/x", "a/y/a", "a/y/z", "a0")},
		{"partial nested", p + "a/y/", withPrefix("a/y/a", "a/y/z")},
		{"exact key", p + "a/x", withPrefix("a/x")},
		{"nothing", p + "zz", nil},
		{"missing directory", p + "nope/", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for info, err := range s.List(t.Context(), tt.prefix) {
				if err != nil {
					t.Fatalf("List: %v", err)
				}
				if info.Size != sizes[info.Key] {
					t.Errorf("List: %q size %d, want %d", info.Key, info.Size, sizes[info.Key])
				}
				got = append(got, info.Key)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("List(%q) = %q, want %q", tt.prefix, got, tt.want)
			}
		})
	}
	t.Run("stop early", func(t *testing.T) {
		n := 0
		for _, err := range s.List(t.Context(), p) {
			if err != nil {
				t.Fatal(err)
			}
			n++
			if n == 2 {
				break
			}
		}
		if n != 2 {
			t.Fatalf("saw %d objects before break", n)
		}
	})
	t.Run("invalid prefix", func(t *testing.T) {
		for _, bad := range []string{"../x", "/abs", "a//b", `a\b`, "a/./b"} {
			n := 0
			for _, err := range s.List(t.Context(), bad) {
				n++
				if !errors.Is(err, ErrInvalidKey) {
					t.Errorf("List(%q) error %v, want ErrInvalidKey", bad, err)
				}
			}
			if n != 1 {
				t.Errorf("List(%q) yielded %d items, want one error", bad, n)
			}
		}
	})
	t.Run("canceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		var gotErr error
		for _, err := range s.List(ctx, p) {
			if err != nil {
				gotErr = err
			}
		}
		if !errors.Is(gotErr, context.Canceled) {
			t.Fatalf("List with canceled context: error %v, want context.Canceled", gotErr)
		}
	})
}

func confDelete(t *testing.T, open opener) {
	s := open(t, nil)
	p := prefix(t)
	key, sibling := p+"F1/c/2026/01/01/00/x.mp4", p+"F1/c/2026/01/01/01/y.mp4"
	mustPut(t, s, key, []byte("segment"))
	mustPut(t, s, sibling, []byte("sibling"))
	if err := s.Delete(t.Context(), key); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := s.Stat(t.Context(), key); !errors.Is(err, ErrNotFound) {
		t.Errorf("Stat after Delete: %v, want ErrNotFound", err)
	}
	if _, _, err := s.Get(t.Context(), key); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after Delete: %v, want ErrNotFound", err)
	}
	if err := s.Delete(t.Context(), key); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Delete: %v, want ErrNotFound", err)
	}
	if got := listKeys(t, s, p); !slices.Equal(got, []string{sibling}) {
		t.Errorf("List after Delete = %q, want only the sibling", got)
	}
	// The key can be written again.
	mustPut(t, s, key, []byte("again"))
	if err := s.Delete(t.Context(), key); err != nil {
		t.Fatalf("Delete of rewritten key: %v", err)
	}
	if err := s.Delete(t.Context(), sibling); err != nil {
		t.Fatalf("Delete sibling: %v", err)
	}
	if got := listKeys(t, s, p); len(got) != 0 {
		t.Errorf("List after deleting everything = %q", got)
	}
}

func confWrongChecksum(t *testing.T, open opener) {
	s := open(t, nil)
	p := prefix(t)
	data := randomBytes(t, 64<<10)
	good := sha256.Sum256(data)
	wrong := good
	wrong[0] ^= 1
	tests := []struct {
		name string
		r    io.Reader
		size int64
		sum  [32]byte
	}{
		{"wrong sum", bytes.NewReader(data), int64(len(data)), wrong},
		{"content shorter than size", bytes.NewReader(data[:1000]), int64(len(data)), good},
		{"size shorter than content", bytes.NewReader(data), int64(len(data) - 1), good},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := fmt.Sprintf("%sobj%d.mp4", p, i)
			_, err := s.Put(t.Context(), key, tt.r, tt.size, tt.sum)
			if !errors.Is(err, ErrIntegrity) {
				t.Fatalf("Put error %v, want ErrIntegrity", err)
			}
			if _, err := s.Stat(t.Context(), key); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Stat after refused Put: %v, want ErrNotFound", err)
			}
		})
	}
	if got := listKeys(t, s, p); len(got) != 0 {
		t.Fatalf("refused Puts left %q", got)
	}
	// A refused Put does not damage an existing object.
	key := p + "kept.mp4"
	mustPut(t, s, key, data)
	if _, err := s.Put(t.Context(), key, bytes.NewReader(randomBytes(t, 100)), 100, good); !errors.Is(err, ErrIntegrity) {
		t.Fatalf("Put over existing: %v, want ErrIntegrity", err)
	}
	rc, _, err := s.Get(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readAll(t, rc), data) {
		t.Fatal("refused Put changed the existing object")
	}
}

func confNotFound(t *testing.T, open opener) {
	s := open(t, nil)
	key := prefix(t) + "missing.mp4"
	ctx := t.Context()
	checks := map[string]error{
		"Stat": func() error { _, err := s.Stat(ctx, key); return err }(),
		"Get":  func() error { _, _, err := s.Get(ctx, key); return err }(),
		"GetRange": func() error {
			_, err := s.GetRange(ctx, key, 0, 10)
			return err
		}(),
		"Delete":  s.Delete(ctx, key),
		"SetHold": s.SetHold(ctx, key, true),
		"Release": s.SetHold(ctx, key, false),
		"Held":    func() error { _, err := s.Held(ctx, key); return err }(),
	}
	for op, err := range checks {
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("%s of a missing key: %v, want ErrNotFound", op, err)
		}
		if errors.Is(err, ErrUnavailable) {
			t.Errorf("%s of a missing key claims the store is unavailable", op)
		}
	}
}

func confInvalidKey(t *testing.T, open opener) {
	s := open(t, nil)
	ctx := t.Context()
	bad := []struct{ name, key string }{
		{"empty", ""}, {"absolute", "/abs"}, {"empty segment", "a//b"}, {"trailing slash", "a/"},
		{"dotdot", ".."}, {"dotdot first", "../x"}, {"dotdot inside", "a/../b"}, {"dotdot last", "a/.."},
		{"dot", "."}, {"dot first", "./a"}, {"dot inside", "a/./b"}, {"hidden", "a/.hidden"},
		{"backslash", `a\b`}, {"backslash escape", `..\x`}, {"NUL", "a\x00b"}, {"newline", "a\nb"},
		{"DEL", "a\x7fb"}, {"not UTF-8", "\xff\xfe"}, {"too long", strings.Repeat("k", MaxKeyLen+1)},
	}
	for _, tt := range bad {
		key := tt.key
		t.Run(tt.name, func(t *testing.T) {
			data := []byte("x")
			_, err := s.Put(ctx, key, bytes.NewReader(data), 1, sha256.Sum256(data))
			errs := map[string]error{
				"Put":      err,
				"Stat":     func() error { _, err := s.Stat(ctx, key); return err }(),
				"Get":      func() error { _, _, err := s.Get(ctx, key); return err }(),
				"GetRange": func() error { _, err := s.GetRange(ctx, key, 0, 1); return err }(),
				"Delete":   s.Delete(ctx, key),
				"SetHold":  s.SetHold(ctx, key, true),
				"Held":     func() error { _, err := s.Held(ctx, key); return err }(),
			}
			for op, err := range errs {
				if !errors.Is(err, ErrInvalidKey) {
					t.Errorf("%s(%q): %v, want ErrInvalidKey", op, key, err)
				}
			}
		})
	}
}

func confLarge(t *testing.T, open opener) {
	s := open(t, nil)
	key := prefix(t) + "large.mp4"
	data := randomBytes(t, 12<<20)
	info := mustPut(t, s, key, data)
	if info.Size != int64(len(data)) || info.SHA256 != sha256.Sum256(data) {
		t.Fatalf("Put returned %+v", info)
	}
	rc, _, err := s.Get(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, rc); !bytes.Equal(got, data) {
		t.Fatalf("Get returned %d bytes that differ from the %d put", len(got), len(data))
	}
	// A range across the 5 MiB part boundary.
	off := int64(5<<20 - 10)
	rc, err = s.GetRange(t.Context(), key, off, 20)
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, rc); !bytes.Equal(got, data[off:off+20]) {
		t.Fatal("range across a part boundary differs")
	}
	st, err := s.Stat(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size != int64(len(data)) {
		t.Fatalf("Stat size %d", st.Size)
	}
	if st.SHA256 != ([32]byte{}) && st.SHA256 != sha256.Sum256(data) {
		t.Fatalf("Stat SHA256 %x differs", st.SHA256)
	}
	// A wrong checksum on a large object is refused as well.
	wrongKey := prefix(t) + "large-wrong.mp4"
	sum := sha256.Sum256(data)
	sum[31] ^= 0x80
	if _, err := s.Put(t.Context(), wrongKey, bytes.NewReader(data), int64(len(data)), sum); !errors.Is(err, ErrIntegrity) {
		t.Fatalf("large Put with wrong sum: %v, want ErrIntegrity", err)
	}
	if _, err := s.Stat(t.Context(), wrongKey); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Stat after refused large Put: %v, want ErrNotFound", err)
	}
}

func confHold(t *testing.T, open opener) {
	s := open(t, nil)
	ctx := t.Context()
	key := prefix(t) + "F47/cam/2026/11/21/15/evidence.mp4"
	data := randomBytes(t, 4096)
	mustPut(t, s, key, data)
	if held, err := s.Held(ctx, key); err != nil || held {
		t.Fatalf("Held before SetHold = %v, %v", held, err)
	}
	if err := s.SetHold(ctx, key, true); err != nil {
		t.Fatalf("SetHold on: %v", err)
	}
	if err := s.SetHold(ctx, key, true); err != nil {
		t.Fatalf("SetHold on twice: %v", err)
	}
	if held, err := s.Held(ctx, key); err != nil || !held {
		t.Fatalf("Held after SetHold = %v, %v", held, err)
	}
	if err := s.Delete(ctx, key); !errors.Is(err, ErrHeld) {
		t.Fatalf("Delete of held object: %v, want ErrHeld", err)
	}
	rc, _, err := s.Get(ctx, key)
	if err != nil {
		t.Fatalf("Get of held object after refused Delete: %v", err)
	}
	if !bytes.Equal(readAll(t, rc), data) {
		t.Fatal("held object changed")
	}
	if got := listKeys(t, s, key); !slices.Equal(got, []string{key}) {
		t.Fatalf("List of held object = %q", got)
	}
	if err := s.SetHold(ctx, key, false); err != nil {
		t.Fatalf("SetHold off: %v", err)
	}
	if held, err := s.Held(ctx, key); err != nil || held {
		t.Fatalf("Held after release = %v, %v", held, err)
	}
	if err := s.Delete(ctx, key); err != nil {
		t.Fatalf("Delete after release: %v", err)
	}
	if _, err := s.Stat(ctx, key); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Stat after Delete: %v", err)
	}
}

func confCanceled(t *testing.T, open opener) {
	s := open(t, nil)
	key := prefix(t) + "canceled.mp4"
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	data := randomBytes(t, 1000)
	_, err := s.Put(ctx, key, bytes.NewReader(data), int64(len(data)), sha256.Sum256(data))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Put with canceled context: %v, want context.Canceled", err)
	}
	if errors.Is(err, ErrUnavailable) {
		t.Fatalf("Put with canceled context blames the store: %v", err)
	}
	if _, err := s.Stat(t.Context(), key); !errors.Is(err, ErrNotFound) {
		t.Fatalf("canceled Put left an object: %v", err)
	}
}

func confConcurrent(t *testing.T, open opener) {
	s := open(t, nil)
	p := prefix(t)
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, 2*n)
	// Distinct keys: put, read back, delete.
	for i := range n {
		wg.Go(func() {
			key := fmt.Sprintf("%sd%d/obj", p, i)
			data := bytes.Repeat([]byte{byte(i)}, 50_000+i)
			if _, err := s.Put(t.Context(), key, bytes.NewReader(data), int64(len(data)), sha256.Sum256(data)); err != nil {
				errs[i] = err
				return
			}
			if st, err := s.Stat(t.Context(), key); err != nil || st.Size != int64(len(data)) {
				errs[i] = fmt.Errorf("stat: %+v, %v", st, err)
				return
			}
			errs[i] = s.Delete(t.Context(), key)
		})
	}
	// One key written by several at once: each Put succeeds and the
	// object is one of them, whole.
	same := p + "same/obj"
	for i := range n {
		wg.Go(func() {
			data := bytes.Repeat([]byte{byte(i)}, 30_000)
			_, errs[n+i] = s.Put(t.Context(), same, bytes.NewReader(data), int64(len(data)), sha256.Sum256(data))
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("worker %d: %v", i, err)
		}
	}
	rc, _, err := s.Get(t.Context(), same)
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, rc)
	if len(got) != 30_000 || !bytes.Equal(got, bytes.Repeat(got[:1], 30_000)) {
		t.Fatalf("concurrently written object is not one writer's content")
	}
	if keys := listKeys(t, s, p); !slices.Equal(keys, []string{same}) {
		t.Fatalf("List after concurrent work = %q", keys)
	}
}

func confMetrics(t *testing.T, open opener) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	s := open(t, m)
	p := prefix(t)
	data := randomBytes(t, 12345)
	mustPut(t, s, p+"a", data)
	if _, err := s.Stat(t.Context(), p+"missing"); !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	bad := sha256.Sum256(nil)
	if _, err := s.Put(t.Context(), p+"b", bytes.NewReader(data), int64(len(data)), bad); !errors.Is(err, ErrIntegrity) {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if got := metricValue(mfs, "kuzet_store_uploaded_bytes_total", nil); got != float64(len(data)) {
		t.Errorf("uploaded bytes = %v, want %d", got, len(data))
	}
	if got := metricValue(mfs, "kuzet_store_operation_errors_total", map[string]string{"op": "stat", "outcome": "not_found"}); got != 1 {
		t.Errorf("stat not_found errors = %v, want 1", got)
	}
	if got := metricValue(mfs, "kuzet_store_operation_errors_total", map[string]string{"op": "put", "outcome": "integrity"}); got != 1 {
		t.Errorf("put integrity errors = %v, want 1", got)
	}
	for _, outcome := range []string{"ok", "error"} {
		if got := metricValue(mfs, "kuzet_store_upload_seconds", map[string]string{"outcome": outcome}); got != 1 {
			t.Errorf("upload_seconds{outcome=%q} count = %v, want 1", outcome, got)
		}
	}
}

// metricValue returns the value of the counter, or the sample count of the
// histogram, with exactly the given labels; -1 if there is none.
func metricValue(mfs []*dto.MetricFamily, name string, labels map[string]string) float64 {
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.GetCounter().GetValue()
			case m.Histogram != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return -1
}
