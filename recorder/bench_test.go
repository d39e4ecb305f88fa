package recorder

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kuzet/kuzet/ingest"
	"github.com/kuzet/kuzet/internal/testenv"
	"github.com/kuzet/kuzet/recorder/internal/synth"
)

// BenchmarkRecord1080p records N simulated 1920x1080 H.264 cameras
// (~4 Mbit/s, 25 fps, the camera simulator's clip) in real time into the fs
// store (10 s segments), with PostgreSQL as the index, and reports the CPU
// and memory the process spends per camera. One op is one second of recording of every
// camera; run it with -benchtime=20x for 20 s per size:
//
//	go test -run '^$' -bench Record1080p -benchtime=20x ./recorder/
//
// cpu%/camera is the process's CPU time (user+system, getrusage) over wall
// time per camera, in percent of one core: segmenting, SHA-256, spool writes
// with fdatasync, the fs store's verified copy with fsync, journal and
// index writes, and the test's own publishing (copying each access unit
// into a fresh buffer, as ingest does). MB/camera (heap) is the peak live
// heap above the idle recorder per camera; MB/camera (rss) the growth of
// the resident set. Ingest's GOP cache is off: it belongs to ingest.
func BenchmarkRecord1080p(b *testing.B) {
	clipPath := filepath.Join(testenv.RepoRoot(b), "testdata", "clips", "h264_1920x1080.ts")
	clip, err := synth.LoadTS(clipPath)
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("cameras=%d", n), func(b *testing.B) { benchRecord(b, clip, n) })
	}
}

func benchRecord(b *testing.B, clip *synth.Clip, n int) {
	pool := migratedPool(b)
	// 10 s segments so that every measured window includes segment
	// closes, uploads and index writes (per byte the same work as 60 s
	// segments; per segment six times as often: conservative).
	cfg := Config{SpoolDir: b.TempDir(), SegmentDuration: 10 * time.Second, OrphanCheckInterval: -1}
	rec := startRecorder(b, cfg, pool, fsStore(b))
	start := time.Now()
	var cams []*synth.Camera
	var streams []*ingest.Stream
	for i := range n {
		id := fmt.Sprintf("bench-%02d", i)
		s := ingest.NewStream(ingest.StreamConfig{Camera: id}, nil, nil)
		c := synth.NewCamera(clip, start, false)
		c.Copy = true
		cams, streams = append(cams, c), append(streams, s)
		if err := rec.Record(Camera{ID: id, Facility: "bench", Stream: s}); err != nil {
			b.Fatal(err)
		}
	}
	waitFor(b, 10*time.Second, "pipelines", func() bool { return rec.Health().Recording == n })
	runtime.GC()
	idleHeap := heapLive()
	idleRSS := rss()
	for i, s := range streams {
		s.PublishEvent(&ingest.Event{Reason: ingest.ReasonDiscontinuity, Detail: "session started", At: start, Tracks: cams[i].Tracks})
	}
	// publish paces every camera in real time, frame by frame.
	frame := time.Second / synth.FPS
	tick := time.NewTicker(frame)
	defer tick.Stop()
	publish := func(d time.Duration) (peakHeap uint64) {
		until := time.Now().Add(d)
		for now := range tick.C {
			due := int64(now.Sub(start) / frame)
			for i, c := range cams {
				for c.Frame() <= due {
					streams[i].Publish(c.NextVideo())
				}
			}
			peakHeap = max(peakHeap, heapLive())
			if now.After(until) {
				return peakHeap
			}
		}
		return peakHeap
	}
	publish(12 * time.Second) // warm up: first rotations (staggered), pools, connections
	var ru0 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	t0 := time.Now()
	b.ResetTimer()
	peak := publish(time.Duration(b.N) * time.Second)
	b.StopTimer()
	wall := time.Since(t0)
	var ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := tv(ru1.Utime) - tv(ru0.Utime) + tv(ru1.Stime) - tv(ru0.Stime)
	rssGrowth := rss() - idleRSS
	h := rec.Health()
	var dropped uint64
	for _, s := range streams {
		dropped += s.Dropped()
	}
	cpuPct := 100 * cpu.Seconds() / wall.Seconds() / float64(n)
	heapMB := float64(peak-idleHeap) / float64(n) / (1 << 20)
	rssMB := float64(rssGrowth) / float64(n) / (1 << 20)
	b.ReportMetric(cpuPct, "cpu%/camera")
	b.ReportMetric(heapMB, "MB/camera(heap)")
	b.ReportMetric(rssMB, "MB/camera(rss)")
	b.Logf("%d cameras, %.0f s: %.3f%% of a core and %.2f MB heap (%.2f MB RSS) per camera; %d units dropped; backlog %d segments, journal %d, spool %d MB",
		n, wall.Seconds(), cpuPct, heapMB, rssMB, dropped, h.UploadBacklog, h.JournalBacklog, h.SpoolUsed>>20)
	if dropped > 0 {
		b.Errorf("the recorder fell behind: %d units dropped", dropped)
	}
	for _, s := range streams {
		s.Close()
	}
	rec.stop(b)
}

func tv(t syscall.Timeval) time.Duration {
	return time.Duration(t.Sec)*time.Second + time.Duration(t.Usec)*time.Microsecond
}

// heapLive is the live heap as of the last GC.
func heapLive() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// rss is the process's resident set in bytes (Linux).
func rss() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}
