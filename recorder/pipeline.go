package recorder

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kuzet/kuzet/ingest"
	"github.com/kuzet/kuzet/recorder/index"
	"github.com/kuzet/kuzet/recorder/segment"
	"github.com/kuzet/kuzet/recorder/spool"
)

// Causes of a pipeline's end other than the recorder's shutdown.
var (
	errCameraStopped  = errors.New("camera no longer recorded")
	errStreamReplaced = errors.New("camera stream replaced")
)

// pipeline records one camera's stream: it reads the stream, feeds the
// segmenter, acts as its sink (spool files), hands closed segments to the
// camera's uploader and journals gap rows. One goroutine runs it.
type pipeline struct {
	r        *Recorder
	camera   string
	facility string
	stream   *ingest.Stream
	up       *uploader
	log      *slog.Logger

	st      spool.State
	stKnown bool
	tracks  *ingest.Tracks
	seg     *segment.Segmenter
	file    *spool.File
	meta    spool.Meta
	gap     *gapState
	// stopped is set while the camera is not recorded because the spool
	// refused data; recording resumes at a keyframe after resumeAt once
	// the spool has room.
	stopped  bool
	resumeAt time.Time
	// streamClosed is set when the pipeline ended because its stream was
	// closed.
	streamClosed bool

	recorded    prometheus.Counter
	dropKey     prometheus.Counter
	dropFull    prometheus.Counter
	dropNoVideo prometheus.Counter
}

// gapState is the camera's current gap. A journaled gap has its row (open)
// in the journal; a pending one (discontinuity, writer_overload) is
// journaled, closed, when the next segment starts, and only if it covers
// any time.
type gapState struct {
	reason, detail string
	start          time.Time
	journaled      bool
}

func newPipeline(r *Recorder, camera, facility string, stream *ingest.Stream) *pipeline {
	return &pipeline{
		r: r, camera: camera, facility: facility, stream: stream, up: r.cams[camera].up,
		log:         r.log.With("camera", camera),
		recorded:    r.m.recorded.WithLabelValues(camera),
		dropKey:     r.m.dropped.WithLabelValues(camera, "waiting_keyframe"),
		dropFull:    r.m.dropped.WithLabelValues(camera, "spool_full"),
		dropNoVideo: r.m.dropped.WithLabelValues(camera, "no_timeline"),
	}
}

func (p *pipeline) run(ctx context.Context) {
	p.init(ctx)
	rd, err := p.stream.AddReader(ingest.ReaderConfig{
		Kind: ingest.ReaderRecorder, Capacity: p.r.cfg.QueueCapacity, MaxBytes: p.r.cfg.QueueBytes,
		Policy: ingest.KeepQueueReportOverload, FromGOP: true,
	})
	if err != nil {
		p.streamClosed = true
		p.finish(index.ReasonDisabled, "stream closed")
		return
	}
	defer rd.Close()
	p.log.Info("recorder: recording", "facility", p.facility)
	tick := time.NewTicker(min(p.r.cfg.SyncInterval/2, 500*time.Millisecond))
	defer tick.Stop()
	// try is a context that is already done: Read with it never waits,
	// and still reports a closed stream.
	try, cancel := context.WithCancel(context.Background())
	cancel()
	for {
		select {
		case <-ctx.Done():
			p.shutdown(ctx)
			return
		case <-tick.C:
			p.tick()
		default:
		}
		n := 0
		for ; n < 256; n++ {
			it, err := rd.Read(try)
			if errors.Is(err, ingest.ErrStreamClosed) {
				p.streamClosed = true
				p.finish(index.ReasonDisabled, "stream closed")
				return
			}
			if err != nil {
				break
			}
			if it.Event != nil {
				p.onEvent(it.Event)
			} else if it.Unit != nil {
				p.onUnit(it.Unit)
			}
		}
		if n > 0 {
			continue
		}
		select {
		case <-ctx.Done():
			p.shutdown(ctx)
			return
		case <-tick.C:
			p.tick()
		case <-rd.Wait():
		}
	}
}

