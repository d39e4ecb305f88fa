package segment

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/kuzet/kuzet/ingest"
)

// Config configures a Segmenter.
type Config struct {
	// SegmentDuration is the target segment length. Default 60s.
	SegmentDuration time.Duration
	// FragmentDuration is the longest fragment. Default 1s.
	FragmentDuration time.Duration
	// Phase shifts the camera's rotation grid (0 ≤ Phase < SegmentDuration).
	// See PhaseFor.
	Phase time.Duration
	// MaxSampleGap is the longest decode-time step between two video units
	// accepted within a run; a longer (or non-positive) step ends the run
	// with ErrDiscontinuity. Default 10s.
	MaxSampleGap time.Duration
}

func (c *Config) fill() {
	if c.SegmentDuration <= 0 {
		c.SegmentDuration = 60 * time.Second
	}
	if c.FragmentDuration <= 0 {
		c.FragmentDuration = time.Second
	}
	if c.MaxSampleGap <= 0 {
		c.MaxSampleGap = 10 * time.Second
	}
	c.Phase %= c.SegmentDuration
	if c.Phase < 0 {
		c.Phase += c.SegmentDuration
	}
}

// PhaseFor derives a camera's rotation phase from its id (FNV-1a), so that
// cameras started together rotate at different instants.
func PhaseFor(camera string, segment time.Duration) time.Duration {
	if segment <= 0 {
		return 0
	}
	h := uint64(14695981039346656037)
	for i := 0; i < len(camera); i++ {
		h ^= uint64(camera[i])
		h *= 1099511628211
	}
	return time.Duration(h % uint64(segment))
}

// Start describes a segment being opened.
type Start struct {
	Run, Seq uint64
	// Start is the segment's wall start time.
	Start time.Time
	// MediaStart is the decode time of its first video sample in 90 kHz
	// ticks from the start of the run.
	MediaStart int64
	Codec      string
	Width      int
	Height     int
	AudioCodec string
	InitSize   int
}

// Info describes a closed segment.
type Info struct {
	Start
	End           time.Time
	MediaDuration int64 // 90 kHz ticks
	Frames        int
	Bytes         int64
	SHA256        [sha256.Size]byte
	Fragments     []Fragment
}

// WallDuration is End - Start.
func (i *Info) WallDuration() time.Duration { return i.End.Sub(i.Start.Start) }

// Sink receives the segments of a Segmenter.
type Sink interface {
	// Open starts the file of a new segment; the segmenter writes the
	// whole file to the returned writer.
	Open(s Start) (io.Writer, error)
	// Reserve is called before n more bytes are written to the open
	// segment; an error refuses them: the segment is closed without them.
	Reserve(n int64) error
	// Fragment is called after a fragment was written; the sink flushes
	// its buffers and decides whether to sync.
	Fragment(f Fragment) error
	// Close ends the open segment. It is called for every Open that
	// succeeded, also after errors (with whatever was written).
	Close(info Info) error
}

// Errors of Push.
var (
	// ErrDiscontinuity: the unit's decode time does not continue the run.
	// The segment was closed before the unit; the caller starts a new run.
	ErrDiscontinuity = errors.New("segment: decode time discontinuity")
	// ErrSinkRefused wraps an error of Sink.Reserve: the segment was
	// closed without the refused fragment.
	ErrSinkRefused = errors.New("segment: sink refused data")
)

// Segmenter cuts one run of a camera into segments.
type Segmenter struct {
	cfg      Config
	tracks   *ingest.Tracks
	run      uint64
	seq      uint64
	sink     Sink
	init     []byte
	minStart time.Time
	end      time.Time // end of the latest closed segment

	heldV    *ingest.Unit
	lastVDur int64
	heldA    *ingest.Unit
	lastADur int64
	// audioQ holds audio samples until the video fragment they fall in
	// is written.
	audioQ []sample
	cur    *openSegment
}

type openSegment struct {
	w          *fileWriter
	start      Start
	firstDTS   int64
	firstWall  time.Time
	cutAt      time.Time
	frames     int   // video samples written
	aBase      int64 // audio decode time of the next fragment, audio ticks from segment start
	aStarted   bool
	frags      []Fragment
	video      []sample
	audio      []sample
	fragDur    int64
	fragStart  int64 // video decode time of the fragment, ticks from segment start
	lastWall   time.Time
	lastDur    int64
	failed     bool
	writtenEnd time.Time // wall end of the last fragment written
}

