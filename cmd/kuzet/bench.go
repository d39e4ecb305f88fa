package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/kuzet/kuzet/ingest"
	"github.com/kuzet/kuzet/internal/camsim"
	"github.com/kuzet/kuzet/internal/config"
	"github.com/kuzet/kuzet/internal/migrate"
	"github.com/kuzet/kuzet/internal/pgserver"
	"github.com/kuzet/kuzet/recorder"
	"github.com/kuzet/kuzet/recorder/index"
	"github.com/kuzet/kuzet/recorder/procstat"
	"github.com/kuzet/kuzet/recorder/store"
)

// benchOptions are the flags of kuzet bench.
type benchOptions struct {
	cameras   int
	duration  time.Duration
	segment   time.Duration
	clip      string
	store     string
	database  string
	config    string
	camsimBin string
	jsonPath  string
	logLevel  string
}

func benchCommand() command {
	return command{
		name:  "bench",
		usage: "[flags]",
		summary: `Load benchmark: N simulated cameras through ingest and the recorder; prints a report.

Runs the camera simulator in a child process (its CPU is not counted), pulls
every camera over RTSP/TCP with the ingest manager and records it with the
recorder into a fresh spool and object store, indexed in PostgreSQL, all in
this process. Measuring starts once every camera has delivered a frame and
lasts --duration. The report gives frames received against frames sent (from
the simulator's SEI marks), drops, segments written and uploaded, this
process's CPU (getrusage) per camera in percent of one core, peak RSS and Go
heap per camera, and the upload backlog at the end.

The store is a temporary directory (fs) or the S3 bucket of the configuration
(--store s3: store.s3.* from --config and KUZET_STORE_S3_*; the run's objects,
under a facility named bench-XXXXXX, are deleted afterwards). The database is
--database, else a fresh database created on KUZET_DATABASE_URL (dropped
afterwards), else a private PostgreSQL cluster in a temporary directory.

Examples:
  kuzet bench
  kuzet bench --cameras 64 --duration 30s
  kuzet bench --cameras 4 --clip testdata/clips/h265_640x360.ts --json bench.json`,
		flags: func(fs *flag.FlagSet) func(context.Context, []string) error {
			o := benchOptions{}
			fs.IntVar(&o.cameras, "cameras", 16, "`number` of simulated cameras")
			fs.DurationVar(&o.duration, "duration", 60*time.Second, "measured `time`")
			fs.DurationVar(&o.segment, "segment", 10*time.Second, "segment `duration` of the recorder")
			fs.StringVar(&o.clip, "clip", benchDefaultClip, "MPEG-TS clip `file` every camera loops (relative paths are\nlooked up from the working directory upwards)")
			fs.StringVar(&o.store, "store", "fs", "object store: fs (a temporary directory) or s3 (from the configuration)")
			fs.StringVar(&o.database, "database", "", "PostgreSQL `URL` to record the index in (its recorder tables are used as they are);\ndefault a fresh database on $KUZET_DATABASE_URL, else a private cluster")
			fs.StringVar(&o.config, "config", os.Getenv("KUZET_CONFIG"), "configuration `file` (YAML) for store.s3 and database.url; default none, or $KUZET_CONFIG")
			fs.StringVar(&o.camsimBin, "camsim-bin", "", "kuzet `binary` that runs the camera simulator (default: this program)")
			fs.StringVar(&o.jsonPath, "json", "", "also write the report as JSON to `file`")
			fs.StringVar(&o.logLevel, "log-level", "warn", "log `level`: debug, info, warn or error")
			return func(ctx context.Context, args []string) error {
				if len(args) > 0 {
					return usageErrorf("unexpected argument %q", args[0])
				}
				var level slog.Level
				if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
					return usageErrorf("--log-level: %v", err)
				}
				log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
				rep, err := bench(ctx, o, log)
				if err != nil {
					return err
				}
				rep.print(os.Stdout)
				if o.jsonPath != "" {
					b, err := json.MarshalIndent(rep, "", "  ")
					if err != nil {
						return err
					}
					if err := os.WriteFile(o.jsonPath, append(b, '\n'), 0o644); err != nil {
						return fmt.Errorf("--json: %w", err)
					}
				}
				return nil
			}
		},
	}
}

