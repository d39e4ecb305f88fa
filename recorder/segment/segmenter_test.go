package segment

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"

	"github.com/kuzet/kuzet/ingest"
	"github.com/kuzet/kuzet/internal/testenv"
	"github.com/kuzet/kuzet/recorder/internal/synth"
)

// memSink keeps segments in memory and can refuse data past a quota.
type memSink struct {
	quota int64 // 0: unlimited
	used  int64
	files []*memFile
	cur   *memFile
}

type memFile struct {
	start Start
	buf   bytes.Buffer
	info  *Info
	frags int
}

var errFull = errors.New("quota")

func (m *memSink) Open(s Start) (io.Writer, error) {
	if m.cur != nil {
		return nil, errors.New("open while a segment is open")
	}
	m.cur = &memFile{start: s}
	m.files = append(m.files, m.cur)
	return &m.cur.buf, nil
}

func (m *memSink) Reserve(n int64) error {
	if m.quota > 0 && m.used+n > m.quota {
		return errFull
	}
	m.used += n
	return nil
}

func (m *memSink) Fragment(f Fragment) error {
	m.cur.frags++
	if f.Offset+f.Size != int64(m.cur.buf.Len()) {
		return fmt.Errorf("fragment ends at %d, file at %d", f.Offset+f.Size, m.cur.buf.Len())
	}
	return nil
}

func (m *memSink) Close(info Info) error {
	if m.cur == nil {
		return errors.New("close without open")
	}
	m.cur.info = &info
	m.cur = nil
	return nil
}

var t0 = time.Date(2026, 11, 21, 15, 0, 0, 0, time.UTC)