// NewSegmenter returns a segmenter for a run of tracks. Its first segment
// starts no earlier than minStart (the end of the camera's previous
// footage), so segments never overlap.
func NewSegmenter(cfg Config, tracks *ingest.Tracks, run uint64, minStart time.Time, sink Sink) (*Segmenter, error) {
	cfg.fill()
	init, err := InitSection(tracks)
	if err != nil {
		return nil, err
	}
	return &Segmenter{cfg: cfg, tracks: tracks, run: run, sink: sink, init: init, minStart: minStart}, nil
}

// Run returns the run number.
func (s *Segmenter) Run() uint64 { return s.run }

// End returns the end of the latest closed segment (zero before the first).
func (s *Segmenter) End() time.Time { return s.end }

// Open reports whether a segment is open.
func (s *Segmenter) Open() bool { return s.cur != nil }

// Push adds a unit of the run. Units of other tracks are ignored. The
// first video unit of the run must be a keyframe; earlier ones are dropped.
// On ErrDiscontinuity or ErrSinkRefused the open segment has been closed
// (Sink.Close called).
func (s *Segmenter) Push(u *ingest.Unit) error {
	switch {
	case s.tracks.Video != nil && u.Track == s.tracks.Video:
		return s.pushVideo(u)
	case s.tracks.Audio != nil && u.Track == s.tracks.Audio:
		s.pushAudio(u)
	}
	return nil
}

func (s *Segmenter) pushVideo(u *ingest.Unit) error {
	if s.heldV == nil {
		if s.cur == nil && !u.Key {
			return nil // wait for a keyframe
		}
		s.heldV = u
		return nil
	}
	dur := u.DTS - s.heldV.DTS
	if dur <= 0 || dur > int64(s.cfg.MaxSampleGap/(time.Second/VideoTimescale)) || dur > 1<<31 {
		err := s.Close()
		if err != nil {
			return err
		}
		return fmt.Errorf("%w: video decode time step %d ticks", ErrDiscontinuity, dur)
	}
	held := s.heldV
	s.heldV = u
	s.lastVDur = dur
	return s.addVideo(held, dur)
}

func (s *Segmenter) pushAudio(u *ingest.Unit) {
	if u.Track.Codec == ingest.CodecPCMU || u.Track.Codec == ingest.CodecPCMA {
		ch := max(u.Track.Channels, 1)
		s.addAudio(u, int64(len(u.Payload)/ch))
		return
	}
	if s.heldA != nil {
		dur := u.DTS - s.heldA.DTS
		if dur <= 0 || dur > int64(u.Track.ClockRate) {
			dur = s.audioDefaultDur()
		}
		s.lastADur = dur
		s.addAudio(s.heldA, dur)
	}
	s.heldA = u
}

func (s *Segmenter) audioDefaultDur() int64 {
	if s.lastADur > 0 {
		return s.lastADur
	}
	return 1024 // one AAC-LC frame
}

// wallOf returns the wall time of a video unit, never before the segment's
// start.
func unitWall(u *ingest.Unit) time.Time {
	if !u.Wall.IsZero() {
		return u.Wall
	}
	return u.Received
}

// ticksToDuration converts 90 kHz ticks to a duration, exactly to the
// nanosecond (rounded down).
func ticksToDuration(t int64) time.Duration {
	return time.Duration(t/VideoTimescale)*time.Second + time.Duration(t%VideoTimescale*int64(time.Second)/VideoTimescale)
}

