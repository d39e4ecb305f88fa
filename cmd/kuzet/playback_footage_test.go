package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kuzet/kuzet/ingest"
	"github.com/kuzet/kuzet/internal/camsim"
	"github.com/kuzet/kuzet/internal/migrate"
	"github.com/kuzet/kuzet/internal/testenv"
	"github.com/kuzet/kuzet/recorder/index"
	"github.com/kuzet/kuzet/recorder/segment"
	"github.com/kuzet/kuzet/recorder/store"
)

// Synthetic footage, recorded exactly as the recorder records: real H.264
// access units of a test clip (looped), each carrying the camera
// simulator's SEI mark with its frame number and capture time, pushed
// through segment.Segmenter; every closed segment is stored with its
// SHA-256 and indexed with its fragment index, chained like the
// recorder's. Frames are captured at 25 fps from an epoch, faster than
// real time.

// testClip is a decoded H.264 clip.
type testClip struct {
	sps, pps []byte
	width    int
	height   int
	aus      [][][]byte // NAL units without AUDs
	keys     []bool
}

func loadTestClip(t testing.TB, name string) *testClip {
	t.Helper()
	f, err := os.Open(filepath.Join(testenv.RepoRoot(t), "testdata", "clips", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := &mpegts.Reader{R: bufio.NewReader(f)}
	if err := r.Initialize(); err != nil {
		t.Fatal(err)
	}
	c := &testClip{}
	for _, tr := range r.Tracks() {
		if _, ok := tr.Codec.(*mpegts.CodecH264); !ok {
			continue
		}
		r.OnDataH264(tr, func(_, _ int64, au [][]byte) error {
			var out [][]byte
			for _, n := range au {
				if len(n) == 0 {
					continue
				}
				switch h264.NALUType(n[0] & 0x1f) {
				case h264.NALUTypeAccessUnitDelimiter:
					continue
				case h264.NALUTypeSPS:
					c.sps = bytes.Clone(n)
				case h264.NALUTypePPS:
					c.pps = bytes.Clone(n)
				}
				out = append(out, bytes.Clone(n))
			}
			c.aus = append(c.aus, out)
			c.keys = append(c.keys, h264.IsRandomAccess(out))
			return nil
		})
		break
	}
	for {
		if err := r.Read(); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatal(err)
		}
	}
	var sps h264.SPS
	if err := sps.Unmarshal(c.sps); err != nil {
		t.Fatal(err)
	}
	c.width, c.height = sps.Width(), sps.Height()
	return c
}

const footageFPS = 25

// frameAt is the capture time of frame n from epoch.
func frameAt(epoch time.Time, n int64) time.Time {
	return epoch.Add(time.Duration(n) * time.Second / footageFPS)
}

// footage writes one camera's synthetic recordings.
type footage struct {
	ix       *index.Index
	st       store.Store
	camera   string
	facility string
	camNo    uint32
	clip     *testClip
	segDur   time.Duration
	epoch    time.Time
	track    *ingest.Track
	run      uint64
}

func newFootage(ix *index.Index, st store.Store, camera, facility string, camNo uint32, clip *testClip, segDur time.Duration, epoch time.Time) *footage {
	return &footage{ix: ix, st: st, camera: camera, facility: facility, camNo: camNo, clip: clip, segDur: segDur, epoch: epoch,
		track: &ingest.Track{Codec: ingest.CodecH264, ClockRate: 90000, SPS: clip.sps, PPS: clip.pps, Width: clip.width, Height: clip.height}}
}

// unit is frame n: the clip's access unit (looped; parameter sets in front
// of keyframes) with the simulator's mark SEI before the picture.
func (f *footage) unit(n int64) *ingest.Unit {
	i := int(n % int64(len(f.clip.aus)))
	key := f.clip.keys[i]
	wall := frameAt(f.epoch, n)
	mark := camsim.AppendMarkSEI(nil, camsim.CodecH264, camsim.Mark{Camera: f.camNo, Frame: uint64(n), Capture: wall})
	var nalus [][]byte
	hasParams := false
	for _, x := range f.clip.aus[i] {
		if t := h264.NALUType(x[0] & 0x1f); t == h264.NALUTypeSPS {
			hasParams = true
		}
	}
	if key && !hasParams {
		nalus = append(nalus, f.clip.sps, f.clip.pps)
	}
	marked := false
	size := 0
	for _, x := range f.clip.aus[i] {
		if t := h264.NALUType(x[0] & 0x1f); !marked && t >= 1 && t <= 5 {
			nalus = append(nalus, mark)
			marked = true
		}
		nalus = append(nalus, x)
	}
	for _, x := range nalus {
		size += len(x)
	}
	ts := n * 90000 / footageFPS
	return &ingest.Unit{Track: f.track, PTS: ts, DTS: ts, Wall: wall, Received: wall, Key: key, NALUs: nalus, Size: size}
}

// record writes frames [n0, n1) as one run; the run starts at the first
// keyframe at or after n0.
func (f *footage) record(t testing.TB, ctx context.Context, n0, n1 int64) {
	t.Helper()
	f.run++
	sink := &footageSink{f: f, ctx: ctx, t: t}
	seg, err := segment.NewSegmenter(segment.Config{SegmentDuration: f.segDur, Phase: segment.PhaseFor(f.camera, f.segDur)},
		&ingest.Tracks{Video: f.track}, f.run, time.Time{}, sink)
	if err != nil {
		t.Fatal(err)
	}
	for n := n0; n < n1; n++ {
		if err := seg.Push(f.unit(n)); err != nil {
			t.Fatal(err)
		}
	}
	if err := seg.Close(); err != nil {
		t.Fatal(err)
	}
}

// gap indexes a gap from frame n0 to frame n1.
func (f *footage) gap(t testing.TB, ctx context.Context, n0, n1 int64, reason string) {
	t.Helper()
	if err := f.ix.OpenGap(ctx, index.Gap{Camera: f.camera, Start: frameAt(f.epoch, n0), End: frameAt(f.epoch, n1), Reason: reason, Detail: "test"}); err != nil {
		t.Fatal(err)
	}
}

// footageSink stores and indexes each segment when it closes.
type footageSink struct {
	f     *footage
	ctx   context.Context
	t     testing.TB
	buf   bytes.Buffer
	start segment.Start
}

func (s *footageSink) Open(st segment.Start) (io.Writer, error) {
	s.buf.Reset()
	s.start = st
	return &s.buf, nil
}

func (s *footageSink) Reserve(int64) error             { return nil }
func (s *footageSink) Fragment(segment.Fragment) error { return nil }

func (s *footageSink) Close(info segment.Info) error {
	f := s.f
	key, err := store.SegmentKey(f.facility, f.camera, info.Start.Start, info.Run, info.Seq)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(s.buf.Bytes())
	if sum != info.SHA256 {
		s.t.Fatalf("segment hash %x, writer says %x", sum, info.SHA256)
	}
	if _, err := f.st.Put(s.ctx, key, bytes.NewReader(s.buf.Bytes()), int64(s.buf.Len()), sum); err != nil {
		return err
	}
	row := &index.Segment{Camera: f.camera, Facility: f.facility, Run: info.Run, Seq: info.Seq, Start: info.Start.Start, End: info.End,
		MediaStart: info.MediaStart, MediaDuration: info.MediaDuration, WallDuration: info.End.Sub(info.Start.Start), Bytes: info.Bytes,
		Frames: info.Frames, Codec: info.Codec, Width: info.Width, Height: info.Height, AudioCodec: info.AudioCodec,
		InitSize: info.InitSize, Fragments: segment.EncodeIndex(info.Fragments), ObjectKey: key, SHA256: sum}
	_, err = f.ix.InsertSegment(s.ctx, row)
	return err
}

// newTestIndex is a recorder index on a fresh database.
func newTestIndex(t testing.TB) (*pgxpool.Pool, *index.Index) {
	t.Helper()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, testenv.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if _, err := migrate.Apply(ctx, pool, migrationSets()...); err != nil {
		t.Fatal(err)
	}
	ix, err := index.New(pool)
	if err != nil {
		t.Fatal(err)
	}
	return pool, ix
}
