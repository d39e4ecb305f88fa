package viewer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"time"
)

// An MP4 of recorded footage is made by remuxing, never transcoding: the
// init section of the first segment, then the fragments of every segment
// in the range, each moof rewritten (sequence number, decode times on one
// timeline for the whole file) and each mdat copied byte for byte. The
// file starts at the keyframe at or before the range's start (so that it
// decodes) and ends with the last frame before the range's end: the last
// fragment is rebuilt without the samples at or after it.
//
// The layout is planned from the index before any media byte is read, so
// the file's size is known up front and any byte range of it can be
// produced on its own (HTTP Range requests); the same range always gives
// the same bytes. Planning reads only each run's init section and the moof
// of the one fragment that is cut. Writing reads each segment's fragments
// with one ranged read and holds one moof at a time in memory.
//
// Decode times run on in step with the recording; across a gap longer than
// a second they jump by the gap's length, so that a position in the file
// still maps to the wall clock. A change of the camera's stream parameters
// (a new init section) ends the file: mp4Plan.next says where the next one
// starts.

// mp4Plan is the layout of one MP4 file.
type mp4Plan struct {
	size   int64
	init   []byte
	info   *mp4Init
	pieces []mp4Piece
	segs   []RecordedSegment
	// first and last bound the wall time of the frames held: the start
	// of the first fragment and the end of the last sample.
	first, last time.Time
	// next is the start of the next file when this one ended at a change
	// of stream parameters; zero when it covers the whole range.
	next time.Time
}

// mp4Piece is one fragment of the file.
type mp4Piece struct {
	start, size int64
	seg         int // index in plan.segs
	objOff      int64
	objSize     int64
	seq         uint32
	// shift is added to the video decode times (90 kHz); other tracks get
	// it scaled to their timescale.
	shift int64
	// trim is the rebuilt fragment when it is cut short; nil otherwise.
	trim *mp4Trim
}

// mp4Trim is a fragment rebuilt with fewer samples: its new moof and mdat
// header, and the ranges of the original fragment's bytes that follow.
type mp4Trim struct {
	hdr    []byte
	ranges [][2]int64
	frames int
}

// gapJump is how far the wall clock may run ahead of the file's decode
// time before decode time jumps with it (a gap in the recording).
const gapJump = 90000 // ticks: one second

// planMP4 lays out the MP4 of one camera over [from, to) from its segments.
func planMP4(ctx context.Context, objects ObjectReader, segs []RecordedSegment, from, to time.Time) (*mp4Plan, error) {
	var use []RecordedSegment
	for _, s := range segs {
		if s.End.After(from) && s.Start.Before(to) && len(s.Fragments) > 0 {
			if err := s.check(); err != nil {
				return nil, err
			}
			use = append(use, s)
		}
	}
	sort.SliceStable(use, func(i, j int) bool { return use[i].Start.Before(use[j].Start) })
	p := &mp4Plan{}
	var (
		seq     uint32
		prevEnd int64 // end of the last fragment, file ticks
		run     uint64
		started bool
	)
	for _, seg := range use {
		first := 0
		if !started {
			first = seg.startFragment(from)
		} else {
			for first < len(seg.Fragments) && !seg.Fragments[first].Key {
				first++
			}
		}
		if first < 0 || first >= len(seg.Fragments) || !seg.wallAt(seg.Fragments[first].Time).Before(to) {
			continue
		}
		if !started || seg.Run != run {
			raw, err := readRange(ctx, objects, seg.ObjectKey, 0, seg.InitSize)
			if err != nil {
				return nil, fmt.Errorf("init section: %w", err)
			}
			if started && !bytes.Equal(raw, p.init) {
				p.next = seg.Start
				break
			}
			if !started {
				if p.info, err = parseInit(raw); err != nil {
					return nil, fmt.Errorf("segment %s: %w", seg.ObjectKey, err)
				}
				p.init = raw
			}
			run = seg.Run
		}
		shift := -seg.Fragments[first].Time
		if started {
			wall := int64(math.Round(seg.wallAt(seg.Fragments[first].Time).Sub(p.first).Seconds() * 90000))
			base := prevEnd
			if wall-prevEnd > gapJump {
				base = wall
			}
			shift = base - seg.Fragments[first].Time
		} else {
			p.first = seg.wallAt(seg.Fragments[first].Time)
		}
		started = true
		p.segs = append(p.segs, seg)
		si := len(p.segs) - 1
		for i := first; i < len(seg.Fragments); i++ {
			f := seg.Fragments[i]
			if !seg.wallAt(f.Time).Before(to) {
				break
			}
			seq++
			pc := mp4Piece{seg: si, objOff: f.Offset, objSize: f.Size, seq: seq, shift: shift, size: f.Size}
			end := f.Time + f.Duration
			if seg.wallAt(end).After(to) {
				tr, last, err := planTrim(ctx, objects, &seg, f, p.info, seq, shift, to)
				if err != nil {
					return nil, err
				}
				pc.trim, end = tr, last
				pc.size = int64(len(tr.hdr))
				for _, r := range tr.ranges {
					pc.size += r[1] - r[0]
				}
			}
			pc.start = p.size
			p.size += pc.size
			p.pieces = append(p.pieces, pc)
			p.last = seg.wallAt(end)
			prevEnd = shift + end
		}
	}
	if len(p.pieces) == 0 {
		return nil, errNoFootage
	}
	for i := range p.pieces {
		p.pieces[i].start += int64(len(p.init))
	}
	p.size += int64(len(p.init))
	return p, nil
}