func (s *Segmenter) addVideo(u *ingest.Unit, dur int64) error {
	if s.cur == nil {
		if !u.Key {
			return nil
		}
		start := unitWall(u)
		if !s.end.IsZero() && start.Before(s.end) {
			start = s.end
		}
		if start.Before(s.minStart) {
			start = s.minStart
		}
		if err := s.openSegment(u, start); err != nil {
			return err
		}
	} else if u.Key && s.due(u) {
		end := unitWall(u)
		if err := s.closeSegment(end, false); err != nil {
			return err
		}
		if err := s.openSegment(u, s.end); err != nil {
			return err
		}
	}
	c := s.cur
	if len(c.video) > 0 && (u.Key || c.fragDur+dur > s.fragTicks()) {
		if err := s.flushFragment(false); err != nil {
			return err
		}
		c = s.cur
		if c == nil {
			return nil // closed on a refused fragment; the unit is lost with it
		}
	}
	cto := u.PTS - u.DTS
	if cto > 1<<30 || cto < -(1<<30) {
		cto = 0
	}
	c.video = append(c.video, sample{u: u, dur: uint32(dur), cto: int32(cto)})
	c.fragDur += dur
	c.lastWall = unitWall(u)
	c.lastDur = dur
	return nil
}

func (s *Segmenter) fragTicks() int64 {
	return int64(s.cfg.FragmentDuration / (time.Second / VideoTimescale))
}

// due reports whether the segment should be cut at keyframe u.
func (s *Segmenter) due(u *ingest.Unit) bool {
	c := s.cur
	at := c.start.Start.Add(ticksToDuration(u.DTS - c.firstDTS))
	return !at.Before(c.cutAt)
}

func (s *Segmenter) addAudio(u *ingest.Unit, dur int64) {
	c := s.cur
	if c == nil || dur <= 0 || dur > 1<<31 {
		return // no video yet: audio starts with the run's first keyframe
	}
	at := u.DTS * VideoTimescale / int64(u.Track.ClockRate)
	if c.start.Seq == 0 && at < c.firstDTS && !c.aStarted {
		return // audio before the run's first video sample
	}
	s.audioQ = append(s.audioQ, sample{u: u, dur: uint32(dur), at: at})
}

// takeAudio moves the queued audio samples that start before the end of the
// video fragment being written (all of them when final) into it.
func (s *Segmenter) takeAudio(final bool) {
	c := s.cur
	end := c.firstDTS + c.fragStart + c.fragDur
	k := 0
	for k < len(s.audioQ) && (final || s.audioQ[k].at < end) {
		k++
	}
	if k == 0 {
		return
	}
	if !c.aStarted {
		u := s.audioQ[0].u
		// Audio decode time relative to the segment's first video sample.
		c.aBase = max(u.DTS-c.firstDTS*int64(u.Track.ClockRate)/VideoTimescale, 0)
		c.aStarted = true
	}
	c.audio = append(c.audio, s.audioQ[:k]...)
	n := copy(s.audioQ, s.audioQ[k:])
	clear(s.audioQ[n:])
	s.audioQ = s.audioQ[:n]
}

func (s *Segmenter) openSegment(u *ingest.Unit, start time.Time) error {
	st := Start{
		Run: s.run, Seq: s.seq, Start: start, MediaStart: max(u.DTS, 0),
		Codec: string(s.tracks.Video.Codec), Width: s.tracks.Video.Width, Height: s.tracks.Video.Height,
		AudioCodec: AudioCodecName(s.tracks), InitSize: len(s.init),
	}
	if err := s.sink.Reserve(int64(len(s.init))); err != nil {
		return fmt.Errorf("%w: %w", ErrSinkRefused, err)
	}
	w, err := s.sink.Open(st)
	if err != nil {
		return fmt.Errorf("segment: open %d-%d: %w", s.run, s.seq, err)
	}
	s.seq++
	fw, err := newFileWriter(w, s.init, s.tracks)
	c := &openSegment{w: fw, start: st, firstDTS: u.DTS, firstWall: start, writtenEnd: start}
	c.cutAt = s.nextCut(start)
	s.cur = c
	if err != nil {
		c.failed = true
		s.closeQuietly()
		return fmt.Errorf("segment: write init: %w", err)
	}
	return nil
}

// nextCut returns the first rotation boundary at least half a segment after
// start.
func (s *Segmenter) nextCut(start time.Time) time.Time {
	d := s.cfg.SegmentDuration
	earliest := start.Add(d / 2)
	// Boundaries are Phase + k·d since the Unix epoch.
	since := earliest.Sub(time.Unix(0, 0).Add(s.cfg.Phase))
	k := since / d
	b := time.Unix(0, 0).Add(s.cfg.Phase).Add(k * d)
	if b.Before(earliest) {
		b = b.Add(d)
	}
	return b
}