func loadClip(t testing.TB) *synth.Clip {
	t.Helper()
	c, err := synth.Load()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// readBack parses a segment with mediacommon and returns the frame numbers
// of its video samples and the sample count of its audio track.
func readBack(t *testing.T, b []byte) (frames []int64, audio int, init *fmp4.Init) {
	t.Helper()
	init = &fmp4.Init{}
	if err := init.Unmarshal(bytes.NewReader(b)); err != nil {
		t.Fatalf("init: %v", err)
	}
	res, err := Scan(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	var parts fmp4.Parts
	if err := parts.Unmarshal(b[res.InitSize:]); err != nil {
		t.Fatalf("parts: %v", err)
	}
	for _, p := range parts {
		for _, tr := range p.Tracks {
			switch tr.ID {
			case VideoTrackID:
				for _, s := range tr.Samples {
					au, err := s.GetH264()
					if err != nil {
						t.Fatal(err)
					}
					n, ok := synth.FrameNumber(au)
					if !ok {
						t.Fatal("sample without frame number")
					}
					if s.IsNonSyncSample == synth.IsKey(au) {
						t.Fatalf("frame %d: sync flag %v but key %v", n, !s.IsNonSyncSample, synth.IsKey(au))
					}
					frames = append(frames, n)
				}
			case AudioTrackID:
				audio += len(tr.Samples)
			}
		}
	}
	return frames, audio, init
}

func TestSegmenterCutsOnKeyframesAndRoundTrips(t *testing.T) {
	clip := loadClip(t)
	for _, tc := range []struct {
		name  string
		audio bool
		seg   time.Duration
		frag  time.Duration
	}{
		{"video 4s segments", false, 4 * time.Second, time.Second},
		{"video+aac 3s segments short fragments", true, 3 * time.Second, 300 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cam := synth.NewCamera(clip, t0, tc.audio)
			sink := &memSink{}
			sg, err := NewSegmenter(Config{SegmentDuration: tc.seg, FragmentDuration: tc.frag}, cam.Tracks, 7, time.Time{}, sink)
			if err != nil {
				t.Fatal(err)
			}
			const n = 30 * synth.FPS
			for cam.Frame() < n {
				if err := sg.Push(cam.Next()); err != nil {
					t.Fatal(err)
				}
			}
			if err := sg.Close(); err != nil {
				t.Fatal(err)
			}
			if len(sink.files) < 30/int(tc.seg/time.Second)-1 {
				t.Fatalf("only %d segments", len(sink.files))
			}
			var next int64
			var prevEnd time.Time
			for i, f := range sink.files {
				info := f.info
				if info == nil {
					t.Fatalf("segment %d not closed", i)
				}
				if info.Run != 7 || info.Seq != uint64(i) || info.Bytes != int64(f.buf.Len()) || f.frags != len(info.Fragments) {
					t.Fatalf("segment %d info %+v (file %d bytes)", i, info.Start, f.buf.Len())
				}
				if i > 0 && !info.Start.Start.Equal(prevEnd) {
					t.Fatalf("segment %d starts %s, previous ended %s", i, info.Start.Start, prevEnd)
				}
				prevEnd = info.End
				frames, audio, init := readBack(t, f.buf.Bytes())
				if tc.audio && (audio == 0 || len(init.Tracks) != 2) {
					t.Fatalf("segment %d: %d audio samples, %d tracks", i, audio, len(init.Tracks))
				}
				if len(frames) != info.Frames || info.MediaDuration != int64(info.Frames)*synth.FrameTicks {
					t.Fatalf("segment %d: %d frames read, info %d frames %d ticks", i, len(frames), info.Frames, info.MediaDuration)
				}
				if info.MediaStart != frames[0]*synth.FrameTicks {
					t.Fatalf("segment %d media start %d", i, info.MediaStart)
				}
				for _, fr := range frames {
					if fr != next {
						t.Fatalf("segment %d: frame %d, want %d", i, fr, next)
					}
					next++
				}
				// Keyframes start segments; fragments are short and keyframes start them.
				if !info.Fragments[0].Key || frames[0]%synth.FPS != 0 {
					t.Fatalf("segment %d starts with frame %d", i, frames[0])
				}
				for _, fr := range info.Fragments {
					if fr.Duration > int64(tc.frag/(time.Second/90000)) {
						t.Fatalf("fragment of %d ticks", fr.Duration)
					}
				}
				wall := info.WallDuration()
				if i < len(sink.files)-1 && (wall < tc.seg/2 || wall > tc.seg*3/2+time.Second) {
					t.Fatalf("segment %d lasts %s", i, wall)
				}
				// Scan of the closed file agrees with the info.
				res, err := Scan(bytes.NewReader(f.buf.Bytes()), int64(f.buf.Len()))
				if err != nil || res.Stop != "" || res.Size != info.Bytes || res.Frames != info.Frames ||
					res.MediaDuration != info.MediaDuration || len(res.Fragments) != len(info.Fragments) || res.InitSize != int64(info.InitSize) {
					t.Fatalf("scan %+v err %v vs info frames %d dur %d", res, err, info.Frames, info.MediaDuration)
				}
				for j := range res.Fragments {
					if res.Fragments[j] != info.Fragments[j] {
						t.Fatalf("fragment %d: scan %+v info %+v", j, res.Fragments[j], info.Fragments[j])
					}
				}
				idx, err := DecodeIndex(EncodeIndex(info.Fragments), info.Bytes, info.MediaDuration)
				if err != nil || len(idx) != len(info.Fragments) {
					t.Fatalf("index round trip: %v", err)
				}
				for j := range idx {
					if idx[j] != info.Fragments[j] {
						t.Fatalf("index entry %d: %+v want %+v", j, idx[j], info.Fragments[j])
					}
				}
			}
			if next != n {
				t.Fatalf("recorded %d frames of %d", next, n)
			}
		})
	}
}

func TestSegmentsPassFFprobe(t *testing.T) {
	ffprobe := testenv.FFprobe(t)
	clip := loadClip(t)
	dir := t.TempDir()
	for _, tc := range []struct {
		name    string
		tracks  func(*synth.Camera)
		streams string
	}{
		{"h264", func(c *synth.Camera) { c.Tracks.Audio = nil }, "h264"},
		{"h264+aac", func(*synth.Camera) {}, "h264,aac"},
		{"h264+pcmu", func(c *synth.Camera) {
			c.Tracks.Audio = &ingest.Track{ID: 1, Codec: ingest.CodecPCMU, ClockRate: 8000, SampleRate: 8000, Channels: 1}
		}, "h264,pcm_s16be"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cam := synth.NewCamera(clip, t0, true)
			tc.tracks(cam)
			sink := &memSink{}
			sg, err := NewSegmenter(Config{SegmentDuration: 4 * time.Second}, cam.Tracks, 1, time.Time{}, sink)
			if err != nil {
				t.Fatal(err)
			}
			pcm := make([]byte, 320) // 40 ms of µ-law
			for i := range pcm {
				pcm[i] = byte(i)
			}
			for cam.Frame() < 6*synth.FPS {
				a := cam.Tracks.Audio
				if a != nil && a.Codec == ingest.CodecPCMU {
					u := cam.NextVideo()
					if err := sg.Push(u); err != nil {
						t.Fatal(err)
					}
					if err := sg.Push(&ingest.Unit{Track: a, PTS: u.PTS * 8000 / 90000, DTS: u.DTS * 8000 / 90000, Key: true, Payload: pcm, Size: len(pcm)}); err != nil {
						t.Fatal(err)
					}
					continue
				}
				if err := sg.Push(cam.Next()); err != nil {
					t.Fatal(err)
				}
			}
			if err := sg.Close(); err != nil {
				t.Fatal(err)
			}
			f := sink.files[0]
			p := filepath.Join(dir, tc.name+".mp4")
			if err := os.WriteFile(p, f.buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(ffprobe, "-v", "error", "-count_packets", "-show_entries",
				"stream=codec_name,nb_read_packets:format=duration", "-of", "csv=p=0", p).CombinedOutput()
			if err != nil {
				t.Fatalf("ffprobe: %v\n%s", err, out)
			}
			lines := strings.Fields(strings.TrimSpace(string(out)))
			var codecs []string
			for _, l := range lines[:len(lines)-1] {
				codec, packets, _ := strings.Cut(l, ",")
				codecs = append(codecs, codec)
				if codec == "h264" && packets != strconv.Itoa(f.info.Frames) {
					t.Fatalf("ffprobe counts %s video packets, segment has %d", packets, f.info.Frames)
				}
			}
			if got := strings.Join(codecs, ","); got != tc.streams {
				t.Fatalf("streams %q, want %q (%s)", got, tc.streams, out)
			}
			dur, err := strconv.ParseFloat(lines[len(lines)-1], 64)
			if err != nil {
				t.Fatalf("duration in %q: %v", out, err)
			}
			media := float64(f.info.MediaDuration) / 90000
			if d := dur - media; d < -1.0/synth.FPS || d > 1.0/synth.FPS+0.07 {
				t.Fatalf("ffprobe duration %.3f, index %.3f", dur, media)
			}
			dec, err := exec.Command(testenv.FFmpeg(t), "-v", "error", "-i", p, "-f", "null", "-").CombinedOutput()
			if err != nil || len(dec) > 0 {
				t.Fatalf("ffmpeg decode: %v\n%s", err, dec)
			}
		})
	}
}

func TestSegmenterDiscontinuity(t *testing.T) {
	clip := loadClip(t)
	cam := synth.NewCamera(clip, t0, false)
	sink := &memSink{}
	sg, err := NewSegmenter(Config{SegmentDuration: time.Minute}, cam.Tracks, 1, time.Time{}, sink)
	if err != nil {
		t.Fatal(err)
	}
	for range 40 {
		if err := sg.Push(cam.NextVideo()); err != nil {
			t.Fatal(err)
		}
	}
	u := cam.NextVideo()
	back := *u
	back.DTS, back.PTS = 0, 0
	if err := sg.Push(&back); !errors.Is(err, ErrDiscontinuity) {
		t.Fatalf("want ErrDiscontinuity, got %v", err)
	}
	if sg.Open() || len(sink.files) != 1 || sink.files[0].info == nil || sink.files[0].info.Frames != 40 {
		t.Fatalf("segment not closed with 40 frames: %+v", sink.files[0].info)
	}
	// The end is the last frame's wall time plus one frame.
	want := t0.Add(40 * time.Second / synth.FPS)
	if got := sink.files[0].info.End; !got.Equal(want) {
		t.Fatalf("end %s, want %s", got, want)
	}
}

func TestSegmenterNeverStartsBeforeMinStartOrPreviousEnd(t *testing.T) {
	clip := loadClip(t)
	cam := synth.NewCamera(clip, t0, false)
	// Capture clock jumps back 3 s at frame 60.
	cam.WallJitter = func(f int64) time.Duration {
		if f >= 60 {
			return -3 * time.Second
		}
		return 0
	}
	sink := &memSink{}
	minStart := t0.Add(500 * time.Millisecond)
	sg, err := NewSegmenter(Config{SegmentDuration: 2 * time.Second}, cam.Tracks, 1, minStart, sink)
	if err != nil {
		t.Fatal(err)
	}
	for cam.Frame() < 200 {
		if err := sg.Push(cam.NextVideo()); err != nil {
			t.Fatal(err)
		}
	}
	if err := sg.Close(); err != nil {
		t.Fatal(err)
	}
	prev := minStart
	for i, f := range sink.files {
		if f.info.Start.Start.Before(prev) || !f.info.End.After(f.info.Start.Start) {
			t.Fatalf("segment %d [%s, %s) overlaps previous end %s", i, f.info.Start.Start, f.info.End, prev)
		}
		prev = f.info.End
	}
}

func TestSegmenterSinkRefusal(t *testing.T) {
	clip := loadClip(t)
	cam := synth.NewCamera(clip, t0, true)
	sink := &memSink{quota: 60 << 10}
	sg, err := NewSegmenter(Config{SegmentDuration: time.Minute}, cam.Tracks, 1, time.Time{}, sink)
	if err != nil {
		t.Fatal(err)
	}
	var perr error
	for cam.Frame() < 30*synth.FPS && perr == nil {
		perr = sg.Push(cam.Next())
	}
	if !errors.Is(perr, ErrSinkRefused) || !errors.Is(perr, errFull) {
		t.Fatalf("want refusal, got %v", perr)
	}
	f := sink.files[0]
	if f.info == nil || sg.Open() {
		t.Fatal("segment left open after refusal")
	}
	frames, _, _ := readBack(t, f.buf.Bytes())
	if len(frames) != f.info.Frames || f.info.Bytes != int64(f.buf.Len()) || f.info.Bytes > sink.quota {
		t.Fatalf("closed segment: %d frames in file, info %d, %d bytes", len(frames), f.info.Frames, f.info.Bytes)
	}
	wantEnd := t0.Add(time.Duration(f.info.Frames) * time.Second / synth.FPS)
	if !f.info.End.Equal(wantEnd) {
		t.Fatalf("end %s, want %s (after the last written frame)", f.info.End, wantEnd)
	}
}

func TestRotationIsStaggered(t *testing.T) {
	const d = 60 * time.Second
	seen := map[time.Duration]bool{}
	for i := range 16 {
		p := PhaseFor(fmt.Sprintf("cam-%02d", i), d)
		if p < 0 || p >= d {
			t.Fatalf("phase %s out of range", p)
		}
		seen[p.Truncate(time.Second)] = true
	}
	if len(seen) < 12 {
		t.Fatalf("16 cameras share only %d distinct rotation seconds", len(seen))
	}
	s := &Segmenter{cfg: Config{SegmentDuration: d, Phase: 17 * time.Second}}
	for _, tc := range []struct {
		start time.Time
		want  time.Time
	}{
		{t0, t0.Add(77 * time.Second)},                                         // t0+17s is < 30s away
		{t0.Add(-20 * time.Second), t0.Add(17 * time.Second)},                  // 37 s ahead: fine
		{t0.Add(17 * time.Second), t0.Add(77 * time.Second)},                   // on a boundary
		{t0.Add(47 * time.Second), t0.Add(77 * time.Second)},                   // exactly half a segment
		{t0.Add(47*time.Second + time.Millisecond), t0.Add(137 * time.Second)}, // just too close
	} {
		if got := s.nextCut(tc.start); !got.Equal(tc.want) {
			t.Errorf("nextCut(%s) = %s, want %s", tc.start.Format(time.TimeOnly), got.Format(time.TimeOnly), tc.want.Format(time.TimeOnly))
		}
	}
}

func TestPushDoesNotAllocatePerUnit(t *testing.T) {
	clip := loadClip(t)
	cam := synth.NewCamera(clip, t0, true)
	units := make([]*ingest.Unit, 0, 2000)
	for len(units) < cap(units) {
		units = append(units, cam.Next())
	}
	sg, err := NewSegmenter(Config{SegmentDuration: time.Hour}, cam.Tracks, 1, time.Time{}, &discardSink{})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range units[:500] { // warm up: slices grow to their steady size
		if err := sg.Push(u); err != nil {
			t.Fatal(err)
		}
	}
	i := 500
	allocs := testing.AllocsPerRun(1000, func() {
		if err := sg.Push(units[i]); err != nil {
			t.Fatal(err)
		}
		i++
	})
	// The fragment list of the segment grows by one entry per fragment.
	if allocs > 0.05 {
		t.Fatalf("%.3f allocations per unit", allocs)
	}
}

type discardSink struct{ n int64 }

func (d *discardSink) Open(Start) (io.Writer, error) { return io.Discard, nil }
func (d *discardSink) Reserve(n int64) error         { d.n += n; return nil }
func (d *discardSink) Fragment(Fragment) error       { return nil }
func (d *discardSink) Close(Info) error              { return nil }

func BenchmarkSegmenterPush(b *testing.B) {
	clip := loadClip(b)
	cam := synth.NewCamera(clip, t0, true)
	units := make([]*ingest.Unit, 0, 4096)
	for len(units) < cap(units) {
		units = append(units, cam.Next())
	}
	sg, err := NewSegmenter(Config{SegmentDuration: time.Hour}, cam.Tracks, 1, time.Time{}, &discardSink{})
	if err != nil {
		b.Fatal(err)
	}
	bytes := 0
	for _, u := range units {
		bytes += u.Size
	}
	b.SetBytes(int64(bytes / len(units)))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		u := units[i%len(units)]
		if i%len(units) == 0 && i > 0 {
			_ = sg.Close()
			sg, _ = NewSegmenter(Config{SegmentDuration: time.Hour}, cam.Tracks, 1, time.Time{}, &discardSink{})
		}
		if err := sg.Push(u); err != nil {
			b.Fatal(err)
		}
	}
}