// benchDefaultClip is the 1080p H.264 clip at about 4 Mbit/s.
const benchDefaultClip = "testdata/clips/h264_1920x1080.ts"

// benchReport is what kuzet bench measured. Counts are over the measured
// window unless said otherwise.
type benchReport struct {
	Cameras     int     `json:"cameras"`
	Clip        string  `json:"clip"`
	Video       string  `json:"video"`
	Seconds     float64 `json:"seconds"`
	Interrupted bool    `json:"interrupted,omitempty"`
	Segment     string  `json:"segment"`
	Store       string  `json:"store"`
	Database    string  `json:"database"`
	CPUs        int     `json:"cpus"`

	FramesSent     uint64 `json:"frames_sent"`
	FramesReceived uint64 `json:"frames_received"`
	FramesMissing  uint64 `json:"frames_missing"`
	// RTPPacketsLost is counted by ingest from the RTP sequence numbers.
	RTPPacketsLost uint64 `json:"rtp_packets_lost"`
	// RecorderDrops are units the recorder's queue lost; OverloadGaps the
	// writer_overload gaps that followed; CounterDrops units the bench's
	// own frame counter lost (its counts are then short).
	RecorderDrops uint64 `json:"recorder_drops"`
	OverloadGaps  uint64 `json:"overload_gaps"`
	CounterDrops  uint64 `json:"counter_drops"`

	// Segments written and uploaded since the start (not only in the
	// window); UploadFailures failed upload attempts; UploadMeanSeconds
	// the mean time to upload and verify one.
	SegmentsWritten   uint64  `json:"segments_written"`
	SegmentsUploaded  uint64  `json:"segments_uploaded"`
	UploadFailures    uint64  `json:"upload_failures"`
	UploadMeanSeconds float64 `json:"upload_mean_seconds"`

	CPUPercent          float64 `json:"cpu_percent"`
	CPUPercentPerCamera float64 `json:"cpu_percent_per_camera"`
	PeakRSSBytes        int64   `json:"peak_rss_bytes"`
	RSSPerCamera        float64 `json:"rss_bytes_per_camera"`
	PeakHeapBytes       uint64  `json:"peak_heap_bytes"`
	HeapPerCamera       float64 `json:"heap_bytes_per_camera"`

	// At the end of the window.
	BacklogSegments int64   `json:"backlog_segments"`
	BacklogBytes    int64   `json:"backlog_bytes"`
	JournalBacklog  int     `json:"journal_backlog"`
	LagSeconds      float64 `json:"recording_lag_seconds"`
}

