package recorder

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"os"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"github.com/kuzet/kuzet/ingest"
	"github.com/kuzet/kuzet/internal/migrate"
	"github.com/kuzet/kuzet/internal/testenv"
	"github.com/kuzet/kuzet/recorder/index"
	"github.com/kuzet/kuzet/recorder/internal/synth"
	"github.com/kuzet/kuzet/recorder/segment"
	"github.com/kuzet/kuzet/recorder/store"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(childMain())
	}
	goleak.VerifyTestMain(m,
		// pgx pools and HTTP transports of stores closed in cleanups may
		// still be winding down their background goroutines.
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

func migratedPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool := testenv.Postgres(t)
	if _, err := migrate.Apply(context.Background(), pool, index.Migrations); err != nil {
		t.Fatal(err)
	}
	return pool
}

func fsStore(t testing.TB) *store.FS {
	t.Helper()
	st, err := store.NewFS(store.FSConfig{Dir: t.TempDir()}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// testConfig is a recorder configuration for fast tests.
func testConfig(t testing.TB) Config {
	return Config{
		SpoolDir: t.TempDir(), SegmentDuration: 4 * time.Second, FragmentDuration: time.Second,
		SyncInterval: time.Second, RetryMin: 50 * time.Millisecond, RetryMax: 500 * time.Millisecond,
		QueueCapacity: 8192, OrphanCheckInterval: -1, HoldInterval: time.Second, ShutdownDrain: time.Second,
	}
}

// running is a recorder running in the background of a test.
type running struct {
	*Recorder
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

func startRecorder(t testing.TB, cfg Config, pool *pgxpool.Pool, st ObjectStore) *running {
	t.Helper()
	return startRecorderDeps(t, cfg, Deps{Pool: pool, Store: st})
}

func startRecorderDeps(t testing.TB, cfg Config, deps Deps) *running {
	t.Helper()
	rec, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Recorder: rec, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- rec.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *running) stop(t testing.TB) {
	r.once.Do(func() {
		r.cancel()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("recorder Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("recorder Run did not return within 30s of cancel")
		}
	})
}

func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// drained waits until everything recorded is uploaded and indexed.
func (r *running) drained(t testing.TB, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, "upload backlog and journal to drain", func() bool {
		h := r.Health()
		return h.UploadBacklog == 0 && h.JournalBacklog == 0
	})
}

// feeder publishes a synthetic camera into a stream.
type feeder struct {
	cam    *synth.Camera
	stream *ingest.Stream
}

func newFeeder(t testing.TB, id string, start time.Time, audio bool) *feeder {
	t.Helper()
	clip, err := synth.Load()
	if err != nil {
		t.Fatal(err)
	}
	f := &feeder{cam: synth.NewCamera(clip, start, audio), stream: ingest.NewStream(ingest.StreamConfig{Camera: id, GOPCacheBytes: 8 << 20}, nil, nil)}
	return f
}

func (f *feeder) online() {
	f.stream.PublishEvent(&ingest.Event{Reason: ingest.ReasonDiscontinuity, Detail: "session started", At: f.cam.Start, Tracks: f.cam.Tracks})
}

func (f *feeder) offline(at time.Time) {
	f.stream.PublishEvent(&ingest.Event{Reason: ingest.ReasonCameraOffline, Detail: "timeout", At: at})
}

// frames publishes video frames (with their audio) up to frame n, pausing
// every few units so the recorder's queue never overflows.
func (f *feeder) frames(n int64) {
	for i := 0; f.cam.Frame() < n; i++ {
		f.stream.Publish(f.cam.Next())
		if i%16 == 15 {
			time.Sleep(time.Millisecond)
		}
	}
}

// objectFrames reads a stored segment and returns its synthetic frame
// numbers, checking that it parses.
func objectFrames(t testing.TB, st interface {
	Get(context.Context, string) (io.ReadCloser, store.ObjectInfo, error)
}, key string) []int64 {
	t.Helper()
	rc, _, err := st.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	var init fmp4.Init
	if err := init.Unmarshal(bytes.NewReader(b)); err != nil {
		t.Fatalf("%s: init: %v", key, err)
	}
	res, err := segment.Scan(bytes.NewReader(b), int64(len(b)))
	if err != nil || res.Stop != "" {
		t.Fatalf("%s: scan: %v %s", key, err, res.Stop)
	}
	var parts fmp4.Parts
	if err := parts.Unmarshal(b[res.InitSize:]); err != nil {
		t.Fatalf("%s: parts: %v", key, err)
	}
	var out []int64
	for _, p := range parts {
		for _, tr := range p.Tracks {
			if tr.ID != segment.VideoTrackID {
				continue
			}
			for _, s := range tr.Samples {
				au, err := s.GetH264()
				if err != nil {
					t.Fatal(err)
				}
				n, ok := synth.FrameNumber(au)
				if !ok {
					t.Fatalf("%s: sample without frame number", key)
				}
				out = append(out, n)
			}
		}
	}
	return out
}

// span is a segment or gap on a camera's timeline.
type span struct {
	start, end time.Time
	what       string // "segment" or the gap reason
	detail     string
}

// coverage returns the camera's segments and gaps in time order; open gaps
// end at now.
func coverage(t testing.TB, ix *index.Index, camera string, now time.Time) []span {
	t.Helper()
	ctx := context.Background()
	from, to := time.Unix(0, 0), now.Add(time.Hour)
	segs, err := ix.Segments(ctx, camera, from, to)
	if err != nil {
		t.Fatal(err)
	}
	gaps, err := ix.Gaps(ctx, camera, from, to)
	if err != nil {
		t.Fatal(err)
	}
	var out []span
	for _, s := range segs {
		out = append(out, span{s.Start, s.End, "segment", ""})
	}
	for _, g := range gaps {
		end := g.End
		if g.Open() {
			end = maxTime(now, g.Start)
		}
		out = append(out, span{g.Start, end, g.Reason, g.Detail})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].start.Before(out[j].start) })
	return out
}

