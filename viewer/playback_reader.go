package viewer

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// playFrame is one video frame to send: its capture time (wall), how long
// it lasts, and its NAL units (slices of the fragment's buffer).
type playFrame struct {
	wall  time.Time
	dur   time.Duration
	key   bool
	nalus [][]byte
}

// playItem is what a camera's fetcher hands its session, in time order:
// the frames of one fragment, a span without footage (with the recorder's
// reason), an error (a fragment skipped), or the end of the camera's
// footage in the window.
type playItem struct {
	frames []playFrame
	gap    *RecordedGap
	err    error
	end    bool
}

// Fetching parameters.
const (
	// playPage is the first span of the index asked for at once; an empty
	// span doubles the next one, up to playMaxPage.
	playPage    = 10 * time.Minute
	playMaxPage = 24 * time.Hour
	// playHole is the smallest hole between segments announced as a gap.
	playHole = 500 * time.Millisecond
)

// playFetcher reads one camera's footage from a position on, fragment by
// fragment, ahead of its session by at most the capacity of items.
type playFetcher struct {
	items  chan playItem
	cancel context.CancelFunc
	done   chan struct{}
}

// fetchConfig is what a fetcher reads and how.
type fetchConfig struct {
	recordings Recordings
	objects    ObjectReader
	camera     string
	from, to   time.Time
	// keyOnly, when set, makes the fetcher read only keyframe fragments
	// and hand on only their keyframe.
	keyOnly  *atomic.Bool
	prefetch int
	// notify is poked (without blocking) after each item.
	notify      chan<- struct{}
	maxFragment int64
	// read counts the bytes read from the store.
	read func(n int)
}

// startFetcher starts the goroutine that reads cfg.camera's footage from
// cfg.from (the keyframe at or before it) to cfg.to. stop ends it.
func startFetcher(ctx context.Context, cfg fetchConfig) *playFetcher {
	if cfg.read == nil {
		cfg.read = func(int) {}
	}
	ctx, cancel := context.WithCancel(ctx)
	f := &playFetcher{items: make(chan playItem, max(cfg.prefetch, 1)), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(f.done)
		fr := &fetchRun{cfg: cfg, out: f.items}
		err := fr.run(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			fr.emit(ctx, playItem{err: err})
		}
		fr.emit(ctx, playItem{end: true})
	}()
	return f
}

// stop ends the fetcher and waits for it.
func (f *playFetcher) stop() {
	f.cancel()
	<-f.done
}

// fetchRun is one fetcher's state.
type fetchRun struct {
	cfg     fetchConfig
	out     chan<- playItem
	init    *mp4Init
	initKey string
	scratch [][]byte
}

func (fr *fetchRun) emit(ctx context.Context, it playItem) bool {
	select {
	case fr.out <- it:
	case <-ctx.Done():
		return false
	}
	if fr.cfg.notify != nil {
		select {
		case fr.cfg.notify <- struct{}{}:
		default:
		}
	}
	return true
}

func (fr *fetchRun) run(ctx context.Context) error {
	cfg := fr.cfg
	pos, first := cfg.from, true
	var gapStart time.Time
	var gapReason, gapDetail string
	page := playPage
	closeGap := func(end time.Time) bool {
		if gapStart.IsZero() || !end.After(gapStart) {
			gapStart = time.Time{}
			return true
		}
		g := &RecordedGap{Start: gapStart, End: end, Reason: gapReason, Detail: gapDetail}
		if g.Reason == "" {
			g.Reason = "no_recording"
		}
		gapStart, gapReason, gapDetail = time.Time{}, "", ""
		return fr.emit(ctx, playItem{gap: g})
	}
	for pos.Before(cfg.to) {
		pageEnd := pos.Add(page)
		if pageEnd.After(cfg.to) {
			pageEnd = cfg.to
		}
		segs, err := cfg.recordings.RecordedSegments(ctx, cfg.camera, pos, pageEnd)
		if err != nil {
			return fmt.Errorf("recording index: %w", err)
		}
		gaps, err := cfg.recordings.RecordedGaps(ctx, cfg.camera, pos, pageEnd)
		if err != nil {
			return fmt.Errorf("recording index: %w", err)
		}
		noteGap := func(a, b time.Time) {
			if gapStart.IsZero() {
				gapStart = a
			}
			for _, g := range gaps {
				if gapReason == "" && g.End.After(a) && g.Start.Before(b) {
					gapReason, gapDetail = g.Reason, g.Detail
				}
			}
		}
		progressed := false
		for _, seg := range segs {
			if !seg.End.After(pos) || len(seg.Fragments) == 0 {
				continue
			}
			if err := seg.check(); err != nil {
				if !fr.emit(ctx, playItem{err: err}) {
					return nil
				}
				continue
			}
			if seg.Start.After(pos.Add(playHole)) {
				noteGap(pos, seg.Start)
			}
			if !closeGap(seg.Start) {
				return nil
			}
			start := 0
			if first || seg.Start.Before(pos) {
				start = seg.startFragment(pos)
			}
			first = false
			if start >= 0 {
				if ok, err := fr.segment(ctx, &seg, start); err != nil || !ok {
					return err
				}
			}
			pos, progressed = seg.End, true
			if !pos.Before(cfg.to) {
				return nil
			}
		}
		if !progressed {
			noteGap(pos, pageEnd)
			pos = pageEnd
			page = min(page*2, playMaxPage)
			continue
		}
		page = playPage
	}
	closeGap(cfg.to)
	return nil
}

