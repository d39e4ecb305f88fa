package recorder

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kuzet/kuzet/ingest"
	"github.com/kuzet/kuzet/recorder/index"
	"github.com/kuzet/kuzet/recorder/segment"
	"github.com/kuzet/kuzet/recorder/spool"
	"github.com/kuzet/kuzet/recorder/store"
)

// Config configures a Recorder. cmd fills it from config.Recorder.
type Config struct {
	// SpoolDir is the local spool directory. Required.
	SpoolDir string
	// SpoolQuota bounds the segment bytes in the spool. Default 10 GiB.
	SpoolQuota int64
	// SegmentDuration is the target segment length. Default 60s.
	SegmentDuration time.Duration
	// FragmentDuration is the longest fMP4 fragment. Default 1s.
	FragmentDuration time.Duration
	// SyncInterval is the longest time recorded data stays unsynced in
	// the spool. Default 2s.
	SyncInterval time.Duration
	// RetentionDays is the retention of cameras without their own
	// setting (SetRetention). Default 31.
	RetentionDays int
	// RetentionInterval is how often expired segments are looked for.
	// Default 10m.
	RetentionInterval time.Duration
	// HoldInterval is how often store legal holds are reconciled with the
	// hold table (also after every PlaceHold and indexed segment).
	// Default 30s.
	HoldInterval time.Duration
	// QueueCapacity and QueueBytes size each camera's ingest reader queue
	// (items and media bytes). Defaults 1024 and the stream's own bound.
	QueueCapacity int
	QueueBytes    int
	// UploadConcurrency bounds concurrent uploads over all cameras.
	// Default 4.
	UploadConcurrency int
	// RetryMin and RetryMax bound the backoff of uploads and index writes
	// while the store or PostgreSQL is unavailable. Defaults 500ms, 10s.
	RetryMin, RetryMax time.Duration
	// ResumeBelow is the spool fill ratio under which a camera stopped for
	// a full spool records again (at its next keyframe). Default 0.9.
	ResumeBelow float64
	// OrphanCheckInterval is how often the store is compared with the
	// index (first after the startup backlog is uploaded and indexed).
	// Default 24h; negative disables.
	OrphanCheckInterval time.Duration
	// ShutdownDrain is how long Run, once its context ends and the
	// segments are closed, goes on uploading and indexing what is
	// pending before it returns (the rest waits in the spool for the next
	// start). Default 5s; negative: no wait.
	ShutdownDrain time.Duration
}

