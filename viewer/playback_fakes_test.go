package viewer

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"
)

// Synthetic recordings for the playback, download and export tests: fMP4
// segments written with mediacommon's muxer (independently of the
// recorder's writer), each video frame numbered in its slice payload
// (putFrameNumber) and stamped at t0 + n/fps.

const testFPS = 25

// testFrameDur is one frame at testFPS.
const testFrameDur = time.Second / testFPS

// segSpec describes a synthetic segment.
type segSpec struct {
	camera string
	run    uint64
	// first is the number of its first frame; frames its length. Frame n
	// is captured at epoch + n/fps.
	first, frames int64
	// gop is the keyframe interval in frames (default 25); fragFrames the
	// longest fragment (default 25).
	gop, fragFrames int64
	audio           bool
	// size is the slice payload per frame (default 500 bytes).
	size int
	// epoch is frame 0's capture time (default testEpoch).
	epoch time.Time
}

func (sp segSpec) wall(n int64) time.Time {
	if sp.epoch.IsZero() {
		return frameWall(n)
	}
	return sp.epoch.Add(time.Duration(n) * testFrameDur)
}

// testEpoch is frame 0's capture time.
var testEpoch = time.Date(2025, 3, 10, 8, 0, 0, 0, time.UTC)

func frameWall(n int64) time.Time { return testEpoch.Add(time.Duration(n) * testFrameDur) }

// buildSegment writes a segment object and its index row.
func buildSegment(t testing.TB, sp segSpec) ([]byte, RecordedSegment) {
	t.Helper()
	if sp.gop == 0 {
		sp.gop = 25
	}
	if sp.fragFrames == 0 {
		sp.fragFrames = 25
	}
	if sp.size == 0 {
		sp.size = 500
	}
	init := fmp4.Init{Tracks: []*fmp4.InitTrack{{ID: 1, TimeScale: 90000, Codec: &mp4.CodecH264{SPS: testSPS, PPS: testPPS}}}}
	if sp.audio {
		init.Tracks = append(init.Tracks, &fmp4.InitTrack{ID: 2, TimeScale: 48000, Codec: &mp4.CodecMPEG4Audio{
			Config: mpeg4audio.AudioSpecificConfig{Type: mpeg4audio.ObjectTypeAACLC, SampleRate: 48000, ChannelCount: 1}}})
	}
	var buf seekablebuffer.Buffer
	if err := init.Marshal(&buf); err != nil {
		t.Fatal(err)
	}
	initSize := int64(buf.Len())
	out := bytes.Clone(buf.Bytes())
	seg := RecordedSegment{Camera: sp.camera, Facility: "f16", Run: sp.run, Start: sp.wall(sp.first), End: sp.wall(sp.first + sp.frames),
		MediaDuration: sp.frames * 90000 / testFPS, Frames: int(sp.frames), Codec: "H264", Width: 640, Height: 360, InitSize: initSize,
		ObjectKey: fmt.Sprintf("f16/%s/%d-%06d.mp4", sp.camera, sp.run, sp.first)}
	seq := uint32(0)
	for i := int64(0); i < sp.frames; {
		j := i + 1
		for j < sp.frames && j-i < sp.fragFrames && (sp.first+j)%sp.gop != 0 {
			j++
		}
		seq++
		part := fmp4.Part{SequenceNumber: seq}
		vt := &fmp4.PartTrack{ID: 1, BaseTime: uint64(i * 90000 / testFPS)}
		for n := i; n < j; n++ {
			vt.Samples = append(vt.Samples, videoSample(t, sp.first+n, sp.gop, sp.size))
		}
		part.Tracks = append(part.Tracks, vt)
		if sp.audio {
			// 48 kHz audio in 1920-sample units: one per frame.
			at := &fmp4.PartTrack{ID: 2, BaseTime: uint64(i * 1920)}
			for n := i; n < j; n++ {
				at.Samples = append(at.Samples, &fmp4.Sample{Duration: 1920, Payload: bytes.Repeat([]byte{byte(n)}, 50)})
			}
			part.Tracks = append(part.Tracks, at)
		}
		var pb seekablebuffer.Buffer
		if err := part.Marshal(&pb); err != nil {
			t.Fatal(err)
		}
		seg.Fragments = append(seg.Fragments, SegmentFragment{Offset: int64(len(out)), Size: int64(pb.Len()),
			Time: i * 90000 / testFPS, Duration: (j - i) * 90000 / testFPS, Key: (sp.first+i)%sp.gop == 0})
		out = append(out, pb.Bytes()...)
		i = j
	}
	seg.Bytes = int64(len(out))
	return out, seg
}

