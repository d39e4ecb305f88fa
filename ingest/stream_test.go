package ingest

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// A synthetic camera for stream tests: video units of a given size, a
// keyframe every gop units, and optionally an audio unit after each.
type synth struct {
	tracks *Tracks
	n      int
	gop    int
	size   int
}

func newSynth(gop, size int, audio bool) *synth {
	tr := &Tracks{Video: &Track{Codec: CodecH264, ClockRate: 90000, Width: 320, Height: 240}}
	if audio {
		tr.Audio = &Track{ID: 1, Codec: CodecAAC, ClockRate: 16000, SampleRate: 16000, Channels: 1}
	}
	return &synth{tracks: tr, gop: gop, size: size}
}

// video returns the next video unit (fresh bytes, as from a camera).
func (s *synth) video() *Unit {
	key := s.n%s.gop == 0
	b := make([]byte, s.size)
	b[0] = byte(s.n)
	u := &Unit{Track: s.tracks.Video, PTS: int64(s.n) * 3600, DTS: int64(s.n) * 3600, Key: key,
		NALUs: [][]byte{b}, Size: s.size, Received: time.Now()}
	s.n++
	return u
}

func (s *synth) audio() *Unit {
	p := make([]byte, 100)
	return &Unit{Track: s.tracks.Audio, PTS: int64(s.n) * 640, DTS: int64(s.n) * 640, Key: true, Payload: p, Size: len(p)}
}

func (s *synth) start(st *Stream) {
	st.PublishEvent(&Event{Reason: ReasonDiscontinuity, Detail: DetailSessionStarted, Tracks: s.tracks, At: time.Now()})
}

// drain returns everything queued in r.
func drain(r *Reader) []Item {
	var out []Item
	for {
		it, ok := r.TryRead()
		if !ok {
			return out
		}
		out = append(out, it)
	}
}

func unitsOf(items []Item) []*Unit {
	var out []*Unit
	for _, it := range items {
		if it.Unit != nil {
			out = append(out, it.Unit)
		}
	}
	return out
}

func TestStreamJoin(t *testing.T) {
	for _, tc := range []struct {
		name      string
		gopCache  int
		fromGOP   bool
		published int // units before the reader joins (gop 10)
		wantFirst int // index of the first unit the reader gets
		cached    int // how many of them come from the cache
	}{
		{"from cache", 1 << 20, true, 15, 10, 5},
		{"whole GOP cached", 1 << 20, true, 10, 0, 10},
		{"just after a keyframe", 1 << 20, true, 11, 10, 1},
		{"without FromGOP", 1 << 20, false, 15, 20, 0},
		{"cache disabled", 0, true, 15, 20, 0},
		{"GOP larger than cache", 3 * 1000, true, 15, 20, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := NewStream(StreamConfig{Camera: "c", GOPCacheBytes: tc.gopCache}, nil, nil)
			s := newSynth(10, 1000, false)
			s.start(st)
			for i := 0; i < tc.published; i++ {
				st.Publish(s.video())
			}
			r, err := st.AddReader(ReaderConfig{Kind: ReaderLive, Capacity: 64, FromGOP: tc.fromGOP})
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 25; i++ {
				st.Publish(s.video())
			}
			items := drain(r)
			if items[0].Event == nil || items[0].Event.Tracks != s.tracks {
				t.Fatalf("first item %+v, want the tracks event", items[0])
			}
			us := unitsOf(items)
			first := int(us[0].PTS / 3600)
			if first != tc.wantFirst || !us[0].Key {
				t.Fatalf("first unit %d (key %v), want %d", first, us[0].Key, tc.wantFirst)
			}
			cached := 0
			for i, it := range items[1:] {
				if it.Cached {
					cached++
				}
				if i > 0 && it.Unit.PTS != items[i].Unit.PTS+3600 {
					t.Fatalf("gap after unit %d", items[i].Unit.PTS/3600)
				}
			}
			if cached != tc.cached {
				t.Fatalf("%d cached units, want %d", cached, tc.cached)
			}
		})
	}
}

