package scene

import (
	"bufio"
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kuzet/kuzet/internal/testenv"
)

var t0 = time.Date(2025, 3, 1, 22, 0, 0, 0, time.UTC)

// feed gives the analyzer one second of frames per size list entry: fps
// frames, the first a keyframe of keySize when key is set.
func feed(a *Analyzer, start time.Time, fps int, keySize int, inter []float64) []Second {
	var out []Second
	for s, size := range inter {
		for i := range fps {
			f := Frame{At: start.Add(time.Duration(s)*time.Second + time.Duration(i)*time.Second/time.Duration(fps)), Size: int(size)}
			if i == 0 && keySize > 0 {
				f.Key, f.Size = true, keySize
			}
			if sec, ok := a.Add(f); ok {
				out = append(out, sec)
			}
		}
	}
	return out
}

func repeat(v float64, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func TestAnalyzerJudgesSeconds(t *testing.T) {
	cases := []struct {
		name                     string
		sizes                    []float64
		active, collapsed, burst []int // indexes of judged seconds (from the 4th second on)
	}{
		{name: "quiet", sizes: repeat(250, 20)},
		{name: "activity", sizes: append(append(repeat(250, 8), repeat(420, 4)...), repeat(250, 8)...), active: []int{8, 9, 10, 11}},
		{name: "collapse", sizes: append(repeat(250, 8), repeat(20, 6)...), collapsed: []int{8, 9, 10, 11, 12}},
		{name: "burst", sizes: append(append(repeat(250, 8), repeat(9000, 3)...), repeat(250, 5)...), active: []int{8, 9, 10}, burst: []int{8, 9, 10}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, err := New(Config{})
			if err != nil {
				t.Fatal(err)
			}
			secs := feed(a, t0, 25, 12000, tc.sizes)
			if len(secs) != len(tc.sizes)-1 {
				t.Fatalf("%d seconds finished, want %d", len(secs), len(tc.sizes)-1)
			}
			for i, s := range secs {
				if i < 3 && s.Judged() {
					t.Errorf("second %d judged before the baseline was learned", i)
				}
				if i >= 3 && !s.Judged() {
					t.Errorf("second %d not judged", i)
				}
				if want := contains(tc.active, i); s.Active != want {
					t.Errorf("second %d: active %v, want %v (score %.2f)", i, s.Active, want, s.Score)
				}
				if want := contains(tc.collapsed, i); s.Collapsed != want {
					t.Errorf("second %d: collapsed %v, want %v (score %.2f)", i, s.Collapsed, want, s.Score)
				}
				if want := contains(tc.burst, i); s.Burst != want {
					t.Errorf("second %d: burst %v, want %v", i, s.Burst, want)
				}
			}
		})
	}
}

// TestAnalyzerBaselineIgnoresCollapse: a long covered lens does not become
// the camera's new normal.
func TestAnalyzerBaselineIgnoresCollapse(t *testing.T) {
	a, err := New(Config{BaselineSeconds: 30})
	if err != nil {
		t.Fatal(err)
	}
	secs := feed(a, t0, 10, 5000, append(repeat(300, 10), repeat(10, 100)...))
	last := secs[len(secs)-1]
	if !last.Collapsed || a.Baseline() < 250 {
		t.Fatalf("after 100 s collapsed: last second %+v, baseline %.0f", last, a.Baseline())
	}
}

func TestAnalyzerConfig(t *testing.T) {
	for _, c := range []Config{
		{BaselineSeconds: -1}, {BaselineSeconds: 5, MinBaselineSeconds: 6}, {BaselineQuantile: 1.5},
		{ActivityRatio: 0.5}, {CollapseRatio: 2}, {BurstKeyRatio: -1}, {MinInterFrames: -2},
	} {
		if _, err := New(c); err == nil {
			t.Errorf("New(%+v) accepted", c)
		}
	}
}

func TestAnalyzerOddInput(t *testing.T) {
	a, _ := New(Config{})
	// Negative sizes, time going backwards, huge gaps: no panic, no
	// infinite score.
	for i, f := range []Frame{{At: t0, Size: -5}, {At: t0.Add(-time.Hour), Size: 10}, {At: t0.Add(24 * time.Hour), Size: 0},
		{At: t0.Add(25 * time.Hour)}, {At: t0.Add(26 * time.Hour), Size: 1 << 30}} {
		if s, ok := a.Add(f); ok && (s.Score != s.Score || s.Score > 1e12) {
			t.Fatalf("frame %d: score %v", i, s.Score)
		}
	}
	a.Reset()
	if _, ok := a.Add(Frame{At: t0}); ok {
		t.Fatal("a second finished right after Reset")
	}
}

