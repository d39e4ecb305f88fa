package recorder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/kuzet/kuzet/recorder/index"
	"github.com/kuzet/kuzet/recorder/segment"
	"github.com/kuzet/kuzet/recorder/spool"
)

// recover brings the spool to a consistent state after a stop or crash,
// before anything records:
//
//   - a segment file that was being written is cut at its last complete
//     fragment and closed (its end is its start plus the media time it
//     holds), then queued for upload like closed ones;
//   - a file that holds no complete fragment or whose metadata is lost is
//     moved to damaged/ and reported (log, kuzet_recorder_segments_total
//     {outcome="damaged"}), never deleted;
//   - each camera's open gap left by a crash is closed at the last
//     heartbeat, and a recorder_down gap opened from there (or from the
//     end of its last footage); a clean shutdown already left one open.
//     The pipeline closes it at its first new segment.
func (r *Recorder) recover(ctx context.Context) error {
	entries, err := r.spool.Entries()
	if err != nil {
		return fmt.Errorf("recorder: recovery: %w", err)
	}
	byCam := map[string][]spool.Entry{}
	facility := map[string]string{}
	for _, e := range entries {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		cam := e.Meta.Camera
		switch {
		case e.Size < 0:
			// Metadata written, data file never created: nothing recorded.
			r.log.Warn("recorder: recovery: removing metadata of a segment that has no data", "file", e.MetaPath())
			if err := os.Remove(e.MetaPath()); err != nil {
				r.log.Error("recorder: recovery", "err", err)
			}
			continue
		case !e.Meta.Closed:
			if !r.finishPartial(&e) {
				continue
			}
		case e.Size != e.Meta.Bytes:
			r.quarantine(e, fmt.Errorf("file has %d bytes, its metadata says %d", e.Size, e.Meta.Bytes))
			continue
		}
		byCam[cam] = append(byCam[cam], e)
		facility[cam] = e.Meta.Facility
	}

	beat, err := r.spool.LastBeat()
	if err != nil {
		r.log.Error("recorder: recovery: heartbeat unreadable", "err", err)
	}
	states, err := r.spool.States()
	if err != nil {
		return fmt.Errorf("recorder: recovery: %w", err)
	}
	stateOf := map[string]spool.State{}
	for _, st := range states {
		stateOf[st.Camera] = st
	}
	for cam := range byCam {
		if _, ok := stateOf[cam]; !ok {
			stateOf[cam] = spool.State{Camera: cam, Facility: facility[cam]}
		}
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	for cam, st := range stateOf {
		for _, e := range byCam[cam] {
			st.Cursor = maxTime(st.Cursor, e.Meta.End)
			st.Run = max(st.Run, e.Meta.Run)
		}
		if st.Facility == "" {
			st.Facility = facility[cam]
		}
		switch {
		case st.OpenGap == index.ReasonRecorderDown:
			// A clean shutdown left it open; it ends at the next segment.
		case st.OpenGap != "":
			// Crashed while the camera was in a gap: it lasted at least
			// until the last heartbeat; the rest is the recorder's.
			end := maxTime(beat, st.OpenGapStart)
			if err := r.journalOp(op{Kind: opGapClose, Camera: cam, Start: st.OpenGapStart, End: end}); err != nil {
				return err
			}
			st.Cursor = maxTime(st.Cursor, end)
			if err := r.openDownGap(&st, end); err != nil {
				return err
			}
		case !st.Cursor.IsZero():
			if err := r.openDownGap(&st, st.Cursor); err != nil {
				return err
			}
		}
		if err := r.spool.SaveState(st); err != nil {
			return fmt.Errorf("recorder: recovery: %w", err)
		}
		c := r.cameraLocked(cam, st.Facility)
		c.state, c.hasState = st, true
		for _, e := range byCam[cam] {
			c.up.enqueue(e)
		}
		if n := len(byCam[cam]); n > 0 || st.OpenGap != "" {
			r.log.Info("recorder: recovered camera", "camera", cam, "segments_to_upload", n,
				"open_gap", st.OpenGap, "gap_start", st.OpenGapStart)
		}
	}
	// Segments uploaded before the stop whose rows still wait in the
	// journal lag until the applier has written them.
	for _, rec := range r.journal.Pending() {
		var o op
		if json.Unmarshal(rec.Data, &o) != nil || o.Kind != opSegment || o.Segment == nil ||
			!index.ValidCamera(o.Segment.Camera) {
			continue
		}
		r.cameraLocked(o.Segment.Camera, o.Segment.Facility).up.journaled(rec.Seq, o.Segment.End)
	}
	return nil
}

func (r *Recorder) openDownGap(st *spool.State, at time.Time) error {
	if err := r.journalOp(op{Kind: opGapOpen, Gap: &index.Gap{Camera: st.Camera, Start: at, Reason: index.ReasonRecorderDown, Detail: "recorder was down"}}); err != nil {
		return err
	}
	st.OpenGap, st.OpenGapStart = index.ReasonRecorderDown, at
	st.Cursor = maxTime(st.Cursor, at)
	r.m.gaps.WithLabelValues(st.Camera, index.ReasonRecorderDown).Inc()
	return nil
}

// finishPartial closes a segment file that was being written when the
// recorder stopped. It reports false when the file was quarantined.
func (r *Recorder) finishPartial(e *spool.Entry) bool {
	m := e.Meta
	if m.Start.IsZero() || !index.ValidFacility(m.Facility) || m.Codec == "" {
		r.quarantine(*e, errors.New("metadata lost"))
		return false
	}
	f, err := os.Open(e.Path)
	if err != nil {
		r.quarantine(*e, err)
		return false
	}
	res, err := segment.Scan(f, e.Size)
	f.Close()
	if err != nil {
		r.quarantine(*e, err)
		return false
	}
	if len(res.Fragments) == 0 || res.Frames == 0 {
		r.quarantine(*e, fmt.Errorf("no complete fragment (%s)", res.Stop))
		return false
	}
	cut := e.Size - res.Size
	if err := r.spool.Truncate(e, res.Size); err != nil {
		r.quarantine(*e, err)
		return false
	}
	sum, err := fileSHA256(e.Path, res.Size)
	if err != nil {
		r.quarantine(*e, err)
		return false
	}
	m.Closed, m.Recovered = true, true
	m.MediaDuration, m.Frames, m.Bytes = res.MediaDuration, res.Frames, res.Size
	m.End = m.Start.Add(time.Duration(res.MediaDuration) * time.Second / segment.VideoTimescale)
	m.SHA256 = hex.EncodeToString(sum[:])
	m.Fragments = segment.EncodeIndex(res.Fragments)
	m.InitSize = int(res.InitSize)
	e.Meta = m
	if err := r.spool.Rewrite(*e); err != nil {
		r.quarantine(*e, err)
		return false
	}
	r.m.segments.WithLabelValues(m.Camera, "recovered").Inc()
	r.log.Warn("recorder: recovered a segment interrupted by a stop", "camera", m.Camera, "file", e.Path,
		"start", m.Start, "end", m.End, "frames", m.Frames, "cut_bytes", cut, "why_cut", res.Stop)
	return true
}

func (r *Recorder) quarantine(e spool.Entry, why error) {
	r.m.segments.WithLabelValues(e.Meta.Camera, "damaged").Inc()
	r.m.errors.WithLabelValues(e.Meta.Camera, "spool").Inc()
	dst, err := r.spool.Quarantine(e)
	if err != nil {
		r.log.Error("recorder: recovery: unusable segment file could not be moved aside", "file", e.Path, "why", why, "err", err)
		return
	}
	r.log.Error("recorder: recovery: unusable segment file moved aside for inspection", "camera", e.Meta.Camera,
		"file", dst, "why", why)
}

func fileSHA256(path string, size int64) ([sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	f, err := os.Open(path)
	if err != nil {
		return sum, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(f, size))
	if err != nil {
		return sum, err
	}
	if n != size {
		return sum, fmt.Errorf("%s: read %d of %d bytes", path, n, size)
	}
	h.Sum(sum[:0])
	return sum, nil
}