func (s *Segmenter) flushFragment(final bool) error {
	c := s.cur
	s.takeAudio(final)
	if len(c.video) == 0 && len(c.audio) == 0 {
		return nil
	}
	moof, mdat := c.w.fragmentSize(c.video, c.audio)
	if err := s.sink.Reserve(moof + mdat); err != nil {
		// Drop the fragment and close the segment at what was written.
		clear(c.video)
		clear(c.audio)
		c.video, c.audio = c.video[:0], c.audio[:0]
		s.closeQuietly()
		return fmt.Errorf("%w: %w", ErrSinkRefused, err)
	}
	off := c.w.hw.n
	if err := c.w.writeFragment(c.video, c.audio, uint64(c.fragStart), uint64(max(c.aBase, 0))); err != nil {
		c.failed = true
		s.closeQuietly()
		return fmt.Errorf("segment: write fragment: %w", err)
	}
	f := Fragment{Offset: off, Size: c.w.hw.n - off, Time: c.fragStart, Duration: c.fragDur}
	if len(c.video) > 0 {
		f.Key = c.video[0].u.Key
		last := c.video[len(c.video)-1]
		c.writtenEnd = unitWall(last.u).Add(ticksToDuration(int64(last.dur)))
	}
	c.frags = append(c.frags, f)
	c.frames += len(c.video)
	for i := range c.audio {
		c.aBase += int64(c.audio[i].dur)
	}
	c.fragStart += c.fragDur
	c.fragDur = 0
	clear(c.video)
	clear(c.audio)
	c.video, c.audio = c.video[:0], c.audio[:0]
	if err := s.sink.Fragment(f); err != nil {
		c.failed = true
		s.closeQuietly()
		return fmt.Errorf("segment: after fragment: %w", err)
	}
	return nil
}

// closeQuietly closes the open segment after an error, at the end of what
// was written. Queued audio is dropped with it.
func (s *Segmenter) closeQuietly() {
	c := s.cur
	clear(s.audioQ)
	s.audioQ = s.audioQ[:0]
	_ = s.finish(c.writtenEnd)
}

// closeSegment flushes and closes the open segment, ending it at end. The
// last fragment takes all queued audio when final (the run ends).
func (s *Segmenter) closeSegment(end time.Time, final bool) error {
	if err := s.flushFragment(final); err != nil {
		return err
	}
	return s.finish(end)
}

func (s *Segmenter) finish(end time.Time) error {
	c := s.cur
	s.cur = nil
	if !end.After(c.start.Start) {
		end = c.start.Start.Add(max(ticksToDuration(c.fragStart), time.Microsecond))
	}
	info := Info{
		Start: c.start, End: end, MediaDuration: c.fragStart, Frames: c.frames, Bytes: c.w.hw.n,
		Fragments: c.frags,
	}
	c.w.hw.h.Sum(info.SHA256[:0])
	s.end = end
	if err := s.sink.Close(info); err != nil {
		return fmt.Errorf("segment: close %d-%d: %w", c.start.Run, c.start.Seq, err)
	}
	if c.failed {
		return errors.New("segment: closed after a write error")
	}
	return nil
}

// Close ends the run's open segment, if any, including the held-back
// samples (their duration estimated from the previous ones). The
// segmenter can go on with later units of the same run (a new segment
// starts at the next keyframe).
func (s *Segmenter) Close() error {
	if s.cur == nil {
		s.heldV, s.heldA = nil, nil
		return nil
	}
	if s.heldA != nil {
		s.addAudio(s.heldA, s.audioDefaultDur())
		s.heldA = nil
	}
	if s.heldV != nil {
		dur := s.lastVDur
		if dur <= 0 {
			dur = VideoTimescale / 25
		}
		u := s.heldV
		s.heldV = nil
		if err := s.addVideo(u, dur); err != nil {
			return err
		}
		if s.cur == nil {
			return nil
		}
	}
	c := s.cur
	end := c.lastWall.Add(ticksToDuration(c.lastDur))
	return s.closeSegment(end, true)
}
