package recorder

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/kuzet/kuzet/ingest"
	"github.com/kuzet/kuzet/internal/testenv"
	"github.com/kuzet/kuzet/recorder/internal/synth"
	"github.com/kuzet/kuzet/recorder/procstat"
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
// heap above the idle recorder per camera; MB/camera (rss) the peak growth
// of the resident set (package procstat, shared with kuzet bench). Ingest's GOP cache is off: it belongs to ingest.
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
	meter := procstat.NewMeter()
	for i, s := range streams {
		s.PublishEvent(&ingest.Event{Reason: ingest.ReasonDiscontinuity, Detail: "session started", At: start, Tracks: cams[i].Tracks})
	}
	// publish paces every camera in real time, frame by frame.
	frame := time.Second / synth.FPS
	tick := time.NewTicker(frame)
	defer tick.Stop()
	publish := func(d time.Duration) {
		until := time.Now().Add(d)
		for now := range tick.C {
			due := int64(now.Sub(start) / frame)
			for i, c := range cams {
				for c.Frame() <= due {
					streams[i].Publish(c.NextVideo())
				}
			}
			meter.Poll()
			if now.After(until) {
				return
			}
		}
	}
	publish(12 * time.Second) // warm up: first rotations (staggered), pools, connections
	meter.Start()
	b.ResetTimer()
	publish(time.Duration(b.N) * time.Second)
	b.StopTimer()
	u := meter.Stop()
	h := rec.Health()
	var dropped uint64
	for _, s := range streams {
		dropped += s.Dropped()
	}
	cpuPct := u.CPUPercent(n)
	heapMB := u.HeapPer(n) / (1 << 20)
	rssMB := u.RSSPer(n) / (1 << 20)
	b.ReportMetric(cpuPct, "cpu%/camera")
	b.ReportMetric(heapMB, "MB/camera(heap)")
	b.ReportMetric(rssMB, "MB/camera(rss)")
	b.Logf("%d cameras, %.0f s: %.3f%% of a core and %.2f MB heap (%.2f MB RSS) per camera; %d units dropped; backlog %d segments, journal %d, spool %d MB",
		n, u.Wall.Seconds(), cpuPct, heapMB, rssMB, dropped, h.UploadBacklog, h.JournalBacklog, h.SpoolUsed>>20)
	if dropped > 0 {
		b.Errorf("the recorder fell behind: %d units dropped", dropped)
	}
	for _, s := range streams {
		s.Close()
	}
	rec.stop(b)
}
