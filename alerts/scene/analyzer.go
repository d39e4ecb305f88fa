package scene

import (
	"errors"
	"math"
	"slices"
	"time"
)

// Frame is one compressed video frame as the Analyzer needs it.
type Frame struct {
	// At is the frame's time (capture time, or the run's start plus the
	// frame's media time). Seconds are cut on whole seconds of At.
	At time.Time
	// Size is the frame's compressed size in bytes.
	Size int
	// Key is true for a keyframe (IDR / IRAP).
	Key bool
}

// Config tunes an Analyzer. The zero value of a field means its default.
type Config struct {
	// BaselineSeconds is how many recent seconds the quiet baseline is
	// taken from. Default 120.
	BaselineSeconds int
	// MinBaselineSeconds is how many seconds must be seen before any
	// second is judged. Default 3.
	MinBaselineSeconds int
	// BaselineQuantile is the quantile of the recent seconds' mean
	// inter-frame sizes taken as the quiet level. Default 0.25: the
	// baseline stays quiet while up to three quarters of the window is
	// active.
	BaselineQuantile float64
	// ActivityRatio is the activity score (mean inter-frame size over the
	// baseline) from which a second is active. Default 1.3.
	ActivityRatio float64
	// CollapseRatio is the score under which a second is collapsed: the
	// picture stopped changing at all (covered, black, frozen). Default
	// 0.25.
	CollapseRatio float64
	// BurstKeyRatio: a second whose mean inter-frame size reaches this
	// fraction of the median keyframe size is a burst (the whole picture
	// changes, as when the camera is moved). Default 0.6.
	BurstKeyRatio float64
	// MinInterFrames is the fewest inter frames a second needs to be
	// judged. Default 3.
	MinInterFrames int
}

func (c *Config) setDefaults() error {
	if c.BaselineSeconds == 0 {
		c.BaselineSeconds = 120
	}
	if c.MinBaselineSeconds == 0 {
		c.MinBaselineSeconds = 3
	}
	if c.BaselineQuantile == 0 {
		c.BaselineQuantile = 0.25
	}
	if c.ActivityRatio == 0 {
		c.ActivityRatio = 1.3
	}
	if c.CollapseRatio == 0 {
		c.CollapseRatio = 0.25
	}
	if c.BurstKeyRatio == 0 {
		c.BurstKeyRatio = 0.6
	}
	if c.MinInterFrames == 0 {
		c.MinInterFrames = 3
	}
	switch {
	case c.BaselineSeconds < 1 || c.BaselineSeconds > 3600:
		return errors.New("scene: baseline seconds out of 1..3600")
	case c.MinBaselineSeconds < 1 || c.MinBaselineSeconds > c.BaselineSeconds:
		return errors.New("scene: min baseline seconds out of 1..baseline seconds")
	case !(c.BaselineQuantile > 0 && c.BaselineQuantile < 1):
		return errors.New("scene: baseline quantile out of (0, 1)")
	case !(c.ActivityRatio > 1):
		return errors.New("scene: activity ratio must be above 1")
	case !(c.CollapseRatio > 0 && c.CollapseRatio < 1):
		return errors.New("scene: collapse ratio out of (0, 1)")
	case !(c.BurstKeyRatio > 0):
		return errors.New("scene: burst key ratio must be positive")
	case c.MinInterFrames < 1:
		return errors.New("scene: min inter frames must be positive")
	}
	return nil
}

// Second is the judgement of one second of video.
type Second struct {
	// Start is the beginning of the second.
	Start time.Time
	// Frames and InterFrames count the frames of the second, all and
	// non-key.
	Frames, InterFrames int
	// Bytes is the compressed size of all its frames.
	Bytes int
	// InterMean is the mean size of its inter frames.
	InterMean float64
	// Baseline is the quiet inter-frame size it was judged against; 0
	// while the baseline is still being learned (then nothing is judged).
	Baseline float64
	// Score is InterMean / Baseline (0 without a baseline).
	Score float64
	// Active: something moves (Score ≥ ActivityRatio).
	Active bool
	// Collapsed: the picture stopped changing (Score < CollapseRatio).
	Collapsed bool
	// Burst: inter frames as large as keyframes (the whole view changes).
	Burst bool
}

// Judged reports whether the second was judged against a baseline.
func (s Second) Judged() bool { return s.Baseline > 0 }