func TestStreamSkipToKeyframe(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	st := NewStream(StreamConfig{Camera: "c"}, m, nil)
	s := newSynth(10, 100, false)
	s.start(st)
	r, _ := st.AddReader(ReaderConfig{Kind: ReaderLive, Capacity: 8})
	st.Publish(s.video()) // key 0
	for i := 1; i < 8; i++ {
		st.Publish(s.video())
	}
	// The queue holds the event and units 0..6; unit 7 overflowed: the
	// queue is emptied (7 units lost), the event kept, and unit 7 (not a
	// keyframe) lost too.
	if got := r.Dropped(); got != 8 {
		t.Fatalf("dropped %d, want 8", got)
	}
	for i := 8; i < 12; i++ {
		st.Publish(s.video()) // 8, 9 lost (waiting for a keyframe), 10 key, 11
	}
	items := drain(r)
	if len(items) != 3 || items[0].Event == nil || items[1].Unit.PTS != 10*3600 || !items[1].Unit.Key || items[2].Unit.PTS != 11*3600 {
		t.Fatalf("after overflow: %+v", items)
	}
	if got := r.Dropped(); got != 10 {
		t.Fatalf("dropped %d, want 10", got)
	}
	if v := gathered(t, reg, "kuzet_ingest_reader_dropped_units_total", map[string]string{"camera": "c", "reader": "live"}); v != 10 {
		t.Fatalf("metric %v, want 10", v)
	}
	if st.Dropped() != 10 {
		t.Fatalf("stream dropped %d", st.Dropped())
	}
}

func TestStreamOverloadEvent(t *testing.T) {
	st := NewStream(StreamConfig{Camera: "c"}, nil, nil)
	s := newSynth(10, 100, false)
	s.start(st)
	r, _ := st.AddReader(ReaderConfig{Kind: ReaderRecorder, Capacity: 16, Policy: KeepQueueReportOverload})
	for i := 0; i < 30; i++ {
		st.Publish(s.video())
	}
	// Kept: event, units 0..14. Lost: 15..19 (queue full), then 20 (the
	// keyframe) fits only once the reader made room.
	if r.Len() != 16 {
		t.Fatalf("queue %d", r.Len())
	}
	items := drain(r)
	us := unitsOf(items)
	if us[0].PTS != 0 || us[len(us)-1].PTS != 14*3600 {
		t.Fatalf("kept units %d..%d", us[0].PTS/3600, us[len(us)-1].PTS/3600)
	}
	for i := 30; i < 32; i++ {
		st.Publish(s.video()) // 30 is a keyframe: overload event, then 30, 31
	}
	items = drain(r)
	if len(items) != 3 || items[0].Event == nil || items[0].Event.Reason != ReasonWriterOverload ||
		items[0].Event.Tracks != s.tracks || items[1].Unit.PTS != 30*3600 {
		t.Fatalf("after room: %+v", items)
	}
	if got := r.Dropped(); got != 15 { // 15..29
		t.Fatalf("dropped %d, want 15", got)
	}
}

// A keyframe after an event that finds the queue full is lost like any
// unit: counted, and reported to an overload reader.
func TestStreamKeyframeAfterEventOverflow(t *testing.T) {
	st := NewStream(StreamConfig{Camera: "c"}, nil, nil)
	s := newSynth(10, 100, false)
	s.start(st)
	r, _ := st.AddReader(ReaderConfig{Kind: ReaderRecorder, Capacity: 8, Policy: KeepQueueReportOverload})
	for i := 0; i < 7; i++ {
		st.Publish(s.video())
	}
	st.PublishEvent(&Event{Reason: ReasonDiscontinuity, Detail: DetailTimestampJump, Tracks: s.tracks})
	s.n = 10
	st.Publish(s.video()) // key 10: no room
	if r.Dropped() != 1 {
		t.Fatalf("dropped %d, want 1 (the keyframe)", r.Dropped())
	}
	drain(r)
	s.n = 20
	st.Publish(s.video())
	items := drain(r)
	if len(items) != 2 || items[0].Event == nil || items[0].Event.Reason != ReasonWriterOverload {
		t.Fatalf("items %+v, want the overload event before keyframe 20", items)
	}
}

