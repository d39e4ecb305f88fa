package viewer

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kuzet/kuzet/ingest"
	"github.com/kuzet/kuzet/internal/camsim"
	"github.com/kuzet/kuzet/internal/testenv"
)

// recorderCheck reads a camera's stream as the recorder does and checks
// that every frame arrives: the camera simulator numbers its frames in an
// SEI message, so a gap is a lost frame.
type recorderCheck struct {
	r *ingest.Reader

	mu     sync.Mutex
	units  uint64 // video units, with a mark or not
	frames uint64
	gaps   uint64
	last   uint64
	seen   bool
}

func (c *recorderCheck) run(ctx context.Context) {
	for {
		it, err := c.r.Read(ctx)
		if err != nil {
			return
		}
		if it.Unit == nil || !it.Unit.Track.Codec.IsVideo() {
			continue
		}
		m, ok := camsim.FindMark(string(it.Unit.Track.Codec), it.Unit.NALUs)
		c.mu.Lock()
		c.units++
		if !ok {
			c.mu.Unlock()
			continue
		}
		if c.seen && m.Frame != c.last+1 {
			c.gaps++
		}
		c.seen, c.last = true, m.Frame
		c.frames++
		c.mu.Unlock()
	}
}

func (c *recorderCheck) counts() (units, frames, gaps uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.units, c.frames, c.gaps
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func heapInuse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// BenchmarkLiveViewers watches one simulated camera (640x360, 25 fps) with
// N in-process WebRTC receivers while a recorder-kind reader checks that
// the recorder loses no frame. It reports, per viewer, the CPU and heap of
// the process (server and receiver together: both run here) and the time
// from offer to first frame.
//
//	go test -run '^$' -bench BenchmarkLiveViewers -benchtime 1x ./viewer
func BenchmarkLiveViewers(b *testing.B) {
	for _, n := range []int{1, 10, 50} {
		b.Run(fmt.Sprintf("viewers=%d", n), func(b *testing.B) {
			benchViewers(b, n)
		})
	}
}

func benchViewers(b *testing.B, n int) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sim, err := camsim.New(camsim.Config{Listen: "127.0.0.1:0", Cameras: 1, Clip: filepath.Join(testenv.RepoRoot(b), camsim.DefaultClip)}, testLogger(b))
	if err != nil {
		b.Fatal(err)
	}
	if err := sim.Start(); err != nil {
		b.Fatal(err)
	}
	defer sim.Close()
	mgr, err := ingest.NewManager(ingest.ManagerConfig{}, nil, testLogger(b))
	if err != nil {
		b.Fatal(err)
	}
	if err := mgr.Apply(ctx, []ingest.CameraConfig{{ID: "c1", Facility: "f16", URL: sim.URL(1), Enabled: true}}); err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = mgr.Run(ctx)
	}()
	stream, _ := mgr.Stream("c1")
	waitFor(b, 10*time.Second, "camera online", func() bool { return stream.Tracks() != nil })
	rec, err := stream.AddReader(ingest.ReaderConfig{Kind: ingest.ReaderRecorder, Capacity: 1024, Policy: ingest.KeepQueueReportOverload})
	if err != nil {
		b.Fatal(err)
	}
	check := &recorderCheck{r: rec}
	wg.Add(1)
	go func() {
		defer wg.Done()
		check.run(ctx)
	}()

	e := newLiveEnv(b, LiveConfig{MaxSessions: 2 * n})
	e.dir.add(LiveCamera{ID: "c1", Name: "c1", Facility: "f16"}, stream)
	api := viewerAPI(b, false)
	// Let the camera fill a GOP, so that viewers join mid-GOP.
	time.Sleep(time.Second)

	for b.Loop() {
		heap0, wall0 := heapInuse(), time.Now()
		viewers := make([]*testViewer, n)
		offers := make([]string, n)
		for i := range n {
			viewers[i], offers[i] = newTestViewer(b, api, false)
		}
		firsts := make([]time.Duration, n)
		errs := make([]error, n)
		var cwg sync.WaitGroup
		for i, v := range viewers {
			cwg.Add(1)
			go func() {
				defer cwg.Done()
				t0 := time.Now()
				if errs[i] = v.answer(e.srv.URL, "c1", "op16", offers[i]); errs[i] != nil {
					return
				}
				select {
				case <-v.gotFrame:
					v.mu.Lock()
					firsts[i] = v.firstFrame.Sub(t0)
					v.mu.Unlock()
				case <-time.After(20 * time.Second):
					errs[i] = errNoFrame
				}
			}()
		}
		cwg.Wait()
		setup := time.Since(wall0)
		for i, err := range errs {
			if err != nil {
				for _, v := range viewers {
					v.close()
				}
				b.Fatalf("viewer %d: %v", i, err)
			}
		}
		// Steady state, after the catch-up of the cached GOP: every
		// viewer receives the live camera.
		time.Sleep(time.Second)
		frames0 := make([]int, n)
		for i, v := range viewers {
			frames0[i] = len(v.snapshot())
		}
		cpu1, wall1 := cpuTime(), time.Now()
		time.Sleep(5 * time.Second)
		cpuSteady := cpuTime() - cpu1
		steady := time.Since(wall1)
		heap1 := heapInuse()
		minFrames := 1 << 30
		for i, v := range viewers {
			minFrames = min(minFrames, len(v.snapshot())-frames0[i])
		}
		for _, v := range viewers {
			v.close()
		}
		waitFor(b, 20*time.Second, "sessions to end", func() bool { return e.live.Sessions() == 0 })

		slices.Sort(firsts)
		p50, worst := firsts[n/2], firsts[n-1]
		perViewerCPU := float64(cpuSteady) / float64(steady) / float64(n) * 100
		perViewerHeap := (float64(heap1) - float64(heap0)) / float64(n) / 1024
		recUnits, recFrames, recGaps := check.counts()
		b.ReportMetric(float64(p50.Microseconds())/1000, "ms-first-frame-p50")
		b.ReportMetric(float64(worst.Microseconds())/1000, "ms-first-frame-max")
		b.ReportMetric(perViewerCPU, "%cpu/viewer")
		b.ReportMetric(perViewerHeap, "KiB-heap/viewer")
		b.ReportMetric(float64(minFrames)/steady.Seconds(), "min-viewer-fps")
		b.ReportMetric(float64(rec.Dropped()), "recorder-dropped")
		b.ReportMetric(float64(recGaps), "recorder-gaps")
		b.Logf("%d viewers: connected in %v; first frame p50 %v max %v; steady %.1f%% CPU per viewer (server+receiver), %.0f KiB heap per viewer; slowest viewer %.1f fps; recorder %d units, %d marked frames, %d gaps, %d dropped",
			n, setup.Round(time.Millisecond), p50.Round(time.Millisecond), worst.Round(time.Millisecond), perViewerCPU, perViewerHeap,
			float64(minFrames)/steady.Seconds(), recUnits, recFrames, recGaps, rec.Dropped())
		if recGaps != 0 || rec.Dropped() != 0 || recFrames != recUnits || recFrames < 100 {
			b.Errorf("the recorder lost frames with %d viewers: %d gaps, %d dropped", n, recGaps, rec.Dropped())
		}
		if float64(minFrames)/steady.Seconds() < 20 {
			b.Errorf("a viewer received only %.1f fps", float64(minFrames)/steady.Seconds())
		}
	}
}