func (r *benchReport) print(w io.Writer) {
	mib := func(b float64) string { return fmt.Sprintf("%.1f MiB", b/(1<<20)) }
	state := ""
	if r.Interrupted {
		state = " (interrupted)"
	}
	fmt.Fprintf(w, "kuzet bench: %d cameras, %s (%s), %.1fs measured%s\n", r.Cameras, filepath.Base(r.Clip), r.Video, r.Seconds, state)
	fmt.Fprintf(w, "  setup:          %s segments, %s store, %s; %d CPUs (%s/%s)\n", r.Segment, r.Store, r.Database, r.CPUs, runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(w, "  frames:         %d received of %d sent (%d missing); %d RTP packets lost\n", r.FramesReceived, r.FramesSent, r.FramesMissing, r.RTPPacketsLost)
	fmt.Fprintf(w, "  drops:          %d units in the recorder's queue, %d writer_overload gaps, %d in the frame counter\n", r.RecorderDrops, r.OverloadGaps, r.CounterDrops)
	fmt.Fprintf(w, "  segments:       %d written, %d uploaded (mean %.0f ms), %d failed upload attempts\n", r.SegmentsWritten, r.SegmentsUploaded, 1000*r.UploadMeanSeconds, r.UploadFailures)
	fmt.Fprintf(w, "  cpu:            %.1f%% of one core, %.2f%% per camera (ingest + recorder; simulator not counted)\n", r.CPUPercent, r.CPUPercentPerCamera)
	fmt.Fprintf(w, "  memory:         peak RSS %s (%s per camera), peak Go heap %s (%s per camera)\n", mib(float64(r.PeakRSSBytes)), mib(r.RSSPerCamera), mib(float64(r.PeakHeapBytes)), mib(r.HeapPerCamera))
	fmt.Fprintf(w, "  backlog at end: %d segments (%s) to upload, %d index changes journaled, recording lag %.1fs\n", r.BacklogSegments, mib(float64(r.BacklogBytes)), r.JournalBacklog, r.LagSeconds)
}

// bench runs the benchmark and returns its report. Start order: database,
// store, recorder, camera simulator, ingest; shutdown in reverse, the
// recorder before ingest so that it closes its segments while the cameras
// still send.
func bench(ctx context.Context, o benchOptions, log *slog.Logger) (*benchReport, error) {
	if o.cameras < 1 || o.cameras > camsim.MaxCameras {
		return nil, usageErrorf("--cameras %d: want 1..%d", o.cameras, camsim.MaxCameras)
	}
	if o.duration <= 0 {
		return nil, usageErrorf("--duration must be positive")
	}
	if o.segment < time.Second {
		return nil, usageErrorf("--segment %s: want at least 1s", o.segment)
	}
	if o.store != "fs" && o.store != "s3" {
		return nil, usageErrorf("--store %q: want fs or s3", o.store)
	}
	clip, err := findUpwards(o.clip)
	if err != nil {
		return nil, fmt.Errorf("--clip: %w", err)
	}
	exe := o.camsimBin
	if exe == "" {
		if exe, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("bench: finding this program to run the simulator: %w", err)
		}
	}
	cfg, err := config.Load(o.config, os.Environ())
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "kuzet-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	var tag [3]byte
	_, _ = rand.Read(tag[:])
	facility := "bench-" + hex.EncodeToString(tag[:])
	rep := &benchReport{Cameras: o.cameras, Clip: clip, Segment: o.segment.String(), Store: o.store, CPUs: runtime.NumCPU()}

	dbURL, dbName, cleanup, err := benchDatabase(ctx, o, cfg, tmp, facility, log)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	rep.Database = dbName
	dbc := cfg.Database
	if dbc.URL, err = config.ParseURL(dbURL); err != nil {
		return nil, err
	}
	pool, err := openDatabase(ctx, dbc, log)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	if _, err := migrate.Apply(ctx, pool, index.Migrations); err != nil {
		return nil, err
	}

	reg := prometheus.NewRegistry()
	sc := cfg.Store
	sc.Kind = o.store
	if o.store == "fs" {
		sc.FS.Dir = filepath.Join(tmp, "store")
	} else {
		check := cfg
		check.Store = sc
		if err := check.Validate(); err != nil {
			return nil, usageErrorf("--store s3 takes store.s3 from --config or KUZET_STORE_S3_*: %v", err)
		}
	}
	objects, err := openStore(ctx, sc, log, reg)
	if err != nil {
		return nil, err
	}
	defer objects.Close()
	if o.store == "s3" {
		defer deleteBenchObjects(objects, facility, log)
	}
	sim, err := startBenchCamsim(exe, o.cameras, clip, log)
	if err != nil {
		return nil, err
	}
	defer sim.stop()

	recMetrics, err := recorder.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	rec, err := recorder.New(recorder.Config{
		SpoolDir:            filepath.Join(tmp, "spool"),
		SegmentDuration:     o.segment,
		OrphanCheckInterval: -1,
	}, recorder.Deps{Pool: pool, Store: objects, Log: log.With("component", "recorder"), Metrics: recMetrics})
	if err != nil {
		return nil, err
	}

	ingestMetrics, err := ingest.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	cams := make([]ingest.CameraConfig, o.cameras)
	slot := map[string]int{}
	for i := range cams {
		id := fmt.Sprintf("bench-%d", i+1)
		cams[i] = ingest.CameraConfig{ID: id, Facility: facility, URL: sim.url(i + 1), Enabled: true}
		slot[id] = i
	}
	counters := make([]*frameCounter, o.cameras)
	var countersWG sync.WaitGroup
	defer countersWG.Wait() // their streams close when ingest stops
	mgr, err := ingest.NewManager(ingest.ManagerConfig{
		Transport: ingest.TransportTCP,
		OnStream: func(cam ingest.CameraConfig, s *ingest.Stream) {
			if err := rec.Record(recorder.Camera{ID: cam.ID, Facility: cam.Facility, Stream: s}); err != nil {
				log.Error("bench: camera not recorded", "camera", cam.ID, "err", err)
			}
			rd, err := s.AddReader(ingest.ReaderConfig{Kind: "bench", Capacity: 4096, Policy: ingest.SkipToKeyframe})
			if err != nil {
				return
			}
			c := &frameCounter{rd: rd}
			counters[slot[cam.ID]] = c
			countersWG.Go(c.run)
		},
	}, ingestMetrics, log.With("component", "ingest"))
	if err != nil {
		return nil, err
	}

	// Shutdown: the recorder first (it closes its segments while the
	// cameras still send), then ingest, whose streams' end stops the frame
	// counters; the simulator and the database after (deferred above).
	ingestCtx, stopIngest := context.WithCancel(context.WithoutCancel(ctx))
	recCtx, stopRec := context.WithCancel(context.WithoutCancel(ctx))
	ingestDone, recDone := make(chan error, 1), make(chan error, 1)
	go func() { ingestDone <- mgr.Run(ingestCtx) }()
	go func() { recDone <- rec.Run(recCtx) }()
	var stopOnce sync.Once
	var ingestErr, recErr error
	stopAll := func() {
		stopOnce.Do(func() {
			stopRec()
			recErr = <-recDone
			stopIngest()
			ingestErr = <-ingestDone
		})
	}
	defer stopAll()
	if err := mgr.Apply(ctx, cams); err != nil {
		return nil, err
	}

	// Measure once every camera has delivered a frame.
	wait := 30*time.Second + time.Duration(o.cameras)*100*time.Millisecond
	deadline := time.Now().Add(wait)
	for !allCounting(counters) {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("bench: not every camera delivered a frame within %s (%d of %d did)",
				wait, countingCameras(counters), o.cameras)
		}
		if err := sim.exited(); err != nil {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	meter := procstat.NewMeter()
	meter.Start()
	first := snapshotCounters(counters)
	t := time.NewTicker(250 * time.Millisecond)
	end := time.After(o.duration)
wait:
	for {
		select {
		case <-t.C:
			meter.Poll()
			if err := sim.exited(); err != nil {
				t.Stop()
				return nil, err
			}
		case <-end:
			break wait
		case <-ctx.Done():
			rep.Interrupted = true
			break wait
		}
	}
	t.Stop()
	u := meter.Stop()
	last := snapshotCounters(counters)

	rep.Seconds = u.Wall.Seconds()
	for i := range first {
		sent := last[i].last - first[i].last
		got := last[i].frames - first[i].frames
		rep.FramesSent += sent
		rep.FramesReceived += got
		if sent > got {
			rep.FramesMissing += sent - got
		}
		rep.CounterDrops += last[i].dropped
	}
	for _, h := range mgr.Health() {
		rep.RTPPacketsLost += h.PacketsLost
		if rep.Video == "" && h.VideoCodec != "" {
			rep.Video = fmt.Sprintf("%s %dx%d", h.VideoCodec, h.Width, h.Height)
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		return nil, err
	}
	rep.RecorderDrops = uint64(sumMetric(mfs, "kuzet_ingest_reader_dropped_units_total", "reader", "recorder"))
	rep.OverloadGaps = uint64(sumMetric(mfs, "kuzet_recorder_gaps_total", "reason", "writer_overload"))
	rep.SegmentsWritten = uint64(sumMetric(mfs, "kuzet_recorder_segments_total", "outcome", "recorded"))
	rep.SegmentsUploaded = uint64(sumMetric(mfs, "kuzet_recorder_uploads_total", "outcome", "ok"))
	if n := sumMetric(mfs, "kuzet_recorder_upload_seconds", "", ""); n > 0 {
		rep.UploadMeanSeconds = sumHistogram(mfs, "kuzet_recorder_upload_seconds") / n
	}
	h := rec.Health()
	rep.UploadFailures = h.UploadFailures
	rep.BacklogSegments, rep.BacklogBytes, rep.JournalBacklog = h.UploadBacklog, h.UploadBacklogBytes, h.JournalBacklog
	rep.LagSeconds = h.RecordingLag.Seconds()
	rep.CPUPercent = u.CPUPercent(1)
	rep.CPUPercentPerCamera = u.CPUPercent(o.cameras)
	rep.PeakRSSBytes, rep.RSSPerCamera = u.PeakRSS, u.RSSPer(o.cameras)
	rep.PeakHeapBytes, rep.HeapPerCamera = u.PeakHeap, u.HeapPer(o.cameras)

	stopAll()
	if ingestErr != nil && !errors.Is(ingestErr, context.Canceled) {
		return nil, fmt.Errorf("bench: ingest: %w", ingestErr)
	}
	if recErr != nil && !errors.Is(recErr, context.Canceled) {
		return nil, fmt.Errorf("bench: recorder: %w", recErr)
	}
	return rep, nil
}

// findUpwards returns path, or for a relative path not found in the
// working directory, the first match in its parents.
func findUpwards(path string) (string, error) {
	if _, err := os.Stat(path); err == nil || filepath.IsAbs(path) {
		if err != nil {
			return "", err
		}
		return filepath.Abs(path)
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, path)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("%s not found in the working directory or its parents", path)
		}
		dir = parent
	}
}

