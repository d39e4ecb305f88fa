package viewer

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kuzet/kuzet/registry"
	"github.com/kuzet/kuzet/viewer/evidence"
)

// ExportConfig configures evidence exports. Zero fields take their default.
type ExportConfig struct {
	// Dir is where packages are written (and served from until they
	// expire). Required.
	Dir string
	// MaxRunning is how many exports are written at once; more wait their
	// turn. Default 2.
	MaxRunning int
	// MaxJobs bounds the exports kept (waiting, running or finished);
	// more are refused with 503 until some expire. Default 64.
	MaxJobs int
	// Keep is how long a finished package stays downloadable. Default 24h.
	Keep time.Duration
	// MaxSpan is the longest window an export covers. Default 24h.
	MaxSpan time.Duration
	// Version is the software version written into manifests. Default
	// "unknown".
	Version string
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

func (c *ExportConfig) setDefaults() {
	if c.MaxRunning <= 0 {
		c.MaxRunning = 2
	}
	if c.MaxJobs <= 0 {
		c.MaxJobs = 64
	}
	if c.Keep <= 0 {
		c.Keep = 24 * time.Hour
	}
	if c.MaxSpan <= 0 {
		c.MaxSpan = 24 * time.Hour
	}
	if c.Version == "" {
		c.Version = "unknown"
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// ExportDeps are what evidence export needs.
type ExportDeps struct {
	Recordings Recordings   // required
	Objects    ObjectReader // required
	Audit      Auditor      // required
	// Key signs the manifests. Required.
	Key ed25519.PrivateKey
	// Metrics registers the export metrics; nil registers none.
	Metrics prometheus.Registerer
	// Log may be nil (discard).
	Log *slog.Logger
}

// Exporter writes evidence packages (see package evidence) as jobs: an
// export is queued, runs when one of MaxRunning slots is free, reports its
// progress, can be cancelled, and leaves a ZIP file in Dir that its
// creator may download until it expires after Keep.
//
// Concurrency and backpressure: one goroutine per job, owned by the
// Exporter (Close cancels and waits for them), plus a janitor in Run that
// removes expired packages. A job streams each segment's fragments from the
// store into the ZIP through a buffer of 1 MiB: memory does not grow with
// the export's length. Jobs beyond MaxJobs are refused, not queued.
// Packages live as long as the process: at start, Run removes what an
// earlier process left in Dir.
type Exporter struct {
	cfg     ExportConfig
	recs    Recordings
	objects ObjectReader
	audit   Auditor
	key     ed25519.PrivateKey
	pubPEM  []byte
	log     *slog.Logger
	metrics *exportMetrics
	slots   chan struct{}

	mu     sync.Mutex
	jobs   map[string]*exportJob
	closed bool
	wg     sync.WaitGroup
}

// NewExporter checks the configuration and the export directory.
func NewExporter(cfg ExportConfig, deps ExportDeps) (*Exporter, error) {
	cfg.setDefaults()
	if deps.Recordings == nil || deps.Objects == nil || deps.Audit == nil {
		return nil, errors.New("export: recordings, objects and audit are required")
	}
	if len(deps.Key) != ed25519.PrivateKeySize {
		return nil, errors.New("export: a signing key is required")
	}
	if cfg.Dir == "" {
		return nil, errors.New("export: a directory is required")
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	pub, err := evidence.PublicKeyPEM(deps.Key.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, err
	}
	log := deps.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := newExportMetrics(deps.Metrics)
	if err != nil {
		return nil, fmt.Errorf("export: metrics: %w", err)
	}
	return &Exporter{cfg: cfg, recs: deps.Recordings, objects: deps.Objects, audit: deps.Audit, key: deps.Key, pubPEM: pub,
		log: log.With("component", "export"), metrics: m, slots: make(chan struct{}, cfg.MaxRunning), jobs: map[string]*exportJob{}}, nil
}

// PublicKeyPEM is the public half of the signing key, for recipients.
func (e *Exporter) PublicKeyPEM() []byte { return e.pubPEM }

// Run removes packages left by an earlier process, then expired packages
// every minute, until ctx ends; then it cancels the running jobs and waits
// for them. A nil Exporter (export not configured) just waits for ctx.
func (e *Exporter) Run(ctx context.Context) error {
	if e == nil {
		<-ctx.Done()
		return nil
	}
	e.sweepDir()
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			e.Close()
			return nil
		case <-t.C:
			e.expire()
		}
	}
}

// Close cancels every job and waits for them. New exports are refused.
func (e *Exporter) Close() {
	if e == nil {
		return
	}
	e.mu.Lock()
	e.closed = true
	for _, j := range e.jobs {
		j.cancel(errExportShutdown)
	}
	e.mu.Unlock()
	e.wg.Wait()
}

// sweepDir removes the files of exports this process does not know.
func (e *Exporter) sweepDir() {
	ents, err := os.ReadDir(e.cfg.Dir)
	if err != nil {
		e.log.Warn("export: reading the export directory", "err", err)
		return
	}
	e.mu.Lock()
	known := map[string]bool{}
	for id := range e.jobs {
		known[id] = true
	}
	e.mu.Unlock()
	for _, de := range ents {
		name := de.Name()
		id, ok := strings.CutSuffix(strings.TrimSuffix(name, ".part"), ".zip")
		if !ok || !strings.HasPrefix(id, "exp-") || known[id] {
			continue
		}
		if err := os.Remove(filepath.Join(e.cfg.Dir, name)); err == nil {
			e.log.Info("export: removed a package of an earlier run", "file", name)
		}
	}
}

// expire forgets finished jobs older than Keep and removes their files.
func (e *Exporter) expire() {
	now := e.cfg.Now()
	e.mu.Lock()
	var gone []*exportJob
	for id, j := range e.jobs {
		j.mu.Lock()
		old := j.state.finished() && now.Sub(j.finished) > e.cfg.Keep
		j.mu.Unlock()
		if old {
			delete(e.jobs, id)
			gone = append(gone, j)
		}
	}
	e.mu.Unlock()
	for _, j := range gone {
		_ = os.Remove(j.path)
	}
}

// Export states.
type exportState string

const (
	exportQueued    exportState = "queued"
	exportRunning   exportState = "running"
	exportDone      exportState = "done"
	exportFailed    exportState = "failed"
	exportCancelled exportState = "cancelled"
)

func (s exportState) finished() bool {
	return s == exportDone || s == exportFailed || s == exportCancelled
}

var (
	errExportShutdown  = errors.New("server shutting down")
	errExportCancelled = errors.New("cancelled by the user")
	errExportFull      = errors.New("too many exports; wait for some to finish or expire")
)

// exportSpec is what an export covers, once the API has authorised it.
type exportSpec struct {
	principal registry.Principal
	client    string
	reason    string
	incident  *registry.Incident
	cameras   []registry.Camera
	facility  string
	from, to  time.Time
}

func (s *exportSpec) objects() []string {
	fs := footageScope{incident: s.incident, cameras: s.cameras}
	return fs.objects()
}

// exportJob is one export.
type exportJob struct {
	id     string
	spec   exportSpec
	path   string
	cancel context.CancelCauseFunc

	mu       sync.Mutex
	state    exportState
	err      string
	created  time.Time
	started  time.Time
	finished time.Time
	done     int64 // bytes written
	total    int64 // bytes planned
	size     int64
	sha256   string
	files    int
}

// exportView is an export as the API shows it.
type exportView struct {
	ID        string     `json:"id"`
	State     string     `json:"state"`
	Error     string     `json:"error,omitempty"`
	Incident  *int64     `json:"incident"`
	Cameras   []string   `json:"cameras"`
	From      time.Time  `json:"from"`
	To        time.Time  `json:"to"`
	Reason    string     `json:"reason"`
	CreatedAt time.Time  `json:"created_at"`
	Finished  *time.Time `json:"finished_at"`
	// Progress is 0 to 1; BytesDone of BytesTotal media bytes written.
	Progress   float64 `json:"progress"`
	BytesDone  int64   `json:"bytes_done"`
	BytesTotal int64   `json:"bytes_total"`
	// Size and SHA256 describe the finished package.
	Size   int64  `json:"size,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
	Files  int    `json:"files,omitempty"`
}

func (j *exportJob) view() exportView {
	j.mu.Lock()
	defer j.mu.Unlock()
	v := exportView{ID: j.id, State: string(j.state), Error: j.err, From: j.spec.from, To: j.spec.to, Reason: j.spec.reason,
		CreatedAt: j.created, BytesDone: j.done, BytesTotal: j.total, Size: j.size, SHA256: j.sha256, Files: j.files, Cameras: []string{}}
	if j.spec.incident != nil {
		id := j.spec.incident.ID
		v.Incident = &id
	}
	for _, c := range j.spec.cameras {
		v.Cameras = append(v.Cameras, c.ID)
	}
	if !j.finished.IsZero() {
		f := j.finished
		v.Finished = &f
	}
	switch {
	case j.state == exportDone:
		v.Progress = 1
	case j.total > 0:
		v.Progress = float64(j.done) / float64(j.total)
	}
	return v
}

// submit queues an export. Its "started" audit row is written first: when
// it cannot be, the export is refused.
func (e *Exporter) submit(ctx context.Context, spec exportSpec) (*exportJob, error) {
	id, err := newLiveSessionID()
	if err != nil {
		return nil, err
	}
	id = "exp-" + id[:24]
	e.mu.Lock()
	if e.closed || len(e.jobs) >= e.cfg.MaxJobs {
		e.mu.Unlock()
		e.metrics.jobs.WithLabelValues("refused").Inc()
		return nil, errExportFull
	}
	jctx, cancel := context.WithCancelCause(context.Background())
	j := &exportJob{id: id, spec: spec, path: filepath.Join(e.cfg.Dir, id+".zip"), cancel: cancel, state: exportQueued, created: e.cfg.Now()}
	e.jobs[id] = j
	e.mu.Unlock()
	a := registry.EntryFor(spec.principal, spec.client, registry.AuditExport)
	a.Facility, a.Objects, a.From, a.To, a.Reason = spec.facility, spec.objects(), spec.from, spec.to, spec.reason
	a.Outcome, a.Detail = registry.OutcomeStarted, "export "+id+" queued"
	if err := e.audit.Record(ctx, a); err != nil {
		e.mu.Lock()
		delete(e.jobs, id)
		e.mu.Unlock()
		cancel(err)
		return nil, fmt.Errorf("%w: %v", registry.ErrAudit, err)
	}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		e.runJob(jctx, j)
	}()
	return j, nil
}

// job returns the export id of user, or nil.
func (e *Exporter) job(id string, user int64) *exportJob {
	e.mu.Lock()
	defer e.mu.Unlock()
	j := e.jobs[id]
	if j == nil || j.spec.principal.UserID != user {
		return nil
	}
	return j
}

// list returns user's exports, newest first.
func (e *Exporter) list(user int64) []exportView {
	e.mu.Lock()
	var js []*exportJob
	for _, j := range e.jobs {
		if j.spec.principal.UserID == user {
			js = append(js, j)
		}
	}
	e.mu.Unlock()
	out := make([]exportView, 0, len(js))
	for _, j := range js {
		out = append(out, j.view())
	}
	sort.Slice(out, func(a, b int) bool {
		return out[a].CreatedAt.After(out[b].CreatedAt) || out[a].CreatedAt.Equal(out[b].CreatedAt) && out[a].ID > out[b].ID
	})
	return out
}

// remove cancels a running export, or deletes a finished one.
func (e *Exporter) remove(j *exportJob) {
	j.cancel(errExportCancelled)
	j.mu.Lock()
	fin := j.state.finished()
	j.mu.Unlock()
	if fin {
		e.mu.Lock()
		delete(e.jobs, j.id)
		e.mu.Unlock()
		_ = os.Remove(j.path)
	}
}

// runJob waits for a slot, writes the package and records the outcome.
func (e *Exporter) runJob(ctx context.Context, j *exportJob) {
	select {
	case e.slots <- struct{}{}:
	case <-ctx.Done():
		e.finish(j, context.Cause(ctx))
		return
	}
	defer func() { <-e.slots }()
	j.mu.Lock()
	j.state, j.started = exportRunning, e.cfg.Now()
	j.mu.Unlock()
	err := e.write(ctx, j)
	if ctx.Err() != nil {
		// Cancelled or shut down: that is why it ended, whatever broke.
		err = context.Cause(ctx)
	}
	e.finish(j, err)
}

// finish records a job's end in its state, the metrics and the audit log.
func (e *Exporter) finish(j *exportJob, err error) {
	// Clean up and audit first, then publish the final state: whoever sees
	// the job finished also sees its files gone and its audit row written.
	finished := e.cfg.Now()
	var state exportState
	switch {
	case err == nil:
		state = exportDone
	case errors.Is(err, errExportCancelled) || errors.Is(err, errExportShutdown):
		state = exportCancelled
	default:
		state = exportFailed
	}
	j.mu.Lock()
	size, sum, took := j.size, j.sha256, finished.Sub(j.created)
	j.mu.Unlock()
	if err != nil {
		_ = os.Remove(j.path + ".part")
		_ = os.Remove(j.path)
	}
	e.metrics.jobs.WithLabelValues(string(state)).Inc()
	a := registry.EntryFor(j.spec.principal, j.spec.client, registry.AuditExport)
	a.Facility, a.Objects, a.From, a.To, a.Reason = j.spec.facility, j.spec.objects(), j.spec.from, j.spec.to, j.spec.reason
	a.Outcome = registry.OutcomeOK
	if err != nil {
		a.Outcome, a.Detail = registry.OutcomeFailed, fmt.Sprintf("export %s %s: %v", j.id, state, err)
	} else {
		a.Detail = fmt.Sprintf("export %s created: %d bytes, sha256 %s", j.id, size, sum)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if aerr := e.audit.Record(ctx, a); aerr != nil {
		e.metrics.auditFail.Inc()
		e.log.Error("audit of an export failed", "export", j.id, "err", aerr)
	}
	j.mu.Lock()
	j.finished, j.state = finished, state
	if err != nil {
		j.err = err.Error()
	}
	j.mu.Unlock()
	e.log.Info("export finished", "export", j.id, "user", j.spec.principal.Username, "state", state, "bytes", size,
		"took", took.Round(time.Millisecond), "err", err)
}

// exportPart is one MP4 file of a package.
type exportPart struct {
	camera *registry.Camera
	name   string
	plan   *mp4Plan
}

// write writes j's package: it plans every camera's files (reading only
// init sections and cut fragments), then streams them into the ZIP.
func (e *Exporter) write(ctx context.Context, j *exportJob) error {
	spec := &j.spec
	m := &evidence.Manifest{
		ExportID: j.id, From: spec.from, To: spec.to, Reason: spec.reason, Cameras: []evidence.Camera{}, Files: []evidence.File{},
		Gaps:     []evidence.Gap{},
		Exporter: evidence.Exporter{UserID: spec.principal.UserID, Username: spec.principal.Username, Client: spec.client, Roles: []string{}},
		Software: evidence.Software{Name: "kuzet", Version: e.cfg.Version},
	}
	for _, r := range spec.principal.Roles {
		m.Exporter.Roles = append(m.Exporter.Roles, string(r))
	}
	if inc := spec.incident; inc != nil {
		m.Incident = &evidence.Incident{ID: inc.ID, Facility: inc.Facility, Type: inc.Type, Severity: inc.Severity,
			Start: inc.Start.UTC(), End: inc.End, Description: inc.Description}
	}
	var parts []exportPart
	var total int64
	for i := range spec.cameras {
		cam := &spec.cameras[i]
		segs, err := e.recs.RecordedSegments(ctx, cam.ID, spec.from, spec.to)
		if err != nil {
			return fmt.Errorf("recording index: %w", err)
		}
		gaps, err := e.recs.RecordedGaps(ctx, cam.ID, spec.from, spec.to)
		if err != nil {
			return fmt.Errorf("recording index: %w", err)
		}
		mc := evidence.Camera{ID: cam.ID, Name: cam.Name, Facility: cam.Facility, Zone: cam.Zone, Files: []string{}, Segments: []evidence.Segment{}}
		for _, g := range gaps {
			m.Gaps = append(m.Gaps, evidence.Gap{Camera: cam.ID, Start: g.Start.UTC(), End: g.End.UTC(), Reason: g.Reason, Detail: g.Detail})
		}
		from := spec.from
		for n := 1; ; n++ {
			plan, err := planMP4(ctx, e.objects, segs, from, spec.to)
			if errors.Is(err, errNoFootage) {
				break
			}
			if err != nil {
				return fmt.Errorf("camera %s: %w", cam.ID, err)
			}
			name := cam.ID + ".mp4"
			if n > 1 || !plan.next.IsZero() {
				name = fmt.Sprintf("%s-part%d.mp4", cam.ID, n)
			}
			parts = append(parts, exportPart{camera: cam, name: name, plan: plan})
			total += plan.size
			for _, s := range plan.segs {
				mc.Segments = append(mc.Segments, evidence.Segment{ObjectKey: s.ObjectKey, Start: s.Start.UTC(), End: s.End.UTC(),
					Bytes: s.Bytes, SHA256: hex.EncodeToString(s.SHA256[:]), PrevChain: hex.EncodeToString(s.PrevChain[:]),
					Chain: hex.EncodeToString(s.Chain[:])})
			}
			mc.Files = append(mc.Files, name)
			if plan.next.IsZero() {
				break
			}
			from = plan.next
		}
		m.Cameras = append(m.Cameras, mc)
	}
	j.mu.Lock()
	j.total = total
	j.mu.Unlock()

	part := j.path + ".part"
	f, err := os.OpenFile(part, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("package file: %w", err)
	}
	defer f.Close()
	sum := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(f, sum), 1<<20)
	w := evidence.NewWriter(bw, e.cfg.Now())
	for _, p := range parts {
		var frames int
		file, err := w.Add(p.name, evidence.TypeMP4, func(out io.Writer) error {
			st, err := p.plan.writeRange(ctx, e.objects, &progressWriter{w: out, j: j, m: e.metrics.bytes}, 0, p.plan.size)
			frames = st.frames
			return err
		})
		if err != nil {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			return err
		}
		first, last := p.plan.first.UTC(), p.plan.last.UTC()
		file.Camera, file.From, file.To, file.Frames = p.camera.ID, &first, &last, frames
		file.Codec, file.Width, file.Height = p.plan.segs[0].Codec, p.plan.segs[0].Width, p.plan.segs[0].Height
		m.Files = append(m.Files, file)
	}
	m.ExportedAt = e.cfg.Now().UTC()
	if err := w.Finish(m, e.key); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("package file: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("package file: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("package file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("package file: %w", err)
	}
	if err := os.Rename(part, j.path); err != nil {
		return fmt.Errorf("package file: %w", err)
	}
	j.mu.Lock()
	j.size, j.sha256, j.files, j.done = st.Size(), hex.EncodeToString(sum.Sum(nil)), len(m.Files), j.total
	j.mu.Unlock()
	return nil
}

// progressWriter counts a job's bytes as they are written, and stops the
// write when the job is cancelled (the next Write fails).
type progressWriter struct {
	w io.Writer
	j *exportJob
	m prometheus.Counter
}

func (p *progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.j.mu.Lock()
	p.j.done += int64(n)
	p.j.mu.Unlock()
	p.m.Add(float64(n))
	return n, err
}

// exportMetrics are the metrics of evidence export.
type exportMetrics struct {
	jobs      *prometheus.CounterVec // state
	bytes     prometheus.Counter
	auditFail prometheus.Counter
}

func newExportMetrics(reg prometheus.Registerer) (*exportMetrics, error) {
	m := &exportMetrics{
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kuzet_export_jobs_total",
			Help: "Evidence exports by how they ended (done, failed, cancelled, refused)."}, []string{"state"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "kuzet_export_media_bytes_total",
			Help: "MP4 bytes written into evidence packages."}),
		auditFail: prometheus.NewCounter(prometheus.CounterOpts{Name: "kuzet_export_audit_failures_total",
			Help: "Audit rows of exports that could not be written after the fact."}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.jobs, m.bytes, m.auditFail} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}