// videoSample is frame n: SPS, PPS and an IDR slice on keyframes, a
// non-IDR slice otherwise, with n in the slice payload.
func videoSample(t testing.TB, n, gop int64, size int) *fmp4.Sample {
	key := n%gop == 0
	payload := make([]byte, 1+size)
	payload[0] = 0x41
	var au [][]byte
	if key {
		payload[0] = 0x65
		au = append(au, testSPS, testPPS)
	}
	putFrameNumber(payload[1:], n)
	au = append(au, payload)
	avcc, err := h264.AVCC(au).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return &fmp4.Sample{Duration: 90000 / testFPS, IsNonSyncSample: !key, Payload: avcc}
}

// fakeStore is an object store in memory that records what is read.
type fakeStore struct {
	mu      sync.Mutex
	objects map[string][]byte
	// maxLen is the longest range read; open the readers not yet closed;
	// maxOpen the most open at once; reads counts GetRange calls.
	maxLen, reads int64
	open, maxOpen int
	// fail makes GetRange fail for keys containing it.
	fail string
}

func (s *fakeStore) put(key string, b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.objects == nil {
		s.objects = map[string][]byte{}
	}
	s.objects[key] = b
}

func (s *fakeStore) GetRange(_ context.Context, key string, off, n int64) (io.ReadCloser, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.objects[key]
	if !ok || s.fail != "" && strings.Contains(key, s.fail) {
		return nil, fmt.Errorf("object %s not found", key)
	}
	if off < 0 || n <= 0 || off >= int64(len(b)) {
		return nil, fmt.Errorf("bad range %d+%d of %s (%d bytes)", off, n, key, len(b))
	}
	s.reads++
	s.maxLen = max(s.maxLen, n)
	s.open++
	s.maxOpen = max(s.maxOpen, s.open)
	end := min(off+n, int64(len(b)))
	return &fakeObjectReader{Reader: bytes.NewReader(b[off:end]), s: s}, nil
}

type fakeObjectReader struct {
	*bytes.Reader
	s    *fakeStore
	once sync.Once
}

func (r *fakeObjectReader) Close() error {
	r.once.Do(func() {
		r.s.mu.Lock()
		r.s.open--
		r.s.mu.Unlock()
	})
	return nil
}

// fakeRecordings is an index in memory.
type fakeRecordings struct {
	mu   sync.Mutex
	segs map[string][]RecordedSegment
	gaps map[string][]RecordedGap
	err  error
}

func (f *fakeRecordings) add(seg RecordedSegment) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.segs == nil {
		f.segs = map[string][]RecordedSegment{}
	}
	f.segs[seg.Camera] = append(f.segs[seg.Camera], seg)
	sort.Slice(f.segs[seg.Camera], func(i, j int) bool { return f.segs[seg.Camera][i].Start.Before(f.segs[seg.Camera][j].Start) })
}

func (f *fakeRecordings) addGap(camera string, g RecordedGap) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.gaps == nil {
		f.gaps = map[string][]RecordedGap{}
	}
	f.gaps[camera] = append(f.gaps[camera], g)
}

func (f *fakeRecordings) RecordedSegments(_ context.Context, camera string, from, to time.Time) ([]RecordedSegment, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	var out []RecordedSegment
	for _, s := range f.segs[camera] {
		if s.End.After(from) && s.Start.Before(to) {
			out = append(out, s)
		}
	}
	return out, nil
}

