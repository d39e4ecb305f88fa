package alerts

import (
	"fmt"
	"time"

	"github.com/kuzet/kuzet/ingest"
)

// camState is what the health detectors remember of one camera between
// evaluations. Owned by the engine's run goroutine.
type camState struct {
	firstSeen   time.Time
	reconnects  uint64
	reconnectAt []time.Time // reconnects within FlapWindow
	onlineSince time.Time
	nominalFPS  float64
	lowSince    time.Time
	clockSince  time.Time
}

// fpsWarmup is how long a camera must be online before its frame rate is
// judged or learned: the first second's rate is partial.
const fpsWarmup = 5 * time.Second

// cameraConditions runs the health and media detectors over every camera.
func (e *engine) cameraConditions(hs []ingest.Health, now time.Time) []condition {
	var out []condition
	seen := make(map[string]bool, len(hs))
	for _, h := range hs {
		seen[h.Camera] = true
		st, ok := e.cams[h.Camera]
		if !ok {
			st = &camState{firstSeen: now, reconnects: h.Reconnects}
			e.cams[h.Camera] = st
		}
		if h.State == ingest.StateDisabled {
			*st = camState{firstSeen: now, reconnects: h.Reconnects}
			continue
		}
		cond := func(k Kind, since time.Time, title, detail string) {
			out = append(out, condition{kind: k, subject: h.Camera, camera: h.Camera, facility: h.Facility,
				title: title, detail: detail, since: since})
		}

		// Offline: no media for OfflineAfter, whatever the session says.
		last := h.LastFrame
		if last.IsZero() || last.Before(st.firstSeen) {
			last = st.firstSeen
		}
		if now.Sub(last) >= e.cfg.OfflineAfter {
			why := "no media"
			if h.State == ingest.StateOffline && h.Reason != "" {
				why = string(h.Reason)
				if h.Detail != "" {
					why += ": " + h.Detail
				}
			}
			cond(KindCameraOffline, last, "Camera offline",
				fmt.Sprintf("no video for %s (%s)", now.Sub(last).Round(time.Second), why))
		}

		// Flapping: reconnects within the window.
		if h.Reconnects > st.reconnects {
			n := min(h.Reconnects-st.reconnects, uint64(e.cfg.FlapReconnects))
			for range n {
				st.reconnectAt = append(st.reconnectAt, now)
			}
		}
		st.reconnects = h.Reconnects
		keep := st.reconnectAt[:0]
		for _, t := range st.reconnectAt {
			if now.Sub(t) < e.cfg.FlapWindow {
				keep = append(keep, t)
			}
		}
		st.reconnectAt = keep
		if len(st.reconnectAt) >= e.cfg.FlapReconnects {
			cond(KindCameraFlapping, st.reconnectAt[0], "Camera connection flapping",
				fmt.Sprintf("%d reconnects within %s", len(st.reconnectAt), e.cfg.FlapWindow))
		}

		// Low frame rate against the rate the camera keeps when healthy.
		if h.State == ingest.StateOnline && now.Sub(last) < e.cfg.OfflineAfter {
			if st.onlineSince.IsZero() {
				st.onlineSince = now
			}
			if now.Sub(st.onlineSince) >= fpsWarmup && h.FPS > 0 {
				switch {
				case st.nominalFPS == 0:
					st.nominalFPS = h.FPS
				case h.FPS >= e.cfg.LowFPSRatio*st.nominalFPS:
					// Learn slowly downwards, quickly upwards.
					a := 0.02
					if h.FPS > st.nominalFPS {
						a = 0.3
					}
					st.nominalFPS += a * (h.FPS - st.nominalFPS)
					st.lowSince = time.Time{}
				case st.lowSince.IsZero():
					st.lowSince = now
				}
			}
		} else {
			st.onlineSince, st.lowSince = time.Time{}, time.Time{}
		}
		if !st.lowSince.IsZero() && e.lasted(now, st.lowSince, e.cfg.LowFPSFor) {
			cond(KindCameraLowFPS, st.lowSince, "Camera frame rate low",
				fmt.Sprintf("%.1f fps, under %.0f%% of its nominal %.1f fps", h.FPS, 100*e.cfg.LowFPSRatio, st.nominalFPS))
		}

		// Clock offset from the camera's sender reports.
		off := h.ClockOffset
		if off < 0 {
			off = -off
		}
		if h.ClockOffsetKnown && off > e.cfg.ClockOffsetMax && h.State == ingest.StateOnline {
			if st.clockSince.IsZero() {
				st.clockSince = now
			}
			if e.lasted(now, st.clockSince, e.cfg.ClockOffsetFor) {
				cond(KindCameraClockOffset, st.clockSince, "Camera clock off",
					fmt.Sprintf("camera clock %s from the server's (more than %s)", h.ClockOffset.Round(time.Millisecond), e.cfg.ClockOffsetMax))
			}
		} else {
			st.clockSince = time.Time{}
		}

		out = append(out, e.mediaConditions(h, now)...)
	}
	for id := range e.cams {
		if !seen[id] {
			delete(e.cams, id)
		}
	}
	return out
}
