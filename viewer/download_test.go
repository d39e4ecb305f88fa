package viewer

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kuzet/kuzet/internal/testenv"
)

// testFootage: camera c1, 60 s (1500 frames) in 10 s segments, with a gap
// of frames [600, 750) (24 s to 30 s), audio on.
func testFootage(t testing.TB) (*fakeStore, *fakeRecordings) {
	st, rec := &fakeStore{}, &fakeRecordings{}
	addFootage(t, st, rec, footageSpec{camera: "c1", frames: 1500, segFrames: 250, gaps: [][2]int64{{600, 750}}, audio: true})
	return st, rec
}

func planFor(t *testing.T, st *fakeStore, rec *fakeRecordings, camera string, from, to time.Time) *mp4Plan {
	t.Helper()
	segs, err := rec.RecordedSegments(context.Background(), camera, from, to)
	if err != nil {
		t.Fatal(err)
	}
	p, err := planMP4(context.Background(), st, segs, from, to)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func writeAll(t *testing.T, p *mp4Plan, st *fakeStore) ([]byte, mp4Stats) {
	t.Helper()
	var buf bytes.Buffer
	stats, err := p.writeRange(context.Background(), st, &buf, 0, p.size)
	if err != nil {
		t.Fatal(err)
	}
	if int64(buf.Len()) != p.size {
		t.Fatalf("wrote %d bytes, planned %d", buf.Len(), p.size)
	}
	return buf.Bytes(), stats
}

func TestMP4HoldsTheFramesOfItsRange(t *testing.T) {
	t.Parallel()
	st, rec := testFootage(t)
	for _, c := range []struct {
		name        string
		from, to    int64 // frame numbers of the range
		first, last int64 // first and last frame expected
		gapJump     bool
	}{
		{"within one segment", 260, 300, 250, 299, false},
		{"from a keyframe", 275, 280, 275, 279, false},
		{"across a segment boundary", 240, 270, 225, 269, false},
		{"across the gap", 590, 760, 575, 759, true},
		{"starting in the gap", 620, 800, 750, 799, false},
		{"to the end", 1400, 2000, 1400, 1499, false},
		{"mid-fragment end", 100, 113, 100, 112, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := planFor(t, st, rec, "c1", frameWall(c.from), frameWall(c.to))
			b, stats := writeAll(t, p, st)
			frames, audio := readMP4(t, b)
			if len(frames) == 0 || frames[0].number != c.first || frames[len(frames)-1].number != c.last || !frames[0].key {
				t.Fatalf("frames %d..%d (first key %t), want %d..%d", frames[0].number, frames[len(frames)-1].number, frames[0].key, c.first, c.last)
			}
			if stats.frames != len(frames) || audio != len(frames) {
				t.Errorf("stats say %d frames; file holds %d video and %d audio samples", stats.frames, len(frames), audio)
			}
			if frames[0].dts != 0 {
				t.Errorf("first decode time %d", frames[0].dts)
			}
			jumped := false
			for i := 1; i < len(frames); i++ {
				step := frames[i].dts - frames[i-1].dts
				want := (frames[i].number - frames[i-1].number) * 90000 / testFPS
				switch {
				case frames[i].number != frames[i-1].number+1 && !(frames[i-1].number == 599 && frames[i].number == 750):
					t.Fatalf("frame %d follows %d", frames[i].number, frames[i-1].number)
				case step == want && want > 3600:
					jumped = true
				case step != 3600 && step != want:
					t.Fatalf("decode time steps %d from frame %d to %d", step, frames[i-1].number, frames[i].number)
				}
			}
			if jumped != c.gapJump {
				t.Errorf("decode time jumps over the gap: %t, want %t", jumped, c.gapJump)
			}
			if !p.first.Equal(frameWall(c.first)) || !p.last.Equal(frameWall(c.last+1)) {
				t.Errorf("plan spans %s..%s", p.first, p.last)
			}
			// The same range gives the same bytes.
			again, _ := writeAll(t, planFor(t, st, rec, "c1", frameWall(c.from), frameWall(c.to)), st)
			if !bytes.Equal(b, again) {
				t.Error("two plans of one range differ")
			}
		})
	}
}

func TestMP4RangesMatchTheWholeFile(t *testing.T) {
	t.Parallel()
	st, rec := testFootage(t)
	p := planFor(t, st, rec, "c1", frameWall(200), frameWall(1000))
	whole, _ := writeAll(t, p, st)
	r := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		a := r.Int64N(p.size)
		n := r.Int64N(min(p.size-a, 300000)) + 1
		if r.IntN(4) == 0 {
			n = min(p.size-a, 7)
		}
		var buf bytes.Buffer
		if _, err := p.writeRange(context.Background(), st, &buf, a, n); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), whole[a:a+n]) {
			t.Fatalf("range [%d, %d) differs from the whole file", a, a+n)
		}
	}
	// Reads go segment by segment, never more than one segment at once.
	if st.maxOpen > 1 {
		t.Errorf("%d object readers open at once", st.maxOpen)
	}

	// Through http.ServeContent, with Range and a seek back.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pr := newPlanReader(r.Context(), p, st)
		defer pr.Close()
		w.Header().Set("ETag", p.etag())
		http.ServeContent(w, r, "c1.mp4", time.Time{}, pr)
	}))
	defer srv.Close()
	for _, rg := range []struct {
		hdr  string
		a, b int64
	}{{"bytes=0-99", 0, 100}, {"bytes=5000-", 5000, p.size}, {"bytes=-1000", p.size - 1000, p.size}, {"", 0, p.size}} {
		req, _ := http.NewRequest("GET", srv.URL, nil)
		if rg.hdr != "" {
			req.Header.Set("Range", rg.hdr)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || !bytes.Equal(body, whole[rg.a:rg.b]) {
			t.Fatalf("GET %q: %d, %d bytes (%v), want [%d, %d)", rg.hdr, resp.StatusCode, len(body), err, rg.a, rg.b)
		}
	}
	req, _ := http.NewRequest("GET", srv.URL, nil)
	req.Header.Set("Range", "bytes=10-20,30-40")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || !bytes.Contains(body, whole[10:21]) || !bytes.Contains(body, whole[30:41]) {
		t.Fatalf("multipart range: %d", resp.StatusCode)
	}
}