// init loads the camera's state: from recovery, the spool, or the index.
func (p *pipeline) init(ctx context.Context) {
	r := p.r
	if !p.stKnown {
		st, ok, err := r.spool.LoadState(p.camera)
		if err != nil {
			p.log.Error("recorder: camera state unreadable; using the index", "err", err)
		}
		if ok {
			p.st = st
		} else {
			qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			cs, err := r.ix.CameraState(qctx, p.camera)
			cancel()
			switch {
			case err != nil:
				// Unknown history: pick run numbers that cannot collide.
				p.log.Warn("recorder: camera history unknown (PostgreSQL unavailable)", "err", err)
				p.st.Run = uint64(r.now().Unix())
			case cs.HasRows:
				p.st.Cursor, p.st.Run = cs.LastEnd, cs.MaxRun
				if g := cs.OpenGap; g != nil {
					p.st.OpenGap, p.st.OpenGapStart = g.Reason, g.Start
					p.st.Cursor = maxTime(p.st.Cursor, g.Start)
				}
			}
		}
	}
	p.st.Camera, p.st.Facility = p.camera, p.facility
	switch {
	case p.st.OpenGap != "":
		p.gap = &gapState{reason: p.st.OpenGap, start: p.st.OpenGapStart, journaled: true}
	case !p.st.Cursor.IsZero():
		p.beginGap(index.ReasonRecorderDown, "not recorded", p.st.Cursor, true)
	}
	p.saveState()
}

func (p *pipeline) tick() {
	if p.file != nil {
		if err := p.file.SyncIfDue(p.r.now()); err != nil {
			p.r.m.errors.WithLabelValues(p.camera, "spool").Inc()
			p.log.Error("recorder: spool sync", "err", err)
		}
	}
}

// shutdown ends the pipeline for the reason its context gives.
func (p *pipeline) shutdown(ctx context.Context) {
	switch cause := context.Cause(ctx); {
	case errors.Is(cause, errCameraStopped):
		p.finish(index.ReasonDisabled, "recording stopped")
	case errors.Is(cause, errStreamReplaced):
		p.finish(index.ReasonDiscontinuity, "stream replaced")
	default:
		p.finish(index.ReasonRecorderDown, "recorder stopped")
	}
}

// finish closes the segment and leaves an open gap.
func (p *pipeline) finish(reason, detail string) {
	p.closeSegment()
	p.beginGap(reason, detail, p.r.now(), true)
	p.r.setSpoolFull(p.camera, false)
}

func (p *pipeline) onEvent(e *ingest.Event) {
	p.closeSegment()
	if e.Tracks != nil && e.Tracks.Video != nil {
		p.tracks = e.Tracks
		if p.gap == nil {
			reason := index.ReasonDiscontinuity
			if e.Reason == ingest.ReasonWriterOverload {
				reason = index.ReasonWriterOverload
				p.log.Warn("recorder: reader queue overflowed; segment closed", "detail", e.Detail)
			}
			p.beginGap(reason, e.Detail, p.r.now(), false)
		}
		return
	}
	p.tracks = nil
	reason, detail := index.ReasonCameraOffline, e.Detail
	switch {
	case e.Reason == ingest.ReasonDisabled:
		reason = index.ReasonDisabled
	case e.Tracks != nil:
		detail = "no video track"
	}
	at := e.At
	if at.IsZero() {
		at = p.r.now()
	}
	p.beginGap(reason, detail, at, true)
}