func contains(xs []int, x int) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// activityIntervals are the seconds [from, to) of the test clip in which
// the object moves.
var activityIntervals = [][2]int{{6, 11}, {16, 19}, {25, 31}, {37, 38}, {44, 50}, {55, 58}}

// ActivityClip writes a clip of a still scene (colour bars with sensor
// noise) in which a textured object moves only during activityIntervals.
func activityClip(t *testing.T, dir string, seconds int) string {
	t.Helper()
	ffmpeg := testenv.FFmpeg(t)
	var on []string
	for _, iv := range activityIntervals {
		on = append(on, fmt.Sprintf("between(t,%d,%d.999)", iv[0], iv[1]-1))
	}
	active := "(" + strings.Join(on, "+") + ")"
	out := filepath.Join(dir, "activity.ts")
	filter := "[0:v]noise=alls=6:allf=t[bg];" +
		"[1:v]trim=end_frame=1,loop=loop=-1:size=1:start=0,setpts=N/25/TB[obj];" +
		"[bg][obj]overlay=x='120+" + active + "*80*sin(2.3*t)':y='50+" + active + "*40*cos(3.1*t)':shortest=1,format=yuv420p"
	cmd := exec.Command(ffmpeg, "-hide_banner", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", "smptebars=size=320x180:rate=25",
		"-f", "lavfi", "-i", "mandelbrot=size=80x80:rate=25",
		"-filter_complex", filter, "-t", strconv.Itoa(seconds),
		"-c:v", "libx264", "-preset", "veryfast", "-bf", "0", "-g", "50", "-an", "-f", "mpegts", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, b)
	}
	return out
}

// packets reads the video packets of a clip with ffprobe: time from the
// first packet, size and keyframe flag. Nothing is decoded.
func packets(t *testing.T, clip string) []Frame {
	t.Helper()
	out, err := exec.Command(testenv.FFprobe(t), "-v", "error", "-select_streams", "v",
		"-show_entries", "packet=pts_time,size,flags", "-of", "csv=p=0", clip).Output()
	if err != nil {
		t.Fatalf("ffprobe: %v", err)
	}
	var frames []Frame
	var first float64
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Split(sc.Text(), ",")
		if len(f) < 3 {
			continue
		}
		pts, err1 := strconv.ParseFloat(f[0], 64)
		size, err2 := strconv.Atoi(f[1])
		if err1 != nil || err2 != nil {
			t.Fatalf("ffprobe line %q", sc.Text())
		}
		if len(frames) == 0 {
			first = pts
		}
		frames = append(frames, Frame{At: t0.Add(time.Duration((pts - first) * float64(time.Second))), Size: size, Key: strings.Contains(f[2], "K")})
	}
	return frames
}

// TestActivityPrecisionRecall runs the analyzer over the packets of a clip
// with motion at known intervals and scores its active seconds.
func TestActivityPrecisionRecall(t *testing.T) {
	t.Parallel()
	const seconds = 60
	clip := activityClip(t, t.TempDir(), seconds)
	a, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	truth := map[int]bool{}
	for _, iv := range activityIntervals {
		for s := iv[0]; s < iv[1]; s++ {
			truth[s] = true
		}
	}
	var tp, fp, fn, judged int
	var line strings.Builder
	for _, f := range packets(t, clip) {
		s, ok := a.Add(f)
		if !ok || !s.Judged() {
			continue
		}
		judged++
		i := int(s.Start.Sub(t0) / time.Second)
		switch {
		case s.Active && truth[i]:
			tp++
		case s.Active:
			fp++
		case truth[i]:
			fn++
		}
		mark := "."
		if s.Active {
			mark = "A"
		}
		if truth[i] != s.Active {
			mark = strings.ToLower(mark) + "!"
		}
		fmt.Fprintf(&line, "%d:%.2f%s ", i, s.Score, mark)
	}
	if judged < seconds-5 {
		t.Fatalf("only %d seconds judged", judged)
	}
	precision := float64(tp) / float64(max(tp+fp, 1))
	recall := float64(tp) / float64(max(tp+fn, 1))
	t.Logf("scores: %s", line.String())
	t.Logf("activity over %d judged seconds: precision %.3f, recall %.3f (tp %d, fp %d, fn %d)", judged, precision, recall, tp, fp, fn)
	fmt.Printf("activity detection: precision %.3f recall %.3f over %d seconds\n", precision, recall, judged)
	if precision < 0.9 || recall < 0.9 {
		t.Fatalf("precision %.3f, recall %.3f: want both ≥ 0.9", precision, recall)
	}
}
