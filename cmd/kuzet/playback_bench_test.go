package main

import (
	"context"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kuzet/kuzet/internal/testenv"
	"github.com/kuzet/kuzet/recorder/store"
)

// BenchmarkExportHourFromMinIO exports one hour of a 1080p camera at
// about 4.3 Mbit/s (the 1920x1080 test clip, looped; 60 s segments written
// by the recorder's segment writer into a real MinIO and indexed) through
// the API, and reports how long the export took and the peak Go heap in
// use while it ran. Run it with -bench ExportHour -benchtime 1x.
func BenchmarkExportHourFromMinIO(b *testing.B) {
	ctx := context.Background()
	m := testenv.StartMinIO(b)
	st, err := store.NewS3(store.S3Config{Endpoint: m.Endpoint, Bucket: m.Bucket, AccessKey: m.AccessKey, SecretKey: m.SecretKey}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	pool, ix := newTestIndex(b)
	clip := loadTestClip(b, "h264_1920x1080.ts")
	epoch := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	start := time.Now()
	f := newFootage(ix, st, "f16-hd1", "f16", 1, clip, time.Minute, epoch)
	f.record(b, ctx, 0, 3600*footageFPS+50)
	segs, err := ix.Segments(ctx, "f16-hd1", epoch, epoch.Add(2*time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	var stored int64
	for _, s := range segs {
		stored += s.Bytes
	}
	b.Logf("recorded 1 h in %d segments, %.0f MB, %.1f Mbit/s, into MinIO in %v", len(segs), float64(stored)/1e6,
		float64(stored)*8/3600/1e6, time.Since(start).Round(time.Second))
	s := newFootageStack(b, pool, ix, st, stackOpts{cameras: cameraInputs([]stackCamera{{id: "f16-hd1"}})})
	body := map[string]any{"cameras": []string{"f16-hd1"}, "from": epoch, "to": epoch.Add(time.Hour), "reason": "benchmark"}
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peak atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		var ms runtime.MemStats
		for {
			select {
			case <-done:
				return
			case <-t.C:
				runtime.ReadMemStats(&ms)
				if ms.HeapInuse > peak.Load() {
					peak.Store(ms.HeapInuse)
				}
			}
		}
	}()
	b.ResetTimer()
	var j exportJob
	var took time.Duration
	for b.Loop() {
		t0 := time.Now()
		if code, body := s.do(b, "inv", "POST", "/api/v1/exports", body, &j); code != http.StatusAccepted {
			b.Fatalf("export: %d %s", code, body)
		}
		for j.State == "queued" || j.State == "running" {
			time.Sleep(20 * time.Millisecond)
			s.do(b, "inv", "GET", "/api/v1/exports/"+j.ID, nil, &j)
		}
		took = time.Since(t0)
		if j.State != "done" {
			b.Fatalf("export %+v", j)
		}
	}
	b.StopTimer()
	close(done)
	wg.Wait()
	heap := float64(peak.Load()) / (1 << 20)
	b.ReportMetric(took.Seconds(), "s/export")
	b.ReportMetric(float64(j.Size)/1e6/took.Seconds(), "MB/s")
	b.ReportMetric(heap, "peak-heap-MiB")
	b.Logf("export of 1 h (%d bytes): %v, %.0f MB/s; Go heap in use: %.1f MiB before, %.1f MiB at the peak",
		j.Size, took.Round(time.Millisecond), float64(j.Size)/1e6/took.Seconds(), float64(base.HeapInuse)/(1<<20), heap)
}