func (f *fakeRecordings) RecordedGaps(_ context.Context, camera string, from, to time.Time) ([]RecordedGap, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []RecordedGap
	for _, g := range f.gaps[camera] {
		if g.End.After(from) && g.Start.Before(to) {
			out = append(out, g)
		}
	}
	return out, nil
}

// footage is a camera's synthetic recording: segments of segFrames frames
// from frame 0, with the frame ranges in gaps left out (and indexed as
// gaps with reason camera_offline).
type footageSpec struct {
	camera    string
	frames    int64
	segFrames int64
	gaps      [][2]int64 // [first, end) frame numbers without footage
	audio     bool
	size      int
	epoch     time.Time
}

func addFootage(t testing.TB, st *fakeStore, rec *fakeRecordings, fs footageSpec) {
	t.Helper()
	run := uint64(1)
	n := int64(0)
	sp := segSpec{epoch: fs.epoch}
	for n < fs.frames {
		inGap := false
		for _, g := range fs.gaps {
			if n >= g[0] && n < g[1] {
				rec.addGap(fs.camera, RecordedGap{Start: sp.wall(g[0]), End: sp.wall(g[1]), Reason: "camera_offline", Detail: "test"})
				n, inGap = g[1], true
				run++
			}
		}
		if inGap {
			continue
		}
		end := min(n+fs.segFrames, fs.frames)
		for _, g := range fs.gaps {
			if g[0] > n && g[0] < end {
				end = g[0]
			}
		}
		b, seg := buildSegment(t, segSpec{camera: fs.camera, run: run, first: n, frames: end - n, audio: fs.audio, size: fs.size, epoch: fs.epoch})
		st.put(seg.ObjectKey, b)
		rec.add(seg)
		n = end
	}
}

// mp4Frame is a video sample read back from a produced MP4.
type mp4Frame struct {
	number int64
	key    bool
	dts    int64 // file ticks
}

// readMP4 parses a produced MP4: its init section and every fragment, and
// returns the video frames in order and the audio sample count.
func readMP4(t testing.TB, b []byte) ([]mp4Frame, int) {
	t.Helper()
	typ, _, size, err := boxHeader(b)
	if err != nil || typ != "ftyp" {
		t.Fatalf("no ftyp: %v", err)
	}
	off := size
	typ, _, size, err = boxHeader(b[off:])
	if err != nil || typ != "moov" {
		t.Fatalf("no moov: %v", err)
	}
	info, err := parseInit(b[:off+size])
	if err != nil {
		t.Fatal(err)
	}
	off += size
	var frames []mp4Frame
	audio := 0
	seq := uint32(0)
	for off < int64(len(b)) {
		ms, err := moofSize(b[off:])
		if err != nil {
			t.Fatalf("at %d: %v", off, err)
		}
		_, _, ds, err := boxHeader(b[off+ms:])
		if err != nil {
			t.Fatal(err)
		}
		fr, err := parseFragment(b[off:off+ms+ds], ms+ds)
		if err != nil {
			t.Fatalf("fragment at %d: %v", off, err)
		}
		got := uint32(b[off+int64(fr.mfhdPos)])<<24 | uint32(b[off+int64(fr.mfhdPos)+1])<<16 | uint32(b[off+int64(fr.mfhdPos)+2])<<8 | uint32(b[off+int64(fr.mfhdPos)+3])
		if got != seq+1 {
			t.Fatalf("fragment at %d has sequence number %d after %d", off, got, seq)
		}
		seq = got
		for _, tr := range fr.trafs {
			if tr.trackID != info.videoID {
				audio += len(tr.samples)
				continue
			}
			for _, s := range tr.samples {
				nalus, err := splitAVCC(b[off+s.off:off+s.off+int64(s.size)], nil)
				if err != nil {
					t.Fatal(err)
				}
				n, key, ok := frameNumber("H264", nalus)
				if !ok {
					t.Fatalf("sample without frame number at %d", off+s.off)
				}
				frames = append(frames, mp4Frame{number: n, key: key, dts: s.time})
			}
		}
		off += ms + ds
	}
	return frames, audio
}