// benchDatabase returns the URL of the database to index in, a name for
// the report, and what removes what it created.
func benchDatabase(ctx context.Context, o benchOptions, cfg config.Config, tmp, facility string, log *slog.Logger) (dbURL, name string, cleanup func(), err error) {
	if o.database != "" {
		u, err := config.ParseURL(o.database)
		if err != nil {
			return "", "", nil, usageErrorf("--database: %v", err)
		}
		return o.database, u.Redacted(), func() {}, nil
	}
	if !cfg.Database.URL.IsZero() {
		// A fresh database on that server, dropped afterwards.
		server := cfg.Database.URL.String()
		dbname := strings.ReplaceAll(facility, "-", "_")
		conn, err := pgx.Connect(ctx, server)
		if err != nil {
			return "", "", nil, fmt.Errorf("bench: database %s: %v", cfg.Database.URL.Redacted(), redactErr(err, cfg.Database.URL))
		}
		_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{dbname}.Sanitize())
		conn.Close(ctx)
		if err != nil {
			return "", "", nil, fmt.Errorf("bench: create database %s: %w", dbname, err)
		}
		u := *cfg.Database.URL.URL
		u.Path = "/" + dbname
		drop := func() {
			dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			conn, err := pgx.Connect(dctx, server)
			if err == nil {
				_, err = conn.Exec(dctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{dbname}.Sanitize()+" WITH (FORCE)")
				conn.Close(dctx)
			}
			if err != nil {
				log.Warn("bench: dropping the benchmark database", "database", dbname, "err", redactErr(err, cfg.Database.URL))
			}
		}
		return u.String(), "fresh database " + dbname + " on " + (&url.URL{Scheme: u.Scheme, Host: u.Host}).String(), drop, nil
	}
	port, err := freePort()
	if err != nil {
		return "", "", nil, err
	}
	cluster, err := pgserver.Start(ctx, filepath.Join(tmp, "pg"), port)
	if err != nil {
		return "", "", nil, fmt.Errorf("bench: private PostgreSQL: %w (or give --database, or set KUZET_DATABASE_URL)", err)
	}
	stop := func() {
		if err := cluster.Stop(); err != nil {
			log.Warn("bench: stopping the private PostgreSQL", "err", err)
		}
		os.RemoveAll(cluster.Dir) // it may live outside tmp
	}
	u, err := cluster.EnsureDatabase(ctx, "kuzet")
	if err != nil {
		stop()
		return "", "", nil, err
	}
	return u, "private PostgreSQL cluster", stop, nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// deleteBenchObjects removes the run's objects from an S3 bucket.