// segment hands on the fragments of seg from index start; ok is false when
// the fetcher was stopped.
func (fr *fetchRun) segment(ctx context.Context, seg *RecordedSegment, start int) (ok bool, err error) {
	cfg := fr.cfg
	key := fmt.Sprintf("%d", seg.Run)
	if fr.init == nil || fr.initKey != key {
		raw, err := readRange(ctx, cfg.objects, seg.ObjectKey, 0, seg.InitSize)
		if err != nil {
			return fr.emit(ctx, playItem{err: fmt.Errorf("init section of %s: %w", seg.ObjectKey, err)}), nil
		}
		cfg.read(len(raw))
		in, err := parseInit(raw)
		if err != nil {
			return fr.emit(ctx, playItem{err: fmt.Errorf("segment %s: %w", seg.ObjectKey, err)}), nil
		}
		fr.init, fr.initKey = in, key
	}
	for i := start; i < len(seg.Fragments); i++ {
		f := seg.Fragments[i]
		if !seg.wallAt(f.Time).Before(cfg.to) {
			return true, nil
		}
		keyOnly := cfg.keyOnly != nil && cfg.keyOnly.Load()
		if keyOnly && !f.Key {
			continue
		}
		if f.Size > cfg.maxFragment {
			if !fr.emit(ctx, playItem{err: fmt.Errorf("segment %s: a fragment of %d bytes is larger than %d; skipped", seg.ObjectKey, f.Size, cfg.maxFragment)}) {
				return false, nil
			}
			continue
		}
		frames, err := fr.fragment(ctx, seg, f, keyOnly)
		if ctx.Err() != nil {
			return false, nil
		}
		it := playItem{frames: frames, err: err}
		if !fr.emit(ctx, it) {
			return false, nil
		}
	}
	return true, nil
}

// fragment reads one fragment and returns its video frames.
func (fr *fetchRun) fragment(ctx context.Context, seg *RecordedSegment, f SegmentFragment, keyOnly bool) ([]playFrame, error) {
	b, err := readRange(ctx, fr.cfg.objects, seg.ObjectKey, f.Offset, f.Size)
	if err != nil {
		return nil, err
	}
	fr.cfg.read(len(b))
	frag, err := parseFragment(b, f.Size)
	if err != nil {
		return nil, fmt.Errorf("segment %s at %d: %w", seg.ObjectKey, f.Offset, err)
	}
	v := frag.track(fr.init.videoID)
	if v == nil {
		return nil, nil
	}
	frames := make([]playFrame, 0, len(v.samples))
	for _, s := range v.samples {
		if keyOnly && (len(frames) > 0 || !s.key()) {
			break
		}
		nalus, err := splitAVCC(b[s.off:s.off+int64(s.size)], fr.scratch)
		if err != nil {
			return frames, fmt.Errorf("segment %s at %d: %w", seg.ObjectKey, f.Offset, err)
		}
		key := s.key()
		nalus = append([][]byte(nil), nalus...)
		if key {
			nalus = fr.withParams(nalus)
		}
		w := seg.wallAt(s.time)
		frames = append(frames, playFrame{wall: w, dur: seg.wallAt(s.time + int64(s.dur)).Sub(w), key: key, nalus: nalus})
	}
	return frames, nil
}

// withParams puts the init section's parameter sets in front of a
// keyframe that does not carry them, so that a decoder can start there.
func (fr *fetchRun) withParams(nalus [][]byte) [][]byte {
	in := fr.init
	for _, n := range nalus {
		if len(n) > 0 && bytes.Equal(n, in.sps) {
			return nalus
		}
	}
	var ps [][]byte
	for _, p := range [][]byte{in.vps, in.sps, in.pps} {
		if len(p) > 0 {
			ps = append(ps, p)
		}
	}
	return append(ps, nalus...)
}

// fetchGroup runs one fetcher per camera of a session and restarts them
// all at a new position.
type fetchGroup struct {
	mu       sync.Mutex
	fetchers []*playFetcher
}

func (g *fetchGroup) start(ctx context.Context, cfgs []fetchConfig) []*playFetcher {
	g.stop()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.fetchers = make([]*playFetcher, len(cfgs))
	for i, c := range cfgs {
		g.fetchers[i] = startFetcher(ctx, c)
	}
	return g.fetchers
}

func (g *fetchGroup) stop() {
	g.mu.Lock()
	fs := g.fetchers
	g.fetchers = nil
	g.mu.Unlock()
	for _, f := range fs {
		f.stop()
	}
}
