package ingest

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// ErrStreamClosed is returned by Reader.Read once the stream is closed and the
// reader's queue is drained, and by AddReader on a closed stream.
var ErrStreamClosed = errors.New("stream closed")

// StreamConfig configures a Stream.
type StreamConfig struct {
	// Camera is the camera id, used in metrics and logs. Required.
	Camera string
	// GOPCacheBytes bounds the cache of the latest GOP (video and audio units
	// since the last keyframe). A GOP larger than this is not cached: readers
	// joining then wait for the next keyframe. 0 disables the cache.
	// Default (from cmd): 8 MiB.
	GOPCacheBytes int
	// ReaderMaxBytes caps every reader's ReaderConfig.MaxBytes, so that the
	// media a stream holds stays under a ceiling whatever its readers ask
	// for. 0 means no cap beyond each reader's own bound.
	ReaderMaxBytes int
}

// Stream is the fan-out hub of one camera: the source publishes units and
// events into it, and any number of readers take them out, each from its own
// bounded queue.
//
// Concurrency: Publish and PublishEvent are called by one goroutine (the
// camera's source) and never block on readers: a reader whose queue is full
// loses units according to its DropPolicy, and every lost unit is counted.
// AddReader, Reader.Read and Reader.Close may be called from any goroutine.
type Stream struct {
	camera      string
	gopLimit    int
	readerLimit int
	metrics     *Metrics
	log         *slog.Logger

	// dropped counts the units lost by all readers, past and present.
	dropped atomic.Uint64

	mu      sync.Mutex
	readers []*Reader
	closed  bool
	// state as a joining reader must see it first
	tracks *Tracks
	last   *Event // the latest event (tracks or offline)
	// gop holds the units since the latest video keyframe while gopValid.
	gop      []*Unit
	gopBytes int
	gopValid bool
}

// NewStream returns an empty stream. metrics may be nil (no metrics); log may
// be nil (discard).
func NewStream(cfg StreamConfig, metrics *Metrics, log *slog.Logger) *Stream {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Stream{
		camera:      cfg.Camera,
		gopLimit:    cfg.GOPCacheBytes,
		readerLimit: cfg.ReaderMaxBytes,
		metrics:     metrics,
		log:         log.With("camera", cfg.Camera),
	}
}

// Dropped returns how many units the readers of the stream have lost to full
// queues since the stream was created, including readers since closed.
func (s *Stream) Dropped() uint64 { return s.dropped.Load() }

// Readers returns the number of attached readers.
func (s *Stream) Readers() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.readers)
}

// Camera returns the camera id of the stream.
func (s *Stream) Camera() string { return s.camera }

// Tracks returns the tracks of the current session, or nil when the camera
// is not online.
func (s *Stream) Tracks() *Tracks {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tracks
}

// PublishEvent delivers e to every reader, in order with the units. An event
// with Tracks starts a new timeline (and empties the GOP cache); an event
// without Tracks says the camera went offline.
func (s *Stream) PublishEvent(e *Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.tracks = e.Tracks
	s.last = e
	s.clearGOP()
	for _, r := range s.readers {
		r.pushEvent(e)
	}
}

// Publish delivers u to every reader and to the GOP cache. It never blocks.
func (s *Stream) Publish(u *Unit) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.cacheGOP(u)
	for _, r := range s.readers {
		r.push(u)
	}
}

func (s *Stream) cacheGOP(u *Unit) {
	if s.gopLimit <= 0 {
		return
	}
	if u.Key && u.Track.Codec.IsVideo() {
		clear(s.gop)
		s.gop, s.gopBytes, s.gopValid = s.gop[:0], 0, true
	}
	if !s.gopValid {
		return
	}
	if s.gopBytes+u.Size > s.gopLimit {
		s.clearGOP()
		if s.metrics != nil {
			s.metrics.gopOverflow.WithLabelValues(s.camera).Inc()
		}
		return
	}
	s.gop = append(s.gop, u)
	s.gopBytes += u.Size
}

// startsGOP reports whether a reader may start at u: a video keyframe, or
// any unit of a stream without video.
func (s *Stream) startsGOP(u *Unit) bool {
	if u.Track.Codec.IsVideo() {
		return u.Key
	}
	return s.tracks == nil || s.tracks.Video == nil
}

func (s *Stream) clearGOP() {
	clear(s.gop)
	s.gop, s.gopBytes, s.gopValid = s.gop[:0], 0, false
	if cap(s.gop) > 1024 {
		s.gop = nil // do not keep a huge backing array after a pathological GOP
	}
}

