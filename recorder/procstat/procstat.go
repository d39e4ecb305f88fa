package procstat

import (
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"
)

// Sample is a reading of the process's resource use.
type Sample struct {
	At time.Time
	// CPU is the user and system CPU time of the process since it
	// started (0 where getrusage is not available).
	CPU time.Duration
	// RSS is the resident set in bytes (0 where /proc is not available).
	RSS int64
	// HeapLive is the live heap in bytes as of the last GC.
	HeapLive uint64
}

// Read takes a sample now.
func Read() Sample {
	return Sample{At: time.Now(), CPU: cpuTime(), RSS: rss(), HeapLive: heapLive()}
}

// Meter measures one window of a load run: the CPU and wall time between
// Start and Stop, and the peaks of the resident set and live heap among
// the samples Poll takes, against a baseline taken when the load is idle.
type Meter struct {
	base, start Sample
	peakRSS     int64
	peakHeap    uint64
}

// NewMeter collects garbage and takes the baseline sample: call it with
// everything set up and idle.
func NewMeter() *Meter {
	runtime.GC()
	s := Read()
	return &Meter{base: s, start: s, peakRSS: s.RSS, peakHeap: s.HeapLive}
}

// Start begins the measured window; peaks count from here.
func (m *Meter) Start() {
	m.start = Read()
	m.peakRSS, m.peakHeap = m.start.RSS, m.start.HeapLive
}

// Poll samples memory and keeps the peaks. Call it often enough to see
// them (every few hundred milliseconds).
func (m *Meter) Poll() {
	m.peakRSS = max(m.peakRSS, rss())
	m.peakHeap = max(m.peakHeap, heapLive())
}

// Stop ends the window and returns what it measured.
func (m *Meter) Stop() Usage {
	m.Poll()
	end := Read()
	return Usage{
		Wall: end.At.Sub(m.start.At), CPU: end.CPU - m.start.CPU,
		BaseRSS: m.base.RSS, PeakRSS: m.peakRSS,
		BaseHeap: m.base.HeapLive, PeakHeap: m.peakHeap,
	}
}

// Usage is what a Meter measured.
type Usage struct {
	// Wall and CPU are the window's wall time and the process's CPU time
	// in it.
	Wall, CPU time.Duration
	// BaseRSS and BaseHeap are the idle baseline; PeakRSS and PeakHeap
	// the highest samples in the window.
	BaseRSS, PeakRSS   int64
	BaseHeap, PeakHeap uint64
}

// CPUPercent is the CPU time over wall time in percent of one core,
// divided among n (cameras, say).
func (u Usage) CPUPercent(n int) float64 {
	if u.Wall <= 0 || n <= 0 {
		return 0
	}
	return 100 * u.CPU.Seconds() / u.Wall.Seconds() / float64(n)
}

// HeapPer is the peak live heap above the baseline, in bytes, divided
// among n.
func (u Usage) HeapPer(n int) float64 {
	if n <= 0 || u.PeakHeap < u.BaseHeap {
		return 0
	}
	return float64(u.PeakHeap-u.BaseHeap) / float64(n)
}

// RSSPer is the peak resident set above the baseline, in bytes, divided
// among n.
func (u Usage) RSSPer(n int) float64 {
	if n <= 0 || u.PeakRSS < u.BaseRSS {
		return 0
	}
	return float64(u.PeakRSS-u.BaseRSS) / float64(n)
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
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0
	}
	return pages * int64(os.Getpagesize())
}
