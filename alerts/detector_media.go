package alerts

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kuzet/kuzet/alerts/scene"
	"github.com/kuzet/kuzet/ingest"
)

// mediaState is what a camera's detector goroutine learns from its stream,
// read by the evaluation. Guarded by mu.
type mediaState struct {
	mu        sync.Mutex
	lastUnit  time.Time // receive time of the latest video unit
	lastKey   time.Time // receive time of the latest keyframe
	videoSeen bool
	// Collapsed (tamper) and burst (scene change) runs of judged seconds.
	collapsedRun   int
	collapsedSince time.Time
	burstRun       int
	burstSince     time.Time
	sceneAt        time.Time // when a burst run last reached SceneChangeFor
	sceneSince     time.Time
	// Activity: receive times of recent active seconds, and the episode.
	activeAt     []time.Time
	lastActive   time.Time
	episodeSince time.Time
	score        float64
	baseline     float64
	// facility is the camera's, for metric labels (set by the evaluation).
	facility string
}

// maxActiveTimes bounds mediaState.activeAt.
const maxActiveTimes = 64

// attach adds the detector reader of a stream; nil if the stream is closed.
func (e *engine) attach(st *ingest.Stream) *ingest.Reader {
	r, err := st.AddReader(ingest.ReaderConfig{Kind: ingest.ReaderDetector, Capacity: e.cfg.DetectorQueue,
		MaxBytes: 8 << 20, Policy: ingest.SkipToKeyframe})
	if err != nil {
		return nil
	}
	e.mu.Lock()
	e.media[st.Camera()] = &mediaState{}
	e.mu.Unlock()
	return r
}

// readMedia is a camera's detector goroutine: it reads the camera's units
// until the stream closes or ctx ends, and judges its seconds. It never
// blocks the camera: its reader drops to the next keyframe when it falls
// behind (counted in kuzet_ingest_reader_dropped_units_total{reader=
// "detector"}).
func (e *engine) readMedia(ctx context.Context, camera string, r *ingest.Reader) {
	defer r.Close()
	e.mu.Lock()
	ms := e.media[camera]
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		if e.media[camera] == ms {
			delete(e.media, camera)
		}
		e.mu.Unlock()
		if e.metrics != nil {
			e.metrics.forgetCamera(camera)
		}
	}()
	an, err := scene.New(e.cfg.Scene)
	if err != nil {
		return // checked in New
	}
	var base time.Time // wall time of PTS 0 of the current run
	var track *ingest.Track
	for {
		it, err := r.Read(ctx)
		if err != nil {
			if !errors.Is(err, ingest.ErrStreamClosed) && ctx.Err() == nil {
				e.log.Warn("alerts: detector reader", "camera", camera, "err", err)
			}
			return
		}
		if it.Event != nil {
			an.Reset()
			base, track = time.Time{}, nil
			continue
		}
		u := it.Unit
		if u == nil || u.Track == nil || !u.Track.Codec.IsVideo() || u.Track.ClockRate <= 0 {
			continue
		}
		if u.Track != track || base.IsZero() {
			track = u.Track
			base = u.Wall.Add(-ticksToDuration(u.PTS, u.Track.ClockRate))
		}
		at := base.Add(ticksToDuration(u.PTS, u.Track.ClockRate))
		sec, done := an.Add(scene.Frame{At: at, Size: u.Size, Key: u.Key})
		ms.mu.Lock()
		ms.videoSeen = true
		ms.lastUnit = u.Received
		if u.Key {
			ms.lastKey = u.Received
		}
		if done {
			e.judged(ms, sec, u.Received)
		}
		ms.mu.Unlock()
		if done && sec.Judged() && e.metrics != nil {
			ms.mu.Lock()
			fac := ms.facility
			ms.mu.Unlock()
			e.metrics.activity(camera, fac, sec)
		}
	}
}

func ticksToDuration(t int64, rate int) time.Duration {
	return time.Duration(t/int64(rate))*time.Second + time.Duration(t%int64(rate))*time.Second/time.Duration(rate)
}

