package viewer

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/kuzet/kuzet/registry"
	"github.com/kuzet/kuzet/viewer/evidence"
)

// slowStore delays every read until released, so that a test can look at
// an export while it runs.
type slowStore struct {
	*fakeStore
	mu      sync.Mutex
	gate    chan struct{}
	started chan struct{}
	once    sync.Once
}

func (s *slowStore) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	s.once.Do(func() { close(s.started) })
	select {
	case <-s.gate:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return s.fakeStore.GetRange(ctx, key, off, n)
}

type exportEnv struct {
	ex    *Exporter
	st    *fakeStore
	rec   *fakeRecordings
	audit *fakeAudit
	dir   string
	pub   ed25519.PublicKey
}

func newExportEnv(t *testing.T, cfg ExportConfig, objects func(*fakeStore) ObjectReader) *exportEnv {
	t.Helper()
	e := &exportEnv{st: &fakeStore{}, rec: &fakeRecordings{}, audit: &fakeAudit{}, dir: t.TempDir()}
	addFootage(t, e.st, e.rec, footageSpec{camera: "c1", frames: 1500, segFrames: 250, gaps: [][2]int64{{600, 750}}, size: 2000})
	addFootage(t, e.st, e.rec, footageSpec{camera: "c2", frames: 1500, segFrames: 500, size: 2000})
	seed := bytes.Repeat([]byte{9}, 32)
	key := ed25519.NewKeyFromSeed(seed)
	e.pub = key.Public().(ed25519.PublicKey)
	cfg.Dir = e.dir
	var or ObjectReader = e.st
	if objects != nil {
		or = objects(e.st)
	}
	var err error
	e.ex, err = NewExporter(cfg, ExportDeps{Recordings: e.rec, Objects: or, Audit: e.audit, Key: key, Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.ex.Close)
	return e
}

func (e *exportEnv) spec(reason string) exportSpec {
	return exportSpec{principal: testUsers["inv16"], client: "127.0.0.1", reason: reason, facility: "f16",
		cameras: []registry.Camera{{ID: "c1", Name: "Yard", Facility: "f16", Zone: "yard"}, {ID: "c2", Name: "Gate", Facility: "f16", Zone: "yard"}},
		from:    frameWall(100), to: frameWall(1400)}
}

func waitState(t *testing.T, j *exportJob, states ...string) exportView {
	t.Helper()
	var v exportView
	waitFor(t, 20*time.Second, "export state "+strings.Join(states, " or "), func() bool {
		v = j.view()
		for _, s := range states {
			if v.State == s {
				return true
			}
		}
		return false
	})
	return v
}

func TestExportJobWritesAVerifiablePackage(t *testing.T) {
	t.Parallel()
	e := newExportEnv(t, ExportConfig{Version: "test"}, nil)
	j, err := e.ex.submit(context.Background(), e.spec("case 12"))
	if err != nil {
		t.Fatal(err)
	}
	v := waitState(t, j, "done", "failed")
	if v.State != "done" || v.Progress != 1 || v.BytesDone != v.BytesTotal || v.Files != 3 {
		t.Fatalf("export %+v", v)
	}
	rep, err := evidence.VerifyFile(j.path, e.pub)
	if err != nil {
		t.Fatal(err)
	}
	m := rep.Manifest
	if len(m.Gaps) != 1 || m.Gaps[0].Camera != "c1" || m.Gaps[0].Reason != "camera_offline" || m.Software.Version != "test" {
		t.Errorf("manifest gaps %+v software %+v", m.Gaps, m.Software)
	}
	if n := len(m.Cameras[0].Segments) + len(m.Cameras[1].Segments); n != 6+3 {
		t.Errorf("%d source segments", n)
	}
	if started, ok := e.audit.find("export", "started"), e.audit.find("export", "ok"); len(started) != 1 || len(ok) != 1 ||
		ok[0].Reason != "case 12" || !strings.Contains(ok[0].Detail, v.SHA256) {
		t.Errorf("audit rows: %+v %+v", started, ok)
	}
	// The listing is the owner's only.
	if l := e.ex.list(testUsers["inv16"].UserID); len(l) != 1 || l[0].ID != j.id {
		t.Errorf("list %+v", l)
	}
	if e.ex.job(j.id, testUsers["op16"].UserID) != nil {
		t.Error("another user sees the export")
	}
}

// TestExportJobsAreBoundedQueuedAndCancellable: MaxRunning run at once and
// the rest wait; beyond MaxJobs exports are refused; a running export is
// cancelled (its file removed, its end audited); Close ends the rest and
// leaves no goroutine behind.
func TestExportJobsAreBoundedQueuedAndCancellable(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	slow := &slowStore{gate: make(chan struct{}), started: make(chan struct{})}
	e := newExportEnv(t, ExportConfig{MaxRunning: 1, MaxJobs: 3}, func(st *fakeStore) ObjectReader { slow.fakeStore = st; return slow })
	ctx := context.Background()
	a, err := e.ex.submit(ctx, e.spec("first"))
	if err != nil {
		t.Fatal(err)
	}
	<-slow.started
	b, err := e.ex.submit(ctx, e.spec("second"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := e.ex.submit(ctx, e.spec("third"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.ex.submit(ctx, e.spec("fourth")); !errors.Is(err, errExportFull) {
		t.Fatalf("fourth export: %v", err)
	}
	if v := a.view(); v.State != "running" {
		t.Fatalf("first export %s", v.State)
	}
	if b.view().State != "queued" || c.view().State != "queued" {
		t.Fatalf("second and third: %s %s", b.view().State, c.view().State)
	}
	// Cancel the running one: it ends cancelled and its file goes.
	e.ex.remove(a)
	if v := waitState(t, a, "cancelled"); !strings.Contains(v.Error, "cancelled") {
		t.Errorf("cancelled export %+v", v)
	}
	if _, err := os.Stat(a.path + ".part"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the cancelled export left %s: %v", a.path+".part", err)
	}
	if rows := e.audit.find("export", "failed"); len(rows) != 1 || rows[0].Reason != "first" {
		t.Errorf("failed rows %+v", rows)
	}
	// The next one runs once reads go on.
	close(slow.gate)
	waitState(t, b, "done")
	waitState(t, c, "done")
	// A finished export removed: file and entry gone.
	e.ex.remove(b)
	if _, err := os.Stat(b.path); !errors.Is(err, os.ErrNotExist) || e.ex.job(b.id, testUsers["inv16"].UserID) != nil {
		t.Errorf("removed export still there: %v", err)
	}
	e.ex.Close()
}

func TestExportFailsWhenFootageCannotBeRead(t *testing.T) {
	t.Parallel()
	e := newExportEnv(t, ExportConfig{}, nil)
	e.st.mu.Lock()
	e.st.fail = "c2"
	e.st.mu.Unlock()
	j, err := e.ex.submit(context.Background(), e.spec("case 9"))
	if err != nil {
		t.Fatal(err)
	}
	v := waitState(t, j, "failed", "done")
	if v.State != "failed" || !strings.Contains(v.Error, "c2") {
		t.Fatalf("export %+v", v)
	}
	ents, _ := os.ReadDir(e.dir)
	if len(ents) != 0 {
		t.Errorf("a failed export left %d files", len(ents))
	}
	if rows := e.audit.find("export", "failed"); len(rows) != 1 {
		t.Errorf("failed rows %+v", rows)
	}
}

func TestExportExpiresAndSweeps(t *testing.T) {
	t.Parallel()
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	e := newExportEnv(t, ExportConfig{Keep: time.Hour, Now: clock}, nil)
	stale := filepath.Join(e.dir, "exp-0123456789abcdef01234567.zip")
	if err := os.WriteFile(stale, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(e.dir, "notes.txt")
	if err := os.WriteFile(other, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.ex.sweepDir()
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Error("a package of an earlier run was kept")
	}
	if _, err := os.Stat(other); err != nil {
		t.Error("a file that is not a package was removed")
	}
	j, err := e.ex.submit(context.Background(), e.spec("case 3"))
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, j, "done")
	e.ex.expire()
	if _, err := os.Stat(j.path); err != nil {
		t.Fatal("a fresh package expired")
	}
	mu.Lock()
	now = now.Add(2 * time.Hour)
	mu.Unlock()
	e.ex.expire()
	if _, err := os.Stat(j.path); !errors.Is(err, os.ErrNotExist) || e.ex.job(j.id, testUsers["inv16"].UserID) != nil {
		t.Error("an expired package is still there")
	}
}
