package recorder

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kuzet/kuzet/ingest"
	"github.com/kuzet/kuzet/internal/camsim"
	"github.com/kuzet/kuzet/internal/testenv"
	"github.com/kuzet/kuzet/recorder/index"
	"github.com/kuzet/kuzet/recorder/segment"
	"github.com/kuzet/kuzet/recorder/store"
)

// simCamera is one camsim camera pulled by an ingest.Source.
type simCamera struct {
	id     string
	n      int
	codec  string // H264, H265
	stream *ingest.Stream
	src    *ingest.Source
}

// simCameras runs a camsim server and one ingest source per camera.
type simCameras struct {
	sim    *camsim.Server
	cams   []*simCamera
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// startSim serves one camsim camera per clip (relative to testdata/clips)
// and pulls each with an ingest.Source into its own stream; ids name the
// cameras.
func startSim(t testing.TB, ids, clips []string) *simCameras {
	t.Helper()
	root := testenv.RepoRoot(t)
	cc := map[int]string{}
	for i, c := range clips {
		cc[i+1] = filepath.Join(root, "testdata", "clips", c)
	}
	// A deep per-session queue: the tests run under the race detector on
	// shared cores, and a starved RTSP reader must not lose packets at the
	// simulated camera.
	sim, err := camsim.New(camsim.Config{Listen: "127.0.0.1:0", Cameras: len(clips), Clip: cc[1], CameraClips: cc,
		WriteQueueSize: 16384}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &simCameras{sim: sim, cancel: cancel}
	for i, id := range ids {
		codec := "H264"
		if strings.HasPrefix(clips[i], "h265") {
			codec = "H265"
		}
		st := ingest.NewStream(ingest.StreamConfig{Camera: id, GOPCacheBytes: 8 << 20}, nil, nil)
		src, err := ingest.NewSource(ingest.SourceConfig{Camera: id, URL: sim.URL(i + 1), BackoffMin: 200 * time.Millisecond, BackoffMax: time.Second}, st, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		s.cams = append(s.cams, &simCamera{id: id, n: i + 1, codec: codec, stream: st, src: src})
		s.wg.Add(1)
		go func() { defer s.wg.Done(); _ = src.Run(ctx) }()
	}
	t.Cleanup(s.stop)
	return s
}

// stopSources ends the sources (each stream gets an offline event).
func (s *simCameras) stopSources() {
	s.cancel()
	s.wg.Wait()
}

func (s *simCameras) stop() {
	s.stopSources()
	s.sim.Close()
}

// transportLoss describes what the camera and the source lost before the
// recorder (packets the simulator dropped for a slow reader, RTP packets
// missing, undecodable units), for failure messages.
func (s *simCameras) transportLoss(c *simCamera) string {
	if c.src == nil {
		return ""
	}
	h := c.src.Health()
	return fmt.Sprintf("camera dropped %d packets for a slow reader; source: %d packets lost, %d decode errors, %d reconnects, %d discontinuities, %d units lost by readers",
		s.sim.Camera(c.n).PacketsDropped(), h.PacketsLost, h.DecodeErrors, h.Reconnects, h.Discontinuities, h.QueueDrops)
}

// markedFrame is a video sample's camsim mark.
type markedFrame struct {
	frame   uint64
	capture time.Time
}

// segmentMarks downloads a segment, checks it with ffprobe, and returns
// its frames' marks and the video duration ffprobe measures.
func segmentMarks(t testing.TB, ffprobe string, st objectReader, key, codec string) ([]markedFrame, time.Duration) {
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
	res, err := segment.Scan(bytes.NewReader(b), int64(len(b)))
	if err != nil || res.Stop != "" {
		t.Fatalf("%s: scan: %v %q", key, err, res.Stop)
	}
	var parts fmp4.Parts
	if err := parts.Unmarshal(b[res.InitSize:]); err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	var out []markedFrame
	for _, p := range parts {
		for _, tr := range p.Tracks {
			if tr.ID != segment.VideoTrackID {
				continue
			}
			for _, s := range tr.Samples {
				nalus, err := s.GetH264()
				if err != nil {
					t.Fatalf("%s: %v", key, err)
				}
				m, ok := camsim.FindMark(codec, nalus)
				if !ok {
					t.Fatalf("%s: sample without mark", key)
				}
				out = append(out, markedFrame{m.Frame, m.Capture})
			}
		}
	}
	return out, ffprobeVideo(t, ffprobe, key, b, len(out))
}

// ffprobeVideo runs ffprobe on a segment and returns the span of its video
// packets (last pts + duration - first pts); it fails the test when
// ffprobe reports an error or a packet count other than frames.
func ffprobeVideo(t testing.TB, ffprobe, key string, b []byte, frames int) time.Duration {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "seg-*.mp4")
	if err != nil {
		t.Fatal(err)
	}
	f.Write(b)
	f.Close()
	out, err := exec.Command(ffprobe, "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts_time,duration_time",
		"-of", "csv=p=0", f.Name()).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", key, err)
	}
	lines := strings.Fields(string(out))
	if len(lines) != frames {
		t.Fatalf("ffprobe %s: %d video packets, segment has %d frames", key, len(lines), frames)
	}
	first, last := -1.0, 0.0
	for _, l := range lines {
		pts, dur, _ := strings.Cut(l, ",")
		p, err1 := strconv.ParseFloat(pts, 64)
		d, err2 := strconv.ParseFloat(dur, 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("ffprobe %s: packet %q", key, l)
		}
		if first < 0 || p < first {
			first = p
		}
		last = max(last, p+d)
	}
	errOut, err := exec.Command(ffprobe, "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", f.Name()).CombinedOutput()
	if err != nil || strings.Contains(string(errOut), "rror") {
		t.Fatalf("ffprobe %s: %v %s", key, err, errOut)
	}
	return time.Duration((last - first) * float64(time.Second))
}

// checkMarks checks that frames (of consecutive segments) have no hole and
// no duplicate, except where allowed returns true for a hole starting after
// frame prev.
func checkMarks(camera string, frames []markedFrame, allowHole func(prev, next markedFrame) bool) error {
	for i := 1; i < len(frames); i++ {
		a, b := frames[i-1], frames[i]
		switch {
		case b.frame == a.frame+1:
		case b.frame <= a.frame:
			return fmt.Errorf("%s: frame %d after frame %d (duplicate or reordered)", camera, b.frame, a.frame)
		case allowHole == nil || !allowHole(a, b):
			return fmt.Errorf("%s: frames %d..%d missing (captured %s..%s)", camera, a.frame+1, b.frame-1,
				a.capture.Format("15:04:05.000"), b.capture.Format("15:04:05.000"))
		}
	}
	return nil
}

// childConfig configures a recorder run in a child process.
type childConfig struct {
	SpoolDir        string
	StoreDir        string
	DatabaseURL     string
	SegmentDuration time.Duration
	Cameras         []childCamera
}

type childCamera struct{ ID, Facility, URL string }

// childMain runs a recorder with ingest sources, as configured by the
// environment, until SIGTERM; it prints "recording" once started.
func childMain() int {
	var cfg childConfig
	if err := json.Unmarshal([]byte(os.Getenv(childEnv)), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "child config:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	pool, err := pgxpool.New(ctx, cfg.DatabaseURL)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer pool.Close()
	st, err := store.NewFS(store.FSConfig{Dir: cfg.StoreDir}, log, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer st.Close()
	rec, err := New(Config{SpoolDir: cfg.SpoolDir, SegmentDuration: cfg.SegmentDuration, OrphanCheckInterval: -1,
		RetryMin: 100 * time.Millisecond, RetryMax: time.Second}, Deps{Pool: pool, Store: st, Log: log})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var wg sync.WaitGroup
	srcCtx, stopSources := context.WithCancel(context.Background())
	defer stopSources()
	for _, c := range cfg.Cameras {
		s := ingest.NewStream(ingest.StreamConfig{Camera: c.ID, GOPCacheBytes: 8 << 20}, nil, log)
		src, err := ingest.NewSource(ingest.SourceConfig{Camera: c.ID, URL: c.URL, BackoffMin: 100 * time.Millisecond, BackoffMax: time.Second}, s, nil, log)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if err := rec.Record(Camera{ID: c.ID, Facility: c.Facility, Stream: s}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		wg.Add(1)
		go func() { defer wg.Done(); _ = src.Run(srcCtx) }()
	}
	done := make(chan error, 1)
	go func() { done <- rec.Run(ctx) }()
	w := bufio.NewWriter(os.Stdout)
	fmt.Fprintln(w, "recording")
	w.Flush()
	err = <-done
	stopSources()
	wg.Wait()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// startChild starts the test binary as a recorder process.
func startChild(t testing.TB, cfg childConfig, logPath string) *exec.Cmd {
	t.Helper()
	b, _ := json.Marshal(cfg)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(b))
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "recording" {
		b, _ := os.ReadFile(logPath)
		t.Fatalf("child did not start: %q %v\n%s", line, err, b)
	}
	go io.Copy(io.Discard, out)
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		logf.Close()
	})
	return cmd
}

// indexedSegments returns a camera's segments.
func indexedSegments(t testing.TB, ix *index.Index, camera string) []index.Segment {
	t.Helper()
	segs, err := ix.Segments(context.Background(), camera, time.Unix(0, 0), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return segs
}