// Close ends the stream: readers drain their queues and then get
// ErrStreamClosed. Publishing after Close is a no-op.
func (s *Stream) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	s.clearGOP()
	for _, r := range s.readers {
		r.closeFromStream()
	}
	s.readers = nil
}

// ReaderKind names the kind of a reader, for metrics and logs.
type ReaderKind string

// Reader kinds.
const (
	ReaderRecorder ReaderKind = "recorder"
	ReaderLive     ReaderKind = "live"
	ReaderDetector ReaderKind = "detector"
)

// DropPolicy says what a reader loses when its queue is full.
type DropPolicy int

const (
	// SkipToKeyframe empties the queue and resumes at the next video
	// keyframe: the reader jumps to live. For live viewers.
	SkipToKeyframe DropPolicy = iota
	// KeepQueueReportOverload keeps what is queued, drops new units until a
	// video keyframe finds room, and puts an Event with reason
	// writer_overload before that keyframe. For the recorder.
	KeepQueueReportOverload
)

// ReaderConfig configures a reader's queue.
type ReaderConfig struct {
	// Kind of reader. Required.
	Kind ReaderKind
	// Capacity is the queue length in items. Required, at least 8.
	Capacity int
	// MaxBytes bounds the media bytes queued. 0 means Capacity × 1 MiB.
	// The stream's ReaderMaxBytes, when set, caps it.
	MaxBytes int
	// Policy applied when the queue is full.
	Policy DropPolicy
	// FromGOP starts the reader with the cached GOP, so its first unit is a
	// keyframe at once. Without it the reader starts at the next keyframe.
	FromGOP bool
}

// AddReader attaches a new reader. The first item it reads is an Event with
// the current tracks (or the offline event), then, with FromGOP, the cached
// GOP marked Cached, then live units starting at a keyframe.
func (s *Stream) AddReader(cfg ReaderConfig) (*Reader, error) {
	if cfg.Capacity < 8 {
		cfg.Capacity = 8
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = cfg.Capacity << 20
	}
	if s.readerLimit > 0 && cfg.MaxBytes > s.readerLimit {
		cfg.MaxBytes = s.readerLimit
	}
	r := &Reader{
		s:        s,
		kind:     cfg.Kind,
		policy:   cfg.Policy,
		maxBytes: cfg.MaxBytes,
		ring:     make([]Item, cfg.Capacity),
		notify:   make(chan struct{}, 1),
		waitKey:  true,
	}
	if s.metrics != nil {
		r.dropped = s.metrics.readerDropped.WithLabelValues(s.camera, string(cfg.Kind))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrStreamClosed
	}
	if s.last != nil {
		r.pushEvent(s.last)
	}
	if cfg.FromGOP && s.gopValid && len(s.gop) > 0 && len(s.gop)+1 < cfg.Capacity && s.gopBytes <= cfg.MaxBytes {
		r.waitKey = false
		for _, u := range s.gop {
			r.enqueue(Item{Unit: u, Cached: true})
		}
	}
	s.readers = append(s.readers, r)
	return r, nil
}

// Reader is one consumer's view of a Stream: a bounded queue of Items.
// One goroutine reads a Reader.
type Reader struct {
	s        *Stream
	kind     ReaderKind
	policy   DropPolicy
	maxBytes int
	dropped  counter

	mu       sync.Mutex
	ring     []Item
	head, n  int
	bytes    int
	waitKey  bool // waiting for the next video keyframe
	skipping bool // waitKey because of an overflow: what is skipped is lost
	overload bool // an overload event is owed before the next unit
	closed   bool
	drops    uint64
	lastLog  time.Time
	notify   chan struct{}
}

// counter is the one method of a Prometheus counter the hot path uses.
type counter interface{ Inc() }

// push offers u to the reader's queue; called with the stream lock held.
func (r *Reader) push(u *Unit) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	if r.waitKey {
		if !r.s.startsGOP(u) {
			if r.skipping {
				r.drop()
			}
			return
		}
		if !r.fits(u, 2) {
			// A keyframe that finds no room is lost like any other unit:
			// counted, and reported to an overload reader.
			r.overflow(u)
			return
		}
		r.waitKey, r.skipping = false, false
		if r.overload {
			r.overload = false
			r.enqueue(Item{Event: &Event{Reason: ReasonWriterOverload, Detail: string(r.kind) + " queue overflow", At: u.Received, Tracks: r.s.tracks}})
		}
	}
	if !r.fits(u, 1) {
		r.overflow(u)
		return
	}
	r.enqueue(Item{Unit: u})
}