func deleteBenchObjects(st store.Store, facility string, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	n := 0
	for obj, err := range st.List(ctx, facility+"/") {
		if err == nil {
			err = st.Delete(ctx, obj.Key)
		}
		if err != nil {
			log.Warn("bench: deleting the run's objects", "prefix", facility+"/", "deleted", n, "err", err)
			return
		}
		n++
	}
}

// benchCamsim is the camera simulator's child process.
type benchCamsim struct {
	cmd  *exec.Cmd
	addr string
	done chan struct{} // closed when the process has exited
	err  error         // its exit status, once done
	tail *lineTail
}

var camsimAddrRE = regexp.MustCompile(`msg="camera simulator serving" addr=(\S+)`)

// startBenchCamsim runs `exe camsim` and waits until it serves.
func startBenchCamsim(exe string, cameras int, clip string, log *slog.Logger) (*benchCamsim, error) {
	cmd := exec.Command(exe, "camsim", "--listen", "127.0.0.1:0", "--cameras", fmt.Sprint(cameras), "--clip", clip, "--log-level", "info")
	cmd.Stdout = io.Discard
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: camera simulator: %w", err)
	}
	s := &benchCamsim{cmd: cmd, done: make(chan struct{}), tail: &lineTail{}}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			s.tail.add(line)
			if m := camsimAddrRE.FindStringSubmatch(line); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
			if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
				log.Warn("camera simulator: " + line)
			}
		}
		s.err = cmd.Wait()
		close(s.done)
	}()
	select {
	case s.addr = <-addr:
		return s, nil
	case <-s.done:
		return nil, fmt.Errorf("bench: camera simulator exited (%v): %s", s.err, s.tail.String())
	case <-time.After(60 * time.Second):
		s.stop()
		return nil, fmt.Errorf("bench: camera simulator did not start within 60s: %s", s.tail.String())
	}
}

