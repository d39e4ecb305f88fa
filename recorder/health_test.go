package recorder

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kuzet/kuzet/recorder/internal/synth"
)

// offsetClock is the real clock plus an offset a test can advance.
type offsetClock struct{ off atomic.Int64 }

func (c *offsetClock) now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *offsetClock) advance(d time.Duration) { c.off.Add(int64(d)) }

// sample returns the value of the gauge, or the sample count of the
// histogram, named name with exactly these labels; ok is false when the
// series does not exist.
func sample(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) (v float64, ok bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue next
				}
			}
			switch {
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue(), true
			case m.GetHistogram() != nil:
				return float64(m.GetHistogram().GetSampleCount()), true
			}
		}
	}
	return 0, false
}

func TestRecordingLagAndUploadFailuresFollowTheStore(t *testing.T) {
	t.Parallel()
	pool := migratedPool(t)
	flaky := &flakyStore{ObjectStore: fsStore(t)}
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	clock := &offsetClock{}
	rec := startRecorderDeps(t, testConfig(t), Deps{Pool: pool, Store: flaky, Metrics: m, Now: clock.now})
	start := time.Now().Add(-time.Minute).Truncate(time.Second)
	f := newFeeder(t, "cam-l", start, false)
	if err := rec.Record(Camera{ID: "cam-l", Facility: "f16", Stream: f.stream}); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"camera": "cam-l", "facility": "f16"}
	waitFor(t, 5*time.Second, "the pipeline to attach", func() bool { return f.stream.Readers() == 1 })
	f.online()
	f.frames(10 * synth.FPS)
	waitFor(t, 10*time.Second, "the first segments to be uploaded and indexed", func() bool {
		h := rec.Health()
		n, _ := sample(t, reg, "kuzet_recorder_upload_seconds", labels)
		return n >= 1 && h.UploadBacklog == 0 && h.JournalBacklog == 0
	})
	if h := rec.Health(); h.RecordingLag != 0 || h.UploadFailures != 0 {
		t.Fatalf("store up, all indexed: lag %s, %d upload failures", h.RecordingLag, h.UploadFailures)
	}

	// Store down: closed segments (their footage ended about 40 s ago)
	// wait, each retry fails and counts.
	flaky.setDown(true)
	f.frames(25 * synth.FPS)
	waitFor(t, 10*time.Second, "failed uploads and a backlog", func() bool {
		h := rec.Health()
		return h.UploadFailures >= 2 && h.UploadBacklog >= 2
	})
	h1 := rec.Health()
	if h1.RecordingLag < 20*time.Second {
		t.Fatalf("lag %s with %d segments waiting since footage of %s", h1.RecordingLag, h1.UploadBacklog, start.Add(10*time.Second))
	}
	clock.advance(time.Minute)
	h2 := rec.Health()
	if d := h2.RecordingLag - h1.RecordingLag; d < time.Minute {
		t.Fatalf("lag grew by %s over a minute (%s → %s)", d, h1.RecordingLag, h2.RecordingLag)
	}
	waitFor(t, 10*time.Second, "retries to fail and count", func() bool { return rec.Health().UploadFailures > h2.UploadFailures })
	waitFor(t, 10*time.Second, "the per-camera gauges", func() bool {
		lag, ok1 := sample(t, reg, "kuzet_recorder_recording_lag_seconds", labels)
		spooled, ok2 := sample(t, reg, "kuzet_recorder_camera_spool_bytes", labels)
		return ok1 && ok2 && lag >= h2.RecordingLag.Seconds() && spooled >= float64(h2.UploadBacklogBytes)
	})

	// Store back: the backlog drains, the lag returns to 0, the count
	// stays.
	flaky.setDown(false)
	waitFor(t, 20*time.Second, "the backlog to drain", func() bool {
		h := rec.Health()
		return h.RecordingLag == 0 && h.UploadBacklog == 0 && h.JournalBacklog == 0
	})
	h3 := rec.Health()
	if h3.UploadFailures < h2.UploadFailures || !h3.StoreUp {
		t.Fatalf("after the outage: %d failures (had %d), store up %v", h3.UploadFailures, h2.UploadFailures, h3.StoreUp)
	}
	if n, _ := sample(t, reg, "kuzet_recorder_upload_seconds", labels); n < 4 {
		t.Fatalf("upload latency histogram has %v samples, want at least 4 segments", n)
	}

	// Stopped and drained: the camera's series go away.
	if !rec.Stop("cam-l") {
		t.Fatal("Stop: camera not recorded")
	}
	waitFor(t, 15*time.Second, "the camera's series to be removed", func() bool {
		for _, name := range []string{"kuzet_recorder_recording_lag_seconds", "kuzet_recorder_camera_spool_bytes", "kuzet_recorder_upload_seconds"} {
			if _, ok := sample(t, reg, name, labels); ok {
				return false
			}
		}
		return true
	})
}