// overflow applies the drop policy to u, which found the queue full.
func (r *Reader) overflow(u *Unit) {
	r.waitKey, r.skipping = true, true
	switch r.policy {
	case SkipToKeyframe:
		// Jump to live: what is queued is too old to show. The latest
		// queued event still describes the units that follow, so it is
		// kept.
		var last *Event
		for r.n > 0 {
			it := r.pop()
			if it.Unit != nil {
				r.drop()
			} else {
				last = it.Event
			}
		}
		if last != nil {
			r.enqueue(Item{Event: last})
		}
		if r.s.startsGOP(u) && r.fits(u, 1) {
			r.waitKey, r.skipping = false, false
			r.enqueue(Item{Unit: u})
		} else {
			r.drop()
		}
	case KeepQueueReportOverload:
		// Keep the queued footage; what follows is lost until a keyframe
		// finds room, and the reader is told before that keyframe.
		r.overload = true
		r.drop()
	}
	r.logDrop()
}

// pushEvent queues e; an event always finds room (it replaces the oldest
// units when the queue is full, since a new timeline makes them moot for a
// live reader and the recorder is told through the overload event).
func (r *Reader) pushEvent(e *Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	for r.n >= len(r.ring) {
		// Evicting an event loses information too: an overload reader is
		// told, whatever the evicted item was.
		if r.ring[r.head].Unit != nil {
			r.drop()
		}
		r.overload = r.overload || r.policy == KeepQueueReportOverload
		r.pop()
	}
	// After an event the next unit must be a keyframe of the new timeline;
	// the units skipped until then are not lost to the queue.
	r.waitKey, r.skipping = true, false
	r.enqueue(Item{Event: e})
}

func (r *Reader) fits(u *Unit, slots int) bool {
	return r.n+slots <= len(r.ring) && r.bytes+u.Size <= r.maxBytes
}

func (r *Reader) enqueue(it Item) {
	r.ring[(r.head+r.n)%len(r.ring)] = it
	r.n++
	if it.Unit != nil {
		r.bytes += it.Unit.Size
	}
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

func (r *Reader) pop() Item {
	it := r.ring[r.head]
	r.ring[r.head] = Item{}
	r.head = (r.head + 1) % len(r.ring)
	r.n--
	if it.Unit != nil {
		r.bytes -= it.Unit.Size
	}
	return it
}

func (r *Reader) drop() {
	r.drops++
	r.s.dropped.Add(1)
	if r.dropped != nil {
		r.dropped.Inc()
	}
}

// logDrop logs an overflow at most once every 10 s per reader.
func (r *Reader) logDrop() {
	now := time.Now()
	if now.Sub(r.lastLog) < 10*time.Second {
		return
	}
	r.lastLog = now
	r.s.log.Warn("reader queue overflow, dropping to next keyframe",
		"reader", r.kind, "dropped_total", r.drops)
}

// Read returns the next item, waiting until one is queued, the stream is
// closed (ErrStreamClosed once drained), the reader is closed, or ctx ends.
func (r *Reader) Read(ctx context.Context) (Item, error) {
	for {
		r.mu.Lock()
		if r.n > 0 {
			it := r.pop()
			r.mu.Unlock()
			return it, nil
		}
		closed := r.closed
		r.mu.Unlock()
		if closed {
			return Item{}, ErrStreamClosed
		}
		select {
		case <-r.notify:
		case <-ctx.Done():
			return Item{}, ctx.Err()
		}
	}
}

// TryRead returns the next item without waiting; ok is false when the queue
// is empty.
func (r *Reader) TryRead() (it Item, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == 0 {
		return Item{}, false
	}
	return r.pop(), true
}

// Wait returns a channel that receives when items may be available.
func (r *Reader) Wait() <-chan struct{} { return r.notify }

// Len returns the number of queued items.
func (r *Reader) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

// Dropped returns how many units this reader has lost.
func (r *Reader) Dropped() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.drops
}

// Close detaches the reader from its stream and frees its queue.
func (r *Reader) Close() {
	s := r.s
	s.mu.Lock()
	for i, x := range s.readers {
		if x == r {
			s.readers = append(s.readers[:i], s.readers[i+1:]...)
			break
		}
	}
	s.mu.Unlock()
	r.closeFromStream()
	r.mu.Lock()
	clear(r.ring)
	r.n, r.bytes = 0, 0
	r.mu.Unlock()
}

func (r *Reader) closeFromStream() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
}