// url is the RTSP URL of camera n.
func (s *benchCamsim) url(n int) string { return fmt.Sprintf("rtsp://%s/cam/%d", s.addr, n) }

// exited returns an error once the simulator has exited.
func (s *benchCamsim) exited() error {
	select {
	case <-s.done:
		return fmt.Errorf("bench: camera simulator exited (%v): %s", s.err, s.tail.String())
	default:
		return nil
	}
}

// stop ends the simulator: SIGTERM, then SIGKILL after 10 s.
func (s *benchCamsim) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// lineTail keeps the last lines of a child's output for error messages.
type lineTail struct {
	mu    sync.Mutex
	lines []string
}

func (t *lineTail) add(l string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines = append(t.lines, l)
	if len(t.lines) > 10 {
		t.lines = t.lines[1:]
	}
}

func (t *lineTail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, "\n")
}

// frameCounter reads one camera's stream and counts its video frames by
// the simulator's SEI marks. One goroutine runs it until the stream
// closes.
type frameCounter struct {
	rd      *ingest.Reader
	frames  atomic.Uint64 // marked frames received
	last    atomic.Uint64 // highest frame number seen, plus one (0: none)
	started atomic.Bool
}

func (c *frameCounter) run() {
	defer c.rd.Close()
	for {
		it, err := c.rd.Read(context.Background())
		if err != nil {
			return // the stream closed
		}
		u := it.Unit
		if u == nil || u.Track == nil || !u.Track.Codec.IsVideo() {
			continue
		}
		m, ok := camsim.FindMark(string(u.Track.Codec), u.NALUs)
		if !ok {
			continue
		}
		c.frames.Add(1)
		if m.Frame+1 > c.last.Load() {
			c.last.Store(m.Frame + 1)
		}
		c.started.Store(true)
	}
}

type counterSnapshot struct{ frames, last, dropped uint64 }

func snapshotCounters(cs []*frameCounter) []counterSnapshot {
	out := make([]counterSnapshot, len(cs))
	for i, c := range cs {
		if c != nil {
			out[i] = counterSnapshot{frames: c.frames.Load(), last: c.last.Load(), dropped: c.rd.Dropped()}
		}
	}
	return out
}

func allCounting(cs []*frameCounter) bool { return countingCameras(cs) == len(cs) }

func countingCameras(cs []*frameCounter) int {
	n := 0
	for _, c := range cs {
		if c != nil && c.started.Load() {
			n++
		}
	}
	return n
}

// sumMetric adds the values (counters, gauges; for histograms the sample
// counts) of the series of name whose label has value (any when label is
// "").
func sumMetric(mfs []*dto.MetricFamily, name, label, value string) float64 {
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label != "" && !hasLabel(m, label, value) {
				continue
			}
			switch {
			case m.GetCounter() != nil:
				sum += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				sum += m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				sum += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return sum
}

// sumHistogram adds the sample sums of the histogram series of name.
func sumHistogram(mfs []*dto.MetricFamily, name string) float64 {
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetHistogram().GetSampleSum()
			}
		}
	}
	return sum
}

func hasLabel(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue() == value
		}
	}
	return false
}