// judged records one judged second, received at; called with ms.mu held.
func (e *engine) judged(ms *mediaState, s scene.Second, at time.Time) {
	if !s.Judged() {
		return
	}
	ms.score, ms.baseline = s.Score, s.Baseline
	if s.Collapsed {
		if ms.collapsedRun == 0 {
			ms.collapsedSince = at.Add(-time.Second)
		}
		ms.collapsedRun++
	} else {
		ms.collapsedRun = 0
	}
	if s.Burst {
		if ms.burstRun == 0 {
			ms.burstSince = at.Add(-time.Second)
		}
		ms.burstRun++
		if time.Duration(ms.burstRun)*time.Second >= e.cfg.SceneChangeFor {
			if ms.sceneAt.IsZero() || at.Sub(ms.sceneAt) >= e.cfg.SceneChangeHold {
				ms.sceneSince = ms.burstSince
			}
			ms.sceneAt = at
		}
	} else {
		ms.burstRun = 0
	}
	if s.Active && !s.Burst {
		ms.lastActive = at
		ms.activeAt = append(ms.activeAt, at)
		if len(ms.activeAt) > maxActiveTimes {
			ms.activeAt = append(ms.activeAt[:0], ms.activeAt[len(ms.activeAt)-maxActiveTimes:]...)
		}
	}
}

// mediaFresh: a camera whose last unit is older than this is not judged on
// its picture (the offline detector speaks for it).
const mediaFresh = 3 * time.Second

// mediaConditions are the picture's conditions of camera h.
func (e *engine) mediaConditions(h ingest.Health, now time.Time) []condition {
	e.mu.Lock()
	ms := e.media[h.Camera]
	e.mu.Unlock()
	if ms == nil {
		return nil
	}
	ms.mu.Lock()
	defer ms.mu.Unlock()
	ms.facility = h.Facility
	var out []condition
	cond := func(k Kind, since time.Time, title, detail string) {
		out = append(out, condition{kind: k, subject: h.Camera, camera: h.Camera, facility: h.Facility,
			title: title, detail: detail, since: since})
	}
	fresh := ms.videoSeen && now.Sub(ms.lastUnit) < mediaFresh
	if e.metrics != nil && ms.videoSeen && !ms.lastKey.IsZero() {
		e.metrics.keyframeAge.WithLabelValues(h.Camera, h.Facility).Set(now.Sub(ms.lastKey).Seconds())
	}
	if fresh && now.Sub(ms.lastKey) >= e.cfg.KeyframeMissingAfter {
		since := ms.lastKey
		if since.IsZero() {
			since = ms.lastUnit
		}
		cond(KindKeyframesMissing, since, "Keyframes missing",
			fmt.Sprintf("no keyframe for %s while video flows", now.Sub(ms.lastKey).Round(time.Second)))
	}
	if fresh && time.Duration(ms.collapsedRun)*time.Second >= e.cfg.TamperFor {
		cond(KindCameraTamper, ms.collapsedSince, "Camera covered or frozen",
			fmt.Sprintf("the picture stopped changing: frames at %.0f%% of this camera's quiet level for %ds", 100*ms.score, ms.collapsedRun))
	}
	if !ms.sceneAt.IsZero() && now.Sub(ms.sceneAt) < e.cfg.SceneChangeHold {
		cond(KindCameraSceneChange, ms.sceneSince, "Camera view changed",
			"the whole picture changed at once (camera moved, turned or knocked)")
	}
	// Activity: an episode starts with ActivityMinSeconds active seconds
	// within ActivityWindow and ends after ActivityQuiet without one.
	n := 0
	for _, t := range ms.activeAt {
		if now.Sub(t) <= e.cfg.ActivityWindow {
			n++
		}
	}
	if ms.episodeSince.IsZero() && n >= e.cfg.ActivityMinSeconds {
		ms.episodeSince = ms.lastActive.Add(-e.cfg.ActivityWindow)
		for _, t := range ms.activeAt {
			if now.Sub(t) <= e.cfg.ActivityWindow {
				ms.episodeSince = t.Add(-time.Second)
				break
			}
		}
	}
	if !ms.episodeSince.IsZero() && now.Sub(ms.lastActive) > e.cfg.ActivityQuiet {
		ms.episodeSince = time.Time{}
	}
	if !ms.episodeSince.IsZero() {
		cond(KindCameraActivity, ms.episodeSince, "Activity",
			fmt.Sprintf("motion in view (activity score %.1f)", ms.score))
	}
	return out
}
