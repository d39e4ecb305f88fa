package procstat

import (
	"crypto/sha256"
	"runtime"
	"testing"
	"time"
)

func TestMeterSeesCPUAndHeap(t *testing.T) {
	m := NewMeter()
	m.Start()
	// Burn some CPU and hold some heap.
	var keep [][]byte
	buf := make([]byte, 64<<10)
	deadline := time.Now().Add(200 * time.Millisecond)
	for time.Now().Before(deadline) {
		sha256.Sum256(buf)
	}
	for range 64 {
		keep = append(keep, make([]byte, 256<<10))
	}
	runtime.GC()
	m.Poll()
	u := m.Stop()
	runtime.KeepAlive(keep)
	if u.Wall < 200*time.Millisecond {
		t.Fatalf("wall %s", u.Wall)
	}
	if runtime.GOOS == "linux" {
		if u.CPU < 50*time.Millisecond || u.CPUPercent(1) <= 0 {
			t.Fatalf("cpu %s (%.1f%%) for a 200 ms busy loop", u.CPU, u.CPUPercent(1))
		}
		if u.PeakRSS <= 0 || u.RSSPer(1) < 0 {
			t.Fatalf("rss base %d peak %d", u.BaseRSS, u.PeakRSS)
		}
	}
	if got := u.HeapPer(2); got < 7<<20 {
		t.Fatalf("heap growth per half %.0f bytes, want about 8 MiB (16 MiB held)", got)
	}
	if (Usage{}).CPUPercent(3) != 0 || (Usage{Wall: time.Second}).HeapPer(0) != 0 {
		t.Fatal("zero usage not zero")
	}
}