// planTrim rebuilds fragment f of seg without the samples at or after
// wall time to; it returns the rebuilt fragment and the end of its last
// video sample (segment ticks).
func planTrim(ctx context.Context, objects ObjectReader, seg *RecordedSegment, f SegmentFragment, info *mp4Init, seq uint32, shift int64, to time.Time) (*mp4Trim, int64, error) {
	head, err := readRange(ctx, objects, seg.ObjectKey, f.Offset, min(f.Size, 16))
	if err != nil {
		return nil, 0, err
	}
	ms, err := moofSize(head)
	if err != nil {
		return nil, 0, fmt.Errorf("segment %s at %d: %w", seg.ObjectKey, f.Offset, err)
	}
	b, err := readRange(ctx, objects, seg.ObjectKey, f.Offset, min(f.Size, ms+16))
	if err != nil {
		return nil, 0, err
	}
	fr, err := parseFragment(b, f.Size)
	if err != nil {
		return nil, 0, fmt.Errorf("segment %s at %d: %w", seg.ObjectKey, f.Offset, err)
	}
	cut := seg.ticksAt(to)
	end, frames := f.Time, 0
	keep := func(track uint32, s mp4Sample) bool {
		if track == info.videoID {
			return s.time < cut
		}
		ts := info.timescales[track]
		return ts > 0 && float64(s.time)*90000/float64(ts) < float64(cut)
	}
	if v := fr.track(info.videoID); v != nil {
		for _, s := range v.samples {
			if s.time < cut {
				end, frames = s.time+int64(s.dur), frames+1
			}
		}
	}
	hdr, ranges, err := buildFragment(fr, seq, trackShift(info, shift), keep)
	if err != nil {
		return nil, 0, err
	}
	return &mp4Trim{hdr: hdr, ranges: ranges, frames: frames}, end, nil
}

// trackShift scales a video decode-time shift to every track's timescale.
func trackShift(info *mp4Init, shift int64) func(uint32) int64 {
	return func(track uint32) int64 {
		ts := info.timescales[track]
		if track == info.videoID || ts == 0 {
			return shift
		}
		return int64(math.Round(float64(shift) * float64(ts) / 90000))
	}
}