func (c *Config) fill() error {
	if c.SpoolDir == "" {
		return errors.New("recorder: spool dir is required")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if c.SpoolQuota <= 0 {
		c.SpoolQuota = 10 << 30
	}
	def(&c.SegmentDuration, 60*time.Second)
	def(&c.FragmentDuration, time.Second)
	def(&c.SyncInterval, 2*time.Second)
	def(&c.RetentionInterval, 10*time.Minute)
	def(&c.HoldInterval, 30*time.Second)
	def(&c.RetryMin, 500*time.Millisecond)
	def(&c.RetryMax, 10*time.Second)
	if c.ShutdownDrain == 0 {
		c.ShutdownDrain = 5 * time.Second
	}
	if c.OrphanCheckInterval == 0 {
		c.OrphanCheckInterval = 24 * time.Hour
	}
	if c.RetentionDays <= 0 {
		c.RetentionDays = 31
	}
	if c.QueueCapacity <= 0 {
		c.QueueCapacity = 1024
	}
	if c.UploadConcurrency <= 0 {
		c.UploadConcurrency = 4
	}
	if c.ResumeBelow <= 0 || c.ResumeBelow > 1 {
		c.ResumeBelow = 0.9
	}
	if c.FragmentDuration > c.SegmentDuration {
		return fmt.Errorf("recorder: fragment duration %s longer than segment duration %s", c.FragmentDuration, c.SegmentDuration)
	}
	return nil
}

// The object store operations the recorder uses, each declared where it is
// needed; ObjectStore is their union (both *store.FS and *store.S3 have
// them).
type (
	objectPutter interface {
		Put(ctx context.Context, key string, r io.Reader, size int64, sum [sha256.Size]byte) (store.ObjectInfo, error)
		Stat(ctx context.Context, key string) (store.ObjectInfo, error)
	}
	objectReader interface {
		Get(ctx context.Context, key string) (io.ReadCloser, store.ObjectInfo, error)
	}
	objectDeleter interface {
		Delete(ctx context.Context, key string) error
	}
	objectHolder interface {
		SetHold(ctx context.Context, key string, on bool) error
	}
	objectLister interface {
		List(ctx context.Context, prefix string) iter.Seq2[store.ObjectInfo, error]
	}
	objectPinger interface {
		Ping(ctx context.Context) error
	}
)

// ObjectStore is what the recorder needs of the object store.
type ObjectStore interface {
	objectPutter
	objectReader
	objectDeleter
	objectHolder
	objectLister
	objectPinger
}

// Deps are the recorder's collaborators.
type Deps struct {
	// Pool is the PostgreSQL pool of the index; the recorder's schema
	// (index.Migrations) must be applied. Required.
	Pool *pgxpool.Pool
	// Store holds the segment objects. Required.
	Store ObjectStore
	// Log defaults to discarding.
	Log *slog.Logger
	// Metrics defaults to unregistered metrics.
	Metrics *Metrics
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Camera is a camera to record.
type Camera struct {
	// ID is the camera id ([A-Za-z0-9_-]{1,64}).
	ID string
	// Facility is its facility id ([a-z0-9-]{1,32}); it is part of the
	// object keys.
	Facility string
	// Stream is the camera's ingest stream.
	Stream *ingest.Stream
}

// Recorder records cameras' streams into segments, uploads and indexes
// them, and keeps retention and legal holds. See the package documentation.
type Recorder struct {
	cfg   Config
	log   *slog.Logger
	m     *Metrics
	now   func() time.Time
	ix    *index.Index
	store ObjectStore
	spool *spool.Spool
	segs  segment.Config

	journal   *spool.Journal
	uploadSem chan struct{}
	wake      chan struct{}
	holdsWake chan struct{}

	mu       sync.Mutex
	cams     map[string]*camera
	started  bool
	finished bool

	health healthState
	// backlog counts closed segments (and their bytes) not yet uploaded.
	backlog, backlogBytes atomic.Int64
	// journalDone is the sequence number of the last journal record the
	// applier is done with; records are done in order.
	journalDone atomic.Uint64
	// uploadFailures counts failed upload attempts since New.
	uploadFailures atomic.Uint64
}

// camera is the recorder's state of one camera, under Recorder.mu except
// where noted.
type camera struct {
	id, facility string
	up           *uploader
	upRunning    bool
	// metricFacility is the facility label of the camera's per-camera
	// gauges ("" while it has none).
	metricFacility string
	// want is the stream to record (nil: none); gen counts Record calls.
	want    *ingest.Stream
	gen     uint64
	running *runningPipeline
	// state is the camera's spool state as recovery left it, handed to
	// the next pipeline.
	state    spool.State
	hasState bool
}

type runningPipeline struct {
	gen    uint64
	stream *ingest.Stream
	cancel context.CancelCauseFunc
	done   chan struct{}
	p      *pipeline
}

// New validates cfg and opens the spool and its journal. Nothing runs until
// Run, which closes the journal when it returns.
func New(cfg Config, deps Deps) (*Recorder, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	if deps.Pool == nil {
		return nil, errors.New("recorder: a PostgreSQL pool is required")
	}
	if deps.Store == nil {
		return nil, errors.New("recorder: an object store is required")
	}
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	if deps.Metrics == nil {
		m, err := NewMetrics(nil)
		if err != nil {
			return nil, err
		}
		deps.Metrics = m
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	ix, err := index.New(deps.Pool)
	if err != nil {
		return nil, err
	}
	sp, err := spool.Open(spool.Config{Dir: cfg.SpoolDir, Quota: cfg.SpoolQuota, SyncInterval: cfg.SyncInterval})
	if err != nil {
		return nil, fmt.Errorf("recorder: %w", err)
	}
	j, err := sp.OpenJournal()
	if err != nil {
		return nil, fmt.Errorf("recorder: %w", err)
	}
	if j.Torn > 0 {
		deps.Log.Warn("recorder: cut a torn record off the index journal", "bytes", j.Torn)
	}
	r := &Recorder{
		cfg: cfg, log: deps.Log, m: deps.Metrics, now: deps.Now, ix: ix, store: deps.Store, spool: sp, journal: j,
		segs:      segment.Config{SegmentDuration: cfg.SegmentDuration, FragmentDuration: cfg.FragmentDuration},
		uploadSem: make(chan struct{}, cfg.UploadConcurrency),
		wake:      make(chan struct{}, 1),
		holdsWake: make(chan struct{}, 1),
		cams:      map[string]*camera{},
	}
	r.m.spoolQuota.Set(float64(cfg.SpoolQuota))
	r.health.init(r.now())
	return r, nil
}

// Index returns the recorder's index, for the timeline and playback
// queries (Timeline, Segments, SegmentAt, Gaps).
func (r *Recorder) Index() *index.Index { return r.ix }

// ErrStopped is returned by Record after Run returned.
var ErrStopped = errors.New("recorder: stopped")

// Record starts recording cam's stream, or switches to a new stream of the
// same camera; it never blocks, so it can be called from
// ingest.ManagerConfig.OnStream. Recording of a stream ends when the
// stream is closed (the gap left open says disabled) or Run ends.
func (r *Recorder) Record(cam Camera) error {
	if !index.ValidCamera(cam.ID) {
		return fmt.Errorf("recorder: invalid camera id %q", cam.ID)
	}
	if !index.ValidFacility(cam.Facility) {
		return fmt.Errorf("recorder: camera %s: invalid facility id %q", cam.ID, cam.Facility)
	}
	if cam.Stream == nil {
		return fmt.Errorf("recorder: camera %s: no stream", cam.ID)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.finished {
		return ErrStopped
	}
	c := r.cameraLocked(cam.ID, cam.Facility)
	c.facility = cam.Facility
	c.want = cam.Stream
	c.gen++
	r.poke()
	return nil
}

// Stop stops recording a camera: its segment is closed and a disabled gap
// opened. It returns false when the camera was not being recorded.
func (r *Recorder) Stop(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.cams[id]
	if !ok || c.want == nil {
		return false
	}
	c.want = nil
	c.gen++
	r.poke()
	return true
}

func (r *Recorder) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// cameraLocked returns the camera's state, creating it.
func (r *Recorder) cameraLocked(id, facility string) *camera {
	c, ok := r.cams[id]
	if !ok {
		c = &camera{id: id, facility: facility}
		c.up = newUploader(r, id)
		r.cams[id] = c
	}
	return c
}

// Run recovers the spool, then records, uploads, indexes and applies
// retention until ctx ends. It returns after every goroutine it started
// has ended; recorded data not yet uploaded or indexed stays in the spool
// for the next start.
func (r *Recorder) Run(ctx context.Context) error {
	r.mu.Lock()
	if r.started {
		r.mu.Unlock()
		return errors.New("recorder: Run called twice")
	}
	r.started = true
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.finished = true
		r.mu.Unlock()
	}()

	defer r.journal.Close()
	if err := r.recover(ctx); err != nil {
		return err
	}
	r.health.setRecovered()

	bgCtx, stopBg := context.WithCancel(context.WithoutCancel(ctx))
	var bg sync.WaitGroup
	goBg := func(f func(context.Context)) {
		bg.Add(1)
		go func() { defer bg.Done(); f(bgCtx) }()
	}
	goBg(r.applyJournal)
	goBg(r.heartbeat)
	goBg(r.retentionLoop)
	goBg(r.holdsLoop)
	if r.cfg.OrphanCheckInterval > 0 {
		goBg(r.orphanLoop)
	}

	var uploaders sync.WaitGroup
	upCtx, stopUploads := context.WithCancel(context.WithoutCancel(ctx))
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		r.reconcile(ctx, upCtx, &uploaders)
		r.updateGauges()
		select {
		case <-ctx.Done():
		case <-r.wake:
			continue
		case <-tick.C:
			continue
		}
		break
	}
	// Shutdown order: pipelines close their segments and open
	// recorder_down gaps (journal); then uploads stop (what is not
	// uploaded stays spooled); then the journal applier and the loops.
	r.mu.Lock()
	r.finished = true
	var pipes []*runningPipeline
	for _, c := range r.cams {
		if c.running != nil {
			c.running.cancel(nil)
			pipes = append(pipes, c.running)
		}
	}
	r.mu.Unlock()
	for _, p := range pipes {
		<-p.done
	}
	r.drain(r.cfg.ShutdownDrain)
	stopUploads()
	uploaders.Wait()
	stopBg()
	bg.Wait()
	return nil
}

// reconcile starts uploaders of cameras that have none running and
// starts, replaces or stops pipelines to match Record and Stop.
func (r *Recorder) reconcile(ctx, upCtx context.Context, uploaders *sync.WaitGroup) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.cams {
		if !c.upRunning {
			c.upRunning = true
			uploaders.Add(1)
			go func() {
				defer uploaders.Done()
				c.up.run(upCtx)
			}()
		}
		if c.running != nil {
			select {
			case <-c.running.done:
				c.state, c.hasState = c.running.p.st, true
				if c.running.p.streamClosed && c.want == c.running.stream {
					c.want = nil // recording ended with the stream
				}
				c.running = nil
			default:
			}
		}
		if c.running != nil && (c.running.gen != c.gen) {
			// Stopped or replaced: end it; the next pass starts the
			// new one once it is done.
			if c.want == nil {
				c.running.cancel(errCameraStopped)
			} else {
				c.running.cancel(errStreamReplaced)
			}
			continue
		}
		if c.running == nil && c.want != nil && ctx.Err() == nil {
			r.startPipelineLocked(ctx, c)
		}
	}
}

func (r *Recorder) startPipelineLocked(ctx context.Context, c *camera) {
	p := newPipeline(r, c.id, c.facility, c.want)
	if c.hasState {
		p.st = c.state
		p.stKnown = true
	}
	pctx, cancel := context.WithCancelCause(ctx)
	rp := &runningPipeline{gen: c.gen, stream: c.want, cancel: cancel, done: make(chan struct{}), p: p}
	c.running = rp
	go func() {
		defer close(rp.done)
		defer cancel(nil)
		p.run(pctx)
		r.poke()
	}()
}

// updateGauges refreshes gauges that are sampled rather than counted. A
// camera's series are removed once it is no longer recorded and nothing of
// it waits for upload or PostgreSQL; they come back if it is recorded again.
func (r *Recorder) updateGauges() {
	r.m.spoolBytes.Set(float64(r.spool.Used()))
	r.m.backlog.Set(float64(r.backlog.Load()))
	r.m.backlogBytes.Set(float64(r.backlogBytes.Load()))
	r.m.journal.Set(float64(r.journal.Len()))
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.cams {
		active := c.want != nil || c.running != nil || !c.up.idle()
		if c.metricFacility != "" && (!active || c.metricFacility != c.facility) {
			r.m.forgetCamera(c.id)
			c.metricFacility = ""
		}
		if !active {
			continue
		}
		c.metricFacility = c.facility
		r.m.lag.WithLabelValues(c.id, c.facility).Set(c.up.lag(now).Seconds())
		r.m.cameraSpool.WithLabelValues(c.id, c.facility).Set(float64(c.up.spoolBytes()))
	}
}

// drain waits up to d for the upload backlog and the journal to empty.
func (r *Recorder) drain(d time.Duration) {
	deadline := time.Now().Add(d)
	for (r.backlog.Load() > 0 || r.journal.Len() > 0) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
}