// An event always finds room; for an overload reader the evicted units are
// reported.
func TestStreamEventEvicts(t *testing.T) {
	st := NewStream(StreamConfig{Camera: "c"}, nil, nil)
	s := newSynth(10, 100, false)
	s.start(st)
	r, _ := st.AddReader(ReaderConfig{Kind: ReaderRecorder, Capacity: 8, Policy: KeepQueueReportOverload})
	for i := 0; i < 7; i++ {
		st.Publish(s.video())
	}
	// The queue is full (tracks event + 7 units): the offline event evicts
	// the oldest item, the tracks event.
	off := &Event{Reason: ReasonCameraOffline, Detail: "eof"}
	st.PublishEvent(off)
	items := drain(r)
	if len(items) != 8 || items[0].Unit == nil || items[len(items)-1].Event != off {
		t.Fatalf("items %+v", items)
	}
	s.start(st)
	s.n = 10
	st.Publish(s.video())
	items = drain(r)
	if len(items) != 3 || items[1].Event == nil || items[1].Event.Reason != ReasonWriterOverload {
		t.Fatalf("items %+v, want the overload event before the keyframe", items)
	}
}

func TestStreamAudioOnly(t *testing.T) {
	st := NewStream(StreamConfig{Camera: "c", GOPCacheBytes: 1 << 20}, nil, nil)
	tr := &Tracks{Audio: &Track{Codec: CodecPCMU, ClockRate: 8000}}
	st.PublishEvent(&Event{Reason: ReasonDiscontinuity, Tracks: tr})
	r, _ := st.AddReader(ReaderConfig{Kind: ReaderRecorder, Capacity: 8})
	st.Publish(&Unit{Track: tr.Audio, Key: true, Payload: []byte{1}, Size: 1})
	if items := drain(r); len(items) != 2 || items[1].Unit == nil {
		t.Fatalf("audio-only stream: %+v", items)
	}
}

func TestStreamClose(t *testing.T) {
	st := NewStream(StreamConfig{Camera: "c"}, nil, nil)
	s := newSynth(10, 100, false)
	s.start(st)
	r, _ := st.AddReader(ReaderConfig{Kind: ReaderDetector, Capacity: 8})
	st.Publish(s.video())
	st.Close()
	st.Publish(s.video()) // no-op
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		if _, err := r.Read(ctx); err != nil {
			t.Fatalf("drain %d: %v", i, err)
		}
	}
	if _, err := r.Read(ctx); !errors.Is(err, ErrStreamClosed) {
		t.Fatalf("after drain: %v", err)
	}
	if _, err := st.AddReader(ReaderConfig{Kind: ReaderLive, Capacity: 8}); !errors.Is(err, ErrStreamClosed) {
		t.Fatalf("AddReader on closed stream: %v", err)
	}
	// A blocked Read wakes up on Close.
	st2 := NewStream(StreamConfig{Camera: "d"}, nil, nil)
	r2, _ := st2.AddReader(ReaderConfig{Kind: ReaderLive, Capacity: 8})
	done := make(chan error)
	go func() {
		_, err := r2.Read(ctx)
		done <- err
	}()
	time.Sleep(10 * time.Millisecond)
	r2.Close()
	if err := <-done; !errors.Is(err, ErrStreamClosed) {
		t.Fatalf("Read after Reader.Close: %v", err)
	}
	if st2.Readers() != 0 {
		t.Fatal("closed reader still attached")
	}
}