// etag names the plan's bytes: the same segments and cuts give the same
// file.
func (p *mp4Plan) etag() string {
	h := sha256.New()
	h.Write(p.init)
	var b [8]byte
	for _, s := range p.segs {
		h.Write(s.SHA256[:])
	}
	for _, pc := range p.pieces {
		binary.BigEndian.PutUint64(b[:], uint64(pc.size))
		h.Write(b[:])
		binary.BigEndian.PutUint64(b[:], uint64(pc.shift))
		h.Write(b[:])
	}
	return `"` + hex.EncodeToString(h.Sum(nil)[:16]) + `"`
}

// mp4Stats is what writing a whole file counted.
type mp4Stats struct {
	frames int
}

// errWindowFull ends writing once the range asked for is written.
var errWindowFull = errors.New("range written")

// windowWriter passes on bytes [skip, skip+left) of what is written to it.
type windowWriter struct {
	w          io.Writer
	skip, left int64
}

func (ww *windowWriter) Write(p []byte) (int, error) {
	n := len(p)
	if ww.skip > 0 {
		k := min(ww.skip, int64(len(p)))
		ww.skip -= k
		p = p[k:]
	}
	if len(p) > 0 {
		k := min(ww.left, int64(len(p)))
		if _, err := ww.w.Write(p[:k]); err != nil {
			return 0, err
		}
		ww.left -= k
	}
	if ww.left == 0 {
		return n, errWindowFull
	}
	return n, nil
}

// writeRange writes bytes [off, off+n) of the file to w.
func (p *mp4Plan) writeRange(ctx context.Context, objects ObjectReader, w io.Writer, off, n int64) (mp4Stats, error) {
	var st mp4Stats
	if off < 0 || n < 0 || off+n > p.size {
		return st, fmt.Errorf("range [%d, %d) outside the file of %d bytes", off, off+n, p.size)
	}
	if n == 0 {
		return st, nil
	}
	err := p.write(ctx, objects, w, off, n, &st)
	if errors.Is(err, errWindowFull) {
		err = nil
	}
	return st, err
}

func (p *mp4Plan) write(ctx context.Context, objects ObjectReader, w io.Writer, off, n int64, st *mp4Stats) error {
	if off < int64(len(p.init)) {
		ww := &windowWriter{w: w, skip: off, left: n}
		if _, err := ww.Write(p.init); err != nil {
			return err
		}
		n -= int64(len(p.init)) - off
		off = int64(len(p.init))
	}
	i := sort.Search(len(p.pieces), func(i int) bool { return p.pieces[i].start+p.pieces[i].size > off })
	var buf []byte
	for i < len(p.pieces) && n > 0 {
		// One ranged read for the run of this segment's pieces.
		j := i
		for j+1 < len(p.pieces) && p.pieces[j+1].seg == p.pieces[i].seg {
			j++
		}
		first, last := p.pieces[i], p.pieces[j]
		seg := &p.segs[first.seg]
		rc, err := objects.GetRange(ctx, seg.ObjectKey, first.objOff, last.objOff+last.objSize-first.objOff)
		if err != nil {
			return fmt.Errorf("segment %s: %w", seg.ObjectKey, err)
		}
		ww := &windowWriter{w: w, skip: off - first.start, left: n}
		before := ww.left
		for k := i; k <= j; k++ {
			buf, err = p.writePiece(rc, ww, &p.pieces[k], buf, st)
			if err != nil {
				break
			}
		}
		rc.Close()
		if err != nil {
			if !errors.Is(err, errWindowFull) {
				err = fmt.Errorf("segment %s: %w", seg.ObjectKey, err)
			}
			return err
		}
		n -= before - ww.left
		off = last.start + last.size
		i = j + 1
	}
	return nil
}