func TestMP4PassesFFprobe(t *testing.T) {
	t.Parallel()
	ffprobe := testenv.FFprobe(t)
	st, rec := testFootage(t)
	p := planFor(t, st, rec, "c1", frameWall(300), frameWall(900))
	b, stats := writeAll(t, p, st)
	path := filepath.Join(t.TempDir(), "c1.mp4")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	// The synthetic slices do not decode (the container is what is
	// checked here; the export test checks real video): decoder messages
	// are not looked at.
	out, err := exec.Command(ffprobe, "-v", "quiet", "-count_packets", "-show_entries",
		"stream=codec_name,width,height,nb_read_packets", "-of", "csv=p=0", path).Output()
	if err != nil {
		t.Fatalf("ffprobe: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "h264,640,360,") {
		t.Fatalf("ffprobe says %q", out)
	}
	if want := "," + itoa(stats.frames); !strings.HasSuffix(lines[0], want) {
		t.Fatalf("ffprobe counts %q, want %d video packets", lines[0], stats.frames)
	}
}

func TestMP4PlanRefusals(t *testing.T) {
	t.Parallel()
	st, rec := testFootage(t)
	ctx := context.Background()
	segs, _ := rec.RecordedSegments(ctx, "c1", frameWall(0), frameWall(1500))
	if _, err := planMP4(ctx, st, segs, frameWall(610), frameWall(700)); !errors.Is(err, errNoFootage) {
		t.Errorf("range in the gap: %v", err)
	}
	bad := append([]RecordedSegment(nil), segs...)
	bad[0].Fragments = append([]SegmentFragment(nil), bad[0].Fragments...)
	bad[0].Fragments[3].Offset = bad[0].Bytes
	if _, err := planMP4(ctx, st, bad, frameWall(0), frameWall(100)); err == nil {
		t.Error("a fragment outside its object was accepted")
	}
	// A damaged object fails the write, not the server.
	st2 := &fakeStore{}
	for _, s := range segs {
		b := bytes.Clone(st.objects[s.ObjectKey])
		for _, f := range s.Fragments {
			b[f.Offset+4] = 'x' // moof → xoof
		}
		st2.put(s.ObjectKey, b)
	}
	p, err := planMP4(ctx, st2, segs, frameWall(0), frameWall(200))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.writeRange(ctx, st2, io.Discard, 0, p.size); !errors.Is(err, errFMP4) {
		t.Errorf("damaged fragments: %v", err)
	}
}

// TestMP4NewRunWithNewParametersEndsTheFile: a run whose init section
// differs starts a new file.
func TestMP4NewRunWithNewParametersEndsTheFile(t *testing.T) {
	t.Parallel()
	st, rec := &fakeStore{}, &fakeRecordings{}
	addFootage(t, st, rec, footageSpec{camera: "c1", frames: 250, segFrames: 250})
	b, seg := buildSegment(t, segSpec{camera: "c1", run: 2, first: 250, frames: 250, audio: true})
	st.put(seg.ObjectKey, b)
	rec.add(seg)
	p := planFor(t, st, rec, "c1", frameWall(0), frameWall(500))
	if !p.next.Equal(frameWall(250)) || !p.last.Equal(frameWall(250)) {
		t.Fatalf("plan ends at %s, next %s", p.last, p.next)
	}
	p2 := planFor(t, st, rec, "c1", p.next, frameWall(500))
	if !p2.next.IsZero() || !p2.first.Equal(frameWall(250)) {
		t.Fatalf("second plan %s..%s next %s", p2.first, p2.last, p2.next)
	}
}

func BenchmarkMP4Write(b *testing.B) {
	st, rec := &fakeStore{}, &fakeRecordings{}
	addFootage(b, st, rec, footageSpec{camera: "c1", frames: 25 * 600, segFrames: 1500, size: 20000})
	segs, _ := rec.RecordedSegments(context.Background(), "c1", frameWall(0), frameWall(25*600))
	p, err := planMP4(context.Background(), st, segs, frameWall(0), frameWall(25*600))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(p.size)
	for b.Loop() {
		if _, err := p.writeRange(context.Background(), st, io.Discard, 0, p.size); err != nil {
			b.Fatal(err)
		}
	}
}
