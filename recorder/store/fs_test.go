package store

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func openFS(t testing.TB, dir string, m *Metrics) *FS {
	t.Helper()
	s, err := NewFS(FSConfig{Dir: dir}, nil, m)
	if err != nil {
		t.Fatalf("NewFS: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestFSConformance(t *testing.T) {
	testConformance(t, func(t *testing.T, m *Metrics) Store {
		return openFS(t, t.TempDir(), m)
	})
}

func TestNewFSConfig(t *testing.T) {
	if _, err := NewFS(FSConfig{}, nil, nil); err == nil {
		t.Fatal("NewFS without a directory succeeded")
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewFS(FSConfig{Dir: file}, nil, nil); err == nil {
		t.Fatal("NewFS on a regular file succeeded")
	}
	// A missing directory is created.
	s := openFS(t, filepath.Join(t.TempDir(), "a", "b"), nil)
	if err := s.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// TestFSLayout checks where objects, markers and temporary files live.
func TestFSLayout(t *testing.T) {
	dir := t.TempDir()
	s := openFS(t, dir, nil)
	key := "F16/cam/2026/11/21/15/seg.mp4"
	data := []byte("segment bytes")
	mustPut(t, s, key, data)
	got, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(key)))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("object file: %q, %v", got, err)
	}
	if left := tempFiles(t, dir); len(left) != 0 {
		t.Fatalf("temporary files left after Put: %q", left)
	}
	if err := s.SetHold(t.Context(), key, true); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(dir, "F16/cam/2026/11/21/15/.hold.seg.mp4")
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("hold marker: %v", err)
	}
	// The marker is not an object.
	if keys := listKeys(t, s, ""); len(keys) != 1 || keys[0] != key {
		t.Fatalf("List = %q", keys)
	}
	if err := s.SetHold(t.Context(), key, false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(marker); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("hold marker after release: %v", err)
	}
	if err := s.Delete(t.Context(), key); err != nil {
		t.Fatal(err)
	}
	// Directories emptied by Delete are removed, the root stays.
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 0 {
		t.Fatalf("root after deleting the only object: %v, %v", entries, err)
	}
}

func tempFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), fsTempPrefix) {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestFSRefusedPutLeavesNothing checks that no temporary file survives a
// refused Put.
func TestFSRefusedPutLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	s := openFS(t, dir, nil)
	data := randomBytes(t, 1<<20)
	sum := sha256.Sum256(data)
	sum[0] ^= 1
	if _, err := s.Put(t.Context(), "a/b/c.mp4", bytes.NewReader(data), int64(len(data)), sum); !errors.Is(err, ErrIntegrity) {
		t.Fatalf("Put: %v", err)
	}
	if left := tempFiles(t, dir); len(left) != 0 {
		t.Fatalf("temporary files left: %q", left)
	}
	if _, err := os.Stat(filepath.Join(dir, "a/b/c.mp4")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("object exists after refused Put: %v", err)
	}
}

// TestFSPutHeldRefused: replacing a held file would destroy it, so Put
// refuses.
func TestFSPutHeldRefused(t *testing.T) {
	s := openFS(t, t.TempDir(), nil)
	key := "F1/c/x.mp4"
	orig := []byte("original evidence")
	mustPut(t, s, key, orig)
	if err := s.SetHold(t.Context(), key, true); err != nil {
		t.Fatal(err)
	}
	other := []byte("replacement")
	if _, err := s.Put(t.Context(), key, bytes.NewReader(other), int64(len(other)), sha256.Sum256(other)); !errors.Is(err, ErrHeld) {
		t.Fatalf("Put over held object: %v, want ErrHeld", err)
	}
	rc, _, err := s.Get(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readAll(t, rc), orig) {
		t.Fatal("held object was replaced")
	}
}

// TestFSRootEscape: valid keys cannot leave the root even through a
// symbolic link placed inside it.
func TestFSRootEscape(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("outside"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	s := openFS(t, dir, nil)
	data := []byte("x")
	if _, err := s.Put(t.Context(), "link/new", bytes.NewReader(data), 1, sha256.Sum256(data)); err == nil {
		t.Error("Put through a symlink out of the root succeeded")
	}
	if _, err := os.Stat(filepath.Join(outside, "new")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("file written outside the root: %v", err)
	}
	if rc, _, err := s.Get(t.Context(), "link/secret"); err == nil {
		rc.Close()
		t.Error("Get through a symlink out of the root succeeded")
	}
	if err := s.Delete(t.Context(), "link/secret"); err == nil {
		t.Error("Delete through a symlink out of the root succeeded")
	}
	if _, err := os.Stat(filepath.Join(outside, "secret")); err != nil {
		t.Errorf("file outside the root: %v", err)
	}
}

// TestFSKeyConflict: a key below an existing object is refused, not a
// crash or a silent overwrite.
func TestFSKeyConflict(t *testing.T) {
	s := openFS(t, t.TempDir(), nil)
	mustPut(t, s, "a/b", []byte("object"))
	data := []byte("y")
	if _, err := s.Put(t.Context(), "a/b/c", bytes.NewReader(data), 1, sha256.Sum256(data)); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("Put below an object: %v, want ErrInvalidKey", err)
	}
	if _, err := s.Stat(t.Context(), "a/b/c"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Stat below an object: %v, want ErrNotFound", err)
	}
	if _, err := s.Stat(t.Context(), "a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Stat of a directory: %v, want ErrNotFound", err)
	}
}

func TestFSSweep(t *testing.T) {
	dir := t.TempDir()
	s := openFS(t, dir, nil)
	mustPut(t, s, "a/b.mp4", []byte("keep"))
	old := filepath.Join(dir, "a", fsTempPrefix+"crashed")
	fresh := filepath.Join(dir, "a", fsTempPrefix+"inflight")
	for _, p := range []string{old, fresh} {
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	past := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(old, past, past); err != nil {
		t.Fatal(err)
	}
	n, err := s.Sweep(t.Context(), time.Hour)
	if err != nil || n != 1 {
		t.Fatalf("Sweep = %d, %v; want 1 removed", n, err)
	}
	if _, err := os.Stat(old); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("old temporary file still there: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("fresh temporary file removed: %v", err)
	}
	if _, err := s.Stat(t.Context(), "a/b.mp4"); err != nil {
		t.Errorf("object removed by Sweep: %v", err)
	}
}

// BenchmarkFSPut stores one 10 MB segment per iteration (write, fsync,
// rename, directory fsync, SHA-256 check).
func BenchmarkFSPut(b *testing.B) {
	s, err := NewFS(FSConfig{Dir: b.TempDir()}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	data := randomBytes(b, 10_000_000)
	sum := sha256.Sum256(data)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		key := "F16/cam/2026/11/21/15/seg.mp4"
		if _, err := s.Put(b.Context(), key, bytes.NewReader(data), int64(len(data)), sum); err != nil {
			b.Fatal(err)
		}
	}
}