// assertContiguous checks that spans follow each other without hole or
// overlap.
func assertContiguous(t testing.TB, spans []span) {
	t.Helper()
	for i := 1; i < len(spans); i++ {
		if !spans[i].start.Equal(spans[i-1].end) {
			for _, s := range spans {
				t.Logf("  %s  %s .. %s %s", s.what, s.start.Format("15:04:05.000000"), s.end.Format("15:04:05.000000"), s.detail)
			}
			t.Fatalf("timeline broken between %s ending %s and %s starting %s", spans[i-1].what,
				spans[i-1].end.Format(time.RFC3339Nano), spans[i].what, spans[i].start.Format(time.RFC3339Nano))
		}
	}
}

// flakyStore wraps a store and can make it unavailable.
type flakyStore struct {
	ObjectStore
	mu   sync.Mutex
	down bool
	puts int
}

func (f *flakyStore) setDown(down bool) {
	f.mu.Lock()
	f.down = down
	f.mu.Unlock()
}

var errFlaky = errors.New("test: store down")

func (f *flakyStore) Put(ctx context.Context, key string, r io.Reader, size int64, sum [32]byte) (store.ObjectInfo, error) {
	f.mu.Lock()
	down := f.down
	f.puts++
	f.mu.Unlock()
	if down {
		return store.ObjectInfo{}, errors.Join(store.ErrUnavailable, errFlaky)
	}
	return f.ObjectStore.Put(ctx, key, r, size, sum)
}

// tcpProxy forwards connections to a target and can cut them all, as a
// network partition would, and restore forwarding.
type tcpProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	conns  map[net.Conn]bool
	wg     sync.WaitGroup
}

func newTCPProxy(t testing.TB, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *tcpProxy) addr() string { return p.ln.Addr().String() }

func (p *tcpProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c], p.conns[up] = true, true
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

func (p *tcpProxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}

// setCut cuts (closing every connection and refusing new ones) or
// restores the link.
func (p *tcpProxy) setCut(cut bool) {
	p.mu.Lock()
	p.cut = cut
	if cut {
		for c := range p.conns {
			c.Close()
		}
	}
	p.mu.Unlock()
}

func (p *tcpProxy) close() {
	p.ln.Close()
	p.setCut(true)
	p.wg.Wait()
}

// proxiedPool returns a pool on a fresh migrated database reached through
// a proxy.
func proxiedPool(t testing.TB) (*pgxpool.Pool, *tcpProxy) {
	t.Helper()
	raw := testenv.PostgresURL(t)
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	px := newTCPProxy(t, u.Host)
	u.Host = px.addr()
	cfg, err := pgxpool.ParseConfig(u.String())
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.ConnectTimeout = 2 * time.Second
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if _, err := migrate.Apply(context.Background(), pool, index.Migrations); err != nil {
		t.Fatal(err)
	}
	return pool, px
}

// waitOpenGap waits until the camera's index has an open gap (of reason,
// or any when "") that starts at or after after, and nothing is left to
// upload or apply: everything before it is indexed.
func (r *running) waitOpenGap(t testing.TB, camera, reason string, after time.Time, timeout time.Duration) index.Gap {
	t.Helper()
	var found index.Gap
	waitFor(t, timeout, "an open "+reason+" gap of "+camera, func() bool {
		h := r.Health()
		if h.UploadBacklog != 0 || h.JournalBacklog != 0 {
			return false
		}
		gaps, err := r.Index().Gaps(context.Background(), camera, after.Add(-time.Hour), after.Add(24*time.Hour))
		if err != nil {
			return false
		}
		for _, g := range gaps {
			if g.Open() && !g.Start.Before(after) && (reason == "" || g.Reason == reason) {
				found = g
				return true
			}
		}
		return false
	})
	return found
}