// writePiece reads one fragment from r and writes it, rewritten, to w.
func (p *mp4Plan) writePiece(r io.Reader, w io.Writer, pc *mp4Piece, buf []byte, st *mp4Stats) ([]byte, error) {
	buf = append(buf[:0], make([]byte, 16)...)
	if _, err := io.ReadFull(r, buf[:8]); err != nil {
		return buf, err
	}
	if binary.BigEndian.Uint32(buf) == 1 {
		if _, err := io.ReadFull(r, buf[8:16]); err != nil {
			return buf, err
		}
	} else {
		buf = buf[:8]
	}
	ms, err := moofSize(buf)
	if err != nil {
		return buf, err
	}
	if ms+16 > pc.objSize {
		return buf, fmp4Errorf("fragment of %d bytes with a moof of %d", pc.objSize, ms)
	}
	// The moof and the mdat's header (8 bytes, or 16 for a large one).
	have := int64(len(buf))
	buf = append(buf, make([]byte, ms+8-have)...)
	if _, err := io.ReadFull(r, buf[have:]); err != nil {
		return buf, err
	}
	if binary.BigEndian.Uint32(buf[ms:]) == 1 {
		buf = append(buf, make([]byte, 8)...)
		if _, err := io.ReadFull(r, buf[ms+8:]); err != nil {
			return buf, err
		}
	}
	fr, err := parseFragment(buf, pc.objSize)
	if err != nil {
		return buf, err
	}
	pos := int64(len(buf))
	if pc.trim == nil {
		if err := patchFragment(buf, fr, pc.seq, trackShift(p.info, pc.shift)); err != nil {
			return buf, err
		}
		if v := fr.track(p.info.videoID); v != nil {
			st.frames += len(v.samples)
		}
		if _, err := w.Write(buf); err != nil {
			return buf, err
		}
		_, err := io.CopyN(w, r, pc.objSize-pos)
		return buf, err
	}
	st.frames += pc.trim.frames
	if _, err := w.Write(pc.trim.hdr); err != nil {
		return buf, err
	}
	for _, rg := range pc.trim.ranges {
		if rg[0] < pos {
			return buf, fmp4Errorf("trimmed fragment out of order")
		}
		if _, err := io.CopyN(io.Discard, r, rg[0]-pos); err != nil {
			return buf, err
		}
		if _, err := io.CopyN(w, r, rg[1]-rg[0]); err != nil {
			return buf, err
		}
		pos = rg[1]
	}
	_, err = io.CopyN(io.Discard, r, pc.objSize-pos)
	return buf, err
}

// planReader reads a plan's bytes as an io.ReadSeeker (for
// http.ServeContent): a read streams from where the last one ended, through
// one goroutine that writes the plan from the current position into a
// pipe; a seek elsewhere stops it. Close stops it for good.
type planReader struct {
	ctx     context.Context
	plan    *mp4Plan
	objects ObjectReader
	pos     int64
	pr      *io.PipeReader
	done    chan struct{}
}

func newPlanReader(ctx context.Context, plan *mp4Plan, objects ObjectReader) *planReader {
	return &planReader{ctx: ctx, plan: plan, objects: objects}
}

func (r *planReader) Seek(offset int64, whence int) (int64, error) {
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = r.pos + offset
	case io.SeekEnd:
		abs = r.plan.size + offset
	default:
		return 0, errors.New("bad whence")
	}
	if abs < 0 {
		return 0, errors.New("negative position")
	}
	if abs != r.pos {
		r.stop()
		r.pos = abs
	}
	return abs, nil
}

func (r *planReader) Read(p []byte) (int, error) {
	if r.pos >= r.plan.size {
		return 0, io.EOF
	}
	if r.pr == nil {
		pr, pw := io.Pipe()
		r.pr, r.done = pr, make(chan struct{})
		from := r.pos
		go func() {
			defer close(r.done)
			_, err := r.plan.writeRange(r.ctx, r.objects, pw, from, r.plan.size-from)
			pw.CloseWithError(err)
		}()
	}
	n, err := r.pr.Read(p)
	r.pos += int64(n)
	if errors.Is(err, io.EOF) && r.pos < r.plan.size {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (r *planReader) stop() {
	if r.pr != nil {
		r.pr.CloseWithError(errors.New("reader moved"))
		<-r.done
		r.pr = nil
	}
}

// Close stops the writing goroutine, if any.
func (r *planReader) Close() error {
	r.stop()
	return nil
}