func (p *pipeline) onUnit(u *ingest.Unit) {
	if p.tracks == nil {
		p.dropNoVideo.Inc()
		return
	}
	video := u.Track == p.tracks.Video
	if p.stopped {
		if !video || !u.Key || !p.canResume() {
			p.dropFull.Inc()
			return
		}
		p.stopped = false
		p.r.setSpoolFull(p.camera, false)
		p.log.Info("recorder: spool has room again; recording resumes", "spool_bytes", p.r.spool.Used())
	}
	if p.seg == nil {
		if !video || !u.Key {
			p.dropKey.Inc()
			return
		}
		cfg := p.r.segs
		cfg.Phase = segment.PhaseFor(p.camera, cfg.SegmentDuration)
		seg, err := segment.NewSegmenter(cfg, p.tracks, p.st.Run+1, p.st.Cursor, p)
		if err != nil {
			p.r.m.errors.WithLabelValues(p.camera, "segment").Inc()
			p.log.Error("recorder: cannot record this stream", "tracks", p.tracks.Video.String(), "err", err)
			p.tracks = nil
			p.beginGap(index.ReasonDiscontinuity, "cannot record: "+err.Error(), p.r.now(), true)
			return
		}
		p.seg = seg
		p.st.Run = seg.Run()
	}
	err := p.seg.Push(u)
	switch {
	case err == nil:
	case errors.Is(err, segment.ErrDiscontinuity):
		p.seg = nil
		p.log.Warn("recorder: media time discontinuity; new run", "err", err)
		p.beginGap(index.ReasonDiscontinuity, err.Error(), p.r.now(), false)
		if u.Key && video {
			p.onUnit(u)
		}
	case errors.Is(err, spool.ErrFull):
		p.seg = nil
		p.stop(err)
	default:
		p.seg = nil
		p.stop(fmt.Errorf("spool write error: %w", err))
	}
}

// stop stops recording the camera after the spool refused data.
func (p *pipeline) stop(err error) {
	p.stopped = true
	p.resumeAt = p.r.now().Add(5 * time.Second)
	p.r.setSpoolFull(p.camera, true)
	p.r.m.spoolFull.WithLabelValues(p.camera).Inc()
	p.r.m.errors.WithLabelValues(p.camera, "spool").Inc()
	p.log.Error("recorder: spool refused footage; recording of the camera stops until it has room",
		"err", err, "spool_bytes", p.r.spool.Used(), "quota", p.r.spool.Quota())
	p.beginGap(index.ReasonSpoolFull, err.Error(), p.r.now(), true)
}

func (p *pipeline) canResume() bool {
	return !p.r.now().Before(p.resumeAt) &&
		float64(p.r.spool.Used()) < p.r.cfg.ResumeBelow*float64(p.r.spool.Quota())
}

func (p *pipeline) closeSegment() {
	if p.seg == nil {
		return
	}
	err := p.seg.Close()
	p.seg = nil
	switch {
	case err == nil:
	case errors.Is(err, spool.ErrFull):
		p.stop(err)
	default:
		p.r.m.errors.WithLabelValues(p.camera, "segment").Inc()
		p.log.Error("recorder: closing segment", "err", err)
	}
}

// beginGap makes reason the camera's current gap. A new gap starts at the
// end of the camera's footage (the cursor) when no gap is open, else at
// at, where the previous gap then ends. With journal it is recorded open
// at once; otherwise when the next segment starts.
func (p *pipeline) beginGap(reason, detail string, at time.Time, journal bool) {
	if g := p.gap; g != nil {
		if g.reason == reason {
			if journal && !g.journaled {
				p.journalGapOpen(g)
			}
			return
		}
		at = maxTime(at, g.start)
		p.endGap(at)
	} else if !p.st.Cursor.IsZero() {
		at = p.st.Cursor
	}
	g := &gapState{reason: reason, detail: detail, start: at}
	p.gap = g
	p.r.m.gaps.WithLabelValues(p.camera, reason).Inc()
	if journal {
		p.journalGapOpen(g)
	}
}