// Analyzer judges the seconds of one camera's video. Feed it every video
// frame in order with Add; Reset it when the camera's timeline restarts.
type Analyzer struct {
	cfg Config

	cur      Second
	curSum   float64
	curKeys  []int // keyframe sizes of the current second
	started  bool
	history  []float64 // ring of recent normal seconds' InterMean
	histNext int
	keys     []int // ring of recent keyframe sizes
	keyNext  int
	scratch  []float64
}

// New returns an Analyzer.
func New(cfg Config) (*Analyzer, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	return &Analyzer{cfg: cfg}, nil
}

// Reset forgets the second in progress (after a break in the stream); the
// baseline is kept, since the camera still sees the same place.
func (a *Analyzer) Reset() {
	a.cur, a.curSum, a.curKeys, a.started = Second{}, 0, a.curKeys[:0], false
}

// Add feeds one frame. When f belongs to a later second than the frames
// before it, the finished second is returned with ok true. Frames that go
// back in time are counted in the current second.
func (a *Analyzer) Add(f Frame) (done Second, ok bool) {
	if f.Size < 0 {
		f.Size = 0
	}
	start := f.At.Truncate(time.Second)
	if a.started && start.After(a.cur.Start) {
		done, ok = a.finish(), true
	}
	if !a.started || ok {
		a.cur, a.curSum, a.curKeys, a.started = Second{Start: start}, 0, a.curKeys[:0], true
	}
	a.cur.Frames++
	a.cur.Bytes += f.Size
	if f.Key {
		a.curKeys = append(a.curKeys, f.Size)
	} else {
		a.cur.InterFrames++
		a.curSum += float64(f.Size)
	}
	return done, ok
}

func (a *Analyzer) addKey(size int) {
	const keep = 16
	if len(a.keys) < keep {
		a.keys = append(a.keys, size)
		return
	}
	a.keys[a.keyNext] = size
	a.keyNext = (a.keyNext + 1) % keep
}

// finish judges the current second and learns from it.
func (a *Analyzer) finish() Second {
	s := a.cur
	if s.InterFrames > 0 {
		s.InterMean = a.curSum / float64(s.InterFrames)
	}
	if s.InterFrames < a.cfg.MinInterFrames {
		// Too few inter frames to judge (a long run of keyframes): its
		// keyframes still tell the picture's size.
		for _, k := range a.curKeys {
			a.addKey(k)
		}
		return s
	}
	if len(a.history) >= a.cfg.MinBaselineSeconds {
		s.Baseline = a.baseline()
	}
	if s.Baseline > 0 {
		s.Score = s.InterMean / s.Baseline
		s.Active = s.Score >= a.cfg.ActivityRatio
		s.Collapsed = s.Score < a.cfg.CollapseRatio
	}
	if k := a.keyMedian(); k > 0 && s.InterMean >= a.cfg.BurstKeyRatio*k {
		s.Burst = true
	}
	// A collapsed or burst second says nothing about the quiet level of
	// the scene the camera normally sees: it is not learned from; nor are
	// the keyframes of a collapsed picture (a black keyframe would make
	// the returning picture look like a burst).
	if !s.Collapsed && !s.Burst {
		a.learn(s.InterMean)
	}
	if !s.Collapsed {
		for _, k := range a.curKeys {
			a.addKey(k)
		}
	}
	return s
}

func (a *Analyzer) learn(v float64) {
	if len(a.history) < a.cfg.BaselineSeconds {
		a.history = append(a.history, v)
		return
	}
	a.history[a.histNext] = v
	a.histNext = (a.histNext + 1) % a.cfg.BaselineSeconds
}

// baseline is the configured quantile of the learned seconds; it is never
// below one byte, so that a score stays finite.
func (a *Analyzer) baseline() float64 {
	a.scratch = append(a.scratch[:0], a.history...)
	slices.Sort(a.scratch)
	i := int(math.Floor(a.cfg.BaselineQuantile * float64(len(a.scratch)-1)))
	return max(a.scratch[i], 1)
}

func (a *Analyzer) keyMedian() float64 {
	if len(a.keys) == 0 {
		return 0
	}
	ks := slices.Clone(a.keys)
	slices.Sort(ks)
	return float64(ks[len(ks)/2])
}

// Baseline returns the current quiet inter-frame size, 0 while learning.
func (a *Analyzer) Baseline() float64 {
	if len(a.history) < a.cfg.MinBaselineSeconds {
		return 0
	}
	return a.baseline()
}