// A reader that never reads costs the others nothing: a second reader of
// the same camera gets every unit while the stuck ones drop, and Publish
// never waits for them (the test would hang).
func TestStreamStuckReaderDoesNotSlowOthers(t *testing.T) {
	run := func(stuckReaders bool) (perUnit, worst time.Duration, got int, live, stuck, stuckLive *Reader) {
		st := NewStream(StreamConfig{Camera: "c", GOPCacheBytes: 8 << 20}, nil, nil)
		s := newSynth(25, 1000, true)
		s.start(st)
		if stuckReaders {
			stuck, _ = st.AddReader(ReaderConfig{Kind: ReaderRecorder, Capacity: 1024, Policy: KeepQueueReportOverload})
			stuckLive, _ = st.AddReader(ReaderConfig{Kind: ReaderLive, Capacity: 128})
		}
		live, _ = st.AddReader(ReaderConfig{Kind: ReaderLive, Capacity: 128})
		const n = 20000
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				it, err := live.Read(context.Background())
				if err != nil {
					return
				}
				if it.Unit != nil && it.Unit.Track.Codec.IsVideo() {
					got++
					if d := time.Since(it.Unit.Received); d > worst {
						worst = d
					}
				}
			}
		}()
		var pub time.Duration
		for i := 0; i < n; i++ {
			t0 := time.Now()
			st.Publish(s.video())
			st.Publish(s.audio())
			pub += time.Since(t0)
			if i%10 == 9 {
				// A camera sends a few units at a time; the live reader
				// keeps up with it.
				for live.Len() > 0 {
					runtime.Gosched()
				}
			}
		}
		st.Close()
		wg.Wait()
		return pub / (2 * n), worst, got, live, stuck, stuckLive
	}
	basePer, baseWorst, _, _, _, _ := run(false)
	per, worst, got, live, stuck, stuckLive := run(true)
	t.Logf("Publish %v per unit with two stuck readers (%v without); live reader got %d of 20000 video units, dropped %d, worst delay %v (%v without); stuck readers dropped %d and %d",
		per, basePer, got, live.Dropped(), worst, baseWorst, stuck.Dropped(), stuckLive.Dropped())
	if got != 20000 || live.Dropped() != 0 {
		t.Fatalf("live reader got %d of 20000 video units, dropped %d", got, live.Dropped())
	}
	if stuck.Dropped() == 0 || stuckLive.Dropped() == 0 || stuck.Len() > 1024 || stuckLive.Len() > 128 {
		t.Fatal("stuck readers not bounded")
	}
}

// The media a stream holds is bounded by its configuration, whatever its
// readers do. Units are shared, so live viewers (which jump to the newest
// keyframe when full) all hold parts of the same recent window; a reader
// that keeps its queue holds an older window of its own. The ceiling is
// ReaderMaxBytes per keeping reader, plus ReaderMaxBytes for the recent
// window, plus the GOP cache, however many viewers there are.
func TestStreamMemoryCeiling(t *testing.T) {
	const (
		unitSize    = 64 << 10
		gopCache    = 8 << 20
		readerLimit = 16 << 20
		units       = 4000 // 250 MiB in all
	)
	st := NewStream(StreamConfig{Camera: "c", GOPCacheBytes: gopCache, ReaderMaxBytes: readerLimit}, nil, nil)
	s := newSynth(25, unitSize, false)
	s.start(st)
	// Readers that never read: a recorder that asks for far more than the
	// cap, and fifty live viewers.
	rec, _ := st.AddReader(ReaderConfig{Kind: ReaderRecorder, Capacity: 4096, MaxBytes: 1 << 30, Policy: KeepQueueReportOverload})
	var viewers []*Reader
	for i := 0; i < 50; i++ {
		v, _ := st.AddReader(ReaderConfig{Kind: ReaderLive, Capacity: 512, FromGOP: true})
		viewers = append(viewers, v)
	}
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	var peak uint64
	for i := 0; i < units; i++ {
		st.Publish(s.video())
		if i%250 == 249 {
			peak = max(peak, heap())
		}
	}
	after := heap()
	ceiling := uint64(2*readerLimit + gopCache + 1<<20)
	grow := func(h uint64) uint64 {
		if h < before {
			return 0
		}
		return h - before
	}
	t.Logf("published %d MiB through 51 stuck readers; heap %.1f MiB before, %.1f MiB peak, %.1f MiB after: growth %.1f MiB at peak, ceiling %.1f MiB (2 × reader cap %d MiB + GOP cache %d MiB + 1 MiB); recorder queue %d units, dropped %d",
		units*unitSize>>20, mib(before), mib(peak), mib(after), mib(grow(peak)), mib(ceiling),
		readerLimit>>20, gopCache>>20, rec.Len(), rec.Dropped())
	if grow(peak) > ceiling || grow(after) > ceiling {
		t.Fatalf("heap grew %.1f MiB (peak %.1f MiB), ceiling %.1f MiB", mib(grow(after)), mib(grow(peak)), mib(ceiling))
	}
	if rec.Dropped() == 0 {
		t.Fatal("the recorder queue was not bounded")
	}
	runtime.KeepAlive(viewers)
	st.Close()
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// gathered returns the value of the metric name with labels from reg, or -1
// when there is none.
func gathered(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			}
		}
	}
	return -1
}