func (p *pipeline) journalGapOpen(g *gapState) {
	g.journaled = true
	p.journal(op{Kind: opGapOpen, Gap: &index.Gap{Camera: p.camera, Start: g.start, Reason: g.reason, Detail: g.detail}})
	p.st.OpenGap, p.st.OpenGapStart = g.reason, g.start
	p.saveState()
}

// endGap ends the current gap at at (the start of a segment, or of the
// next gap).
func (p *pipeline) endGap(at time.Time) {
	g := p.gap
	if g == nil {
		return
	}
	p.gap = nil
	switch {
	case g.journaled:
		p.journal(op{Kind: opGapClose, Camera: p.camera, Start: g.start, End: at})
	case at.After(g.start):
		p.journal(op{Kind: opGapOpen, Gap: &index.Gap{Camera: p.camera, Start: g.start, End: at, Reason: g.reason, Detail: g.detail}})
	}
	p.st.OpenGap, p.st.OpenGapStart = "", time.Time{}
	p.st.Cursor = maxTime(p.st.Cursor, at)
	p.saveState()
}

func (p *pipeline) journal(o op) {
	if err := p.r.journalOp(o); err != nil {
		p.r.m.errors.WithLabelValues(p.camera, "journal").Inc()
		p.log.Error("recorder: gap row could not be journaled", "kind", o.Kind, "err", err)
	}
}

func (p *pipeline) saveState() {
	if err := p.r.spool.SaveState(p.st); err != nil {
		p.r.m.errors.WithLabelValues(p.camera, "state").Inc()
		p.log.Error("recorder: saving camera state", "err", err)
	}
}

// Open implements segment.Sink: a new segment file in the spool. The
// camera's gap ends where the segment starts.
func (p *pipeline) Open(s segment.Start) (io.Writer, error) {
	p.meta = spool.Meta{
		Camera: p.camera, Facility: p.facility, Run: s.Run, Seq: s.Seq, Start: s.Start, MediaStart: s.MediaStart,
		Codec: s.Codec, Width: s.Width, Height: s.Height, AudioCodec: s.AudioCodec, InitSize: s.InitSize,
	}
	f, err := p.r.spool.Create(p.meta, p.r.now())
	if err != nil {
		return nil, err
	}
	p.file = f
	p.st.Run = max(p.st.Run, s.Run)
	if p.gap != nil {
		p.endGap(s.Start)
	} else {
		p.saveState()
	}
	return f, nil
}

// Reserve implements segment.Sink.
func (p *pipeline) Reserve(n int64) error {
	if err := p.r.spool.Reserve(n); err != nil {
		return err
	}
	p.up.open.Add(n)
	return nil
}

// Fragment implements segment.Sink: flush, and sync when due.
func (p *pipeline) Fragment(f segment.Fragment) error {
	p.recorded.Add(float64(f.Size))
	_, err := p.file.Flush(p.r.now())
	return err
}

// Close implements segment.Sink: the finished file goes to the uploader.
func (p *pipeline) Close(info segment.Info) error {
	m := p.meta
	m.End, m.MediaDuration, m.Frames, m.Bytes = info.End, info.MediaDuration, info.Frames, info.Bytes
	m.SHA256 = hex.EncodeToString(info.SHA256[:])
	m.Fragments = segment.EncodeIndex(info.Fragments)
	f := p.file
	p.file = nil
	e, err := f.Finish(m, p.r.now())
	// The file's bytes are the uploader's now (queued), or released.
	defer p.up.open.Store(0)
	if err != nil {
		p.r.m.errors.WithLabelValues(p.camera, "spool").Inc()
		return err
	}
	if e.Path != "" {
		p.up.enqueue(e)
		p.r.m.segments.WithLabelValues(p.camera, "recorded").Inc()
		p.st.Cursor = maxTime(p.st.Cursor, info.End)
	} else {
		p.st.Cursor = maxTime(p.st.Cursor, info.Start.Start)
	}
	p.saveState()
	return nil
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
