package alerts

import (
	"sync"
	"time"

	"github.com/kuzet/kuzet/ingest"
)

// Sample is one point of a camera's health history.
type Sample struct {
	At      time.Time    `json:"at"`
	State   ingest.State `json:"state"`
	FPS     float64      `json:"fps"`
	Bitrate float64      `json:"bitrate"`
	// LostPackets and Reconnects are the counters at the sample.
	LostPackets uint64 `json:"lost_packets"`
	Reconnects  uint64 `json:"reconnects"`
}

// LastError is the latest reason a camera went offline.
type LastError struct {
	At     time.Time `json:"at"`
	Reason string    `json:"reason"`
	Detail string    `json:"detail"`
}

// history keeps a bounded ring of samples per camera, in memory: one
// sample per interval, points samples per camera (an hour by default).
// Cameras that disappear are forgotten. Safe for concurrent use.
type history struct {
	points int

	mu     sync.Mutex
	cams   map[string]*camHistory
	lastAt time.Time
}

type camHistory struct {
	ring    []Sample
	next    int
	lastErr *LastError
}

func newHistory(points int) *history {
	return &history{points: points, cams: map[string]*camHistory{}}
}

// sample records hs if interval has passed since the last sample; the
// last error is tracked at every call.
func (h *history) sample(hs []ingest.Health, now time.Time, interval time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	due := h.lastAt.IsZero() || now.Sub(h.lastAt) >= interval || now.Before(h.lastAt)
	seen := make(map[string]bool, len(hs))
	for _, x := range hs {
		seen[x.Camera] = true
		c, ok := h.cams[x.Camera]
		if !ok {
			c = &camHistory{}
			h.cams[x.Camera] = c
		}
		if x.State == ingest.StateOffline && x.Reason != "" {
			at := x.Since
			if at.IsZero() {
				at = now
			}
			c.lastErr = &LastError{At: at, Reason: string(x.Reason), Detail: x.Detail}
		}
		if !due {
			continue
		}
		s := Sample{At: now, State: x.State, FPS: x.FPS, Bitrate: x.Bitrate, LostPackets: x.PacketsLost, Reconnects: x.Reconnects}
		if len(c.ring) < h.points {
			c.ring = append(c.ring, s)
		} else {
			c.ring[c.next] = s
			c.next = (c.next + 1) % h.points
		}
	}
	for id := range h.cams {
		if !seen[id] {
			delete(h.cams, id)
		}
	}
	if due {
		h.lastAt = now
	}
}

// get returns a camera's samples, oldest first.
func (h *history) get(camera string) []Sample {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.cams[camera]
	if c == nil {
		return []Sample{}
	}
	out := make([]Sample, 0, len(c.ring))
	out = append(out, c.ring[c.next:]...)
	return append(out, c.ring[:c.next]...)
}

// lastError returns a camera's latest offline reason, if any.
func (h *history) lastError(camera string) *LastError {
	h.mu.Lock()
	defer h.mu.Unlock()
	if c := h.cams[camera]; c != nil && c.lastErr != nil {
		e := *c.lastErr
		return &e
	}
	return nil
}
