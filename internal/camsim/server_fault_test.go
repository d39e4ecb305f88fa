package camsim

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"
)

// eventually polls cond until it holds, failing after timeout. Timeouts are
// generous: a loaded machine can stall the whole process for seconds.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s after %v", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// frameCount returns how many frames c has received.
func (c *capture) frameCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.frames)
}

// waitFrames waits until c has received at least n frames.
func waitFrames(t *testing.T, c *capture, n int) {
	t.Helper()
	eventually(t, 30*time.Second, fmt.Sprintf("%d frames", n), func() bool { return c.frameCount() >= n })
}

// waitClosed waits until the server ends c's session and returns when that
// happened.
func waitClosed(t *testing.T, c *capture, within time.Duration) time.Time {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- c.client.Wait() }()
	select {
	case <-done:
		return time.Now()
	case <-time.After(within):
		t.Fatalf("session still open after %v", within)
		return time.Time{}
	}
}

func isStatus(err error, code base.StatusCode) bool {
	var bad liberrors.ErrClientBadStatusCode
	return errors.As(err, &bad) && bad.Code == code
}

// TestFaults injects each fault into its own camera of one server, in
// parallel, through the runtime methods and through Config.Faults.
func TestFaults(t *testing.T) {
	t.Parallel()
	start := time.Now()
	s := startServer(t, Config{
		Cameras:            9,
		CameraClips:        map[int]string{4: clipPath(t, "h264_aac_640x360.ts")},
		Faults:             []Fault{{Kind: FaultDrop, Cameras: []int{7}, At: time.Second, Every: time.Second}},
		SenderReportPeriod: 300 * time.Millisecond,
	})

	t.Run("drop", func(t *testing.T) {
		t.Parallel()
		cam := s.Camera(1)
		c, err := dial(t, s.URL(1))
		if err != nil {
			t.Fatal(err)
		}
		waitFrames(t, c, 5)
		cam.DropSessions()
		waitClosed(t, c, 15*time.Second)
		_, _, before, _, _ := c.snapshot()

		c2, err := dial(t, s.URL(1))
		if err != nil {
			t.Fatalf("reconnect: %v", err)
		}
		waitFrames(t, c2, 5)
		_, _, after, _, _ := c2.snapshot()
		checkConsecutive(t, 1, before)
		checkConsecutive(t, 1, after)
		if after[0].mark.Frame <= before[len(before)-1].mark.Frame {
			t.Errorf("frame numbers restarted: %d after %d", after[0].mark.Frame, before[len(before)-1].mark.Frame)
		}
		if n := cam.Sessions(); n != 1 {
			t.Errorf("%d sessions, want 1", n)
		}
	})

	t.Run("offline", func(t *testing.T) {
		t.Parallel()
		cam := s.Camera(2)
		c, err := dial(t, s.URL(2))
		if err != nil {
			t.Fatal(err)
		}
		waitFrames(t, c, 5)
		off := time.Now()
		cam.Offline(1500 * time.Millisecond)
		waitClosed(t, c, 15*time.Second)
		if _, err := dial(t, s.URL(2)); !isStatus(err, base.StatusServiceUnavailable) {
			t.Fatalf("reconnect while offline: %v, want 503", err)
		}
		for {
			c2, err := dial(t, s.URL(2))
			if err == nil {
				if d := time.Since(off); d < 1400*time.Millisecond {
					t.Errorf("back online after %v, want 1.5 s", d)
				}
				waitFrames(t, c2, 3)
				break
			}
			if !isStatus(err, base.StatusServiceUnavailable) {
				t.Fatal(err)
			}
			if time.Since(off) > 30*time.Second {
				t.Fatal("still offline after 30 s")
			}
			time.Sleep(100 * time.Millisecond)
		}
	})

	t.Run("stall", func(t *testing.T) {
		t.Parallel()
		cam := s.Camera(3)
		c, err := dial(t, s.URL(3))
		if err != nil {
			t.Fatal(err)
		}
		waitFrames(t, c, 5)
		cam.Stall(1500 * time.Millisecond)
		n := c.frameCount()
		eventually(t, 30*time.Second, "frames after the stall", func() bool {
			_, _, frames, _, _ := c.snapshot()
			return len(frames) > n+5 && frames[len(frames)-1].ts-frames[n-1].ts > 90000
		})
		video, _, frames, srs, _ := c.snapshot()
		checkConsecutive(t, 3, frames)
		checkSeqContinuous(t, "video", video)
		stalls := 0
		for i := 1; i < len(frames); i++ {
			step := duration(int64(frames[i].ts-frames[i-1].ts), videoClockRate)
			if step == 40*time.Millisecond {
				continue // late sends on a loaded machine keep their timestamps
			}
			stalls++
			// Stalled 1.5 s from some time inside the 40 ms before this
			// frame was due: its timestamp is 1.5 s to 1.54 s later.
			if step < 1500*time.Millisecond || step > 1540*time.Millisecond {
				t.Errorf("frame %d: timestamp step %v, want 1.5 s + up to one frame", frames[i].mark.Frame, step)
			}
			if gap := frames[i].mark.Capture.Sub(frames[i-1].mark.Capture); gap < 1450*time.Millisecond {
				t.Errorf("frames sent %v apart over a 1.5 s stall", gap)
			}
			for _, r := range srs {
				if at := ntpToTime(r.sr.NTPTime); at.After(frames[i-1].mark.Capture.Add(time.Millisecond)) && at.Before(frames[i].mark.Capture.Add(-time.Millisecond)) {
					t.Errorf("sender report sent during the stall, at %v", at)
				}
			}
		}
		if stalls != 1 {
			t.Errorf("%d stalls, want 1", stalls)
		}
		select {
		case <-waitChan(c):
			t.Error("session closed by the stall")
		default:
		}
	})

	t.Run("ssrc", func(t *testing.T) {
		t.Parallel()
		cam := s.Camera(4)
		// Raw readers: a full client drops packets of an unexpected SSRC.
		// Two sessions share the stream's packets; each must see one change.
		readers := []*rawClient{rawPlay(t, s.URL(4)), rawPlay(t, s.URL(4))}
		for _, r := range readers {
			eventually(t, 30*time.Second, "packets", func() bool { return len(r.snapshot()) > 20 })
		}
		cam.ChangeSSRC()
		var newSSRC [2]uint32
		for ri, r := range readers {
			var w ssrcWatch
			eventually(t, 30*time.Second, "sender reports after the change", func() bool {
				w = watchSSRC(t, r.snapshot())
				return w.srAfter[0] > 0 && w.srAfter[1] > 0
			})
			for tr, name := range []string{"video", "audio"} {
				if w.changes[tr] != 1 {
					t.Errorf("%s: SSRC changed %d times, want once", name, w.changes[tr])
				}
				if w.seqGaps[tr] != 0 {
					t.Errorf("%s: %d sequence gaps", name, w.seqGaps[tr])
				}
				if w.srWrong[tr] != 0 {
					t.Errorf("%s: %d sender reports with the old SSRC after the change", name, w.srWrong[tr])
				}
				if ri == 1 && w.last[tr] != newSSRC[tr] {
					t.Errorf("%s: readers see new SSRCs %d and %d", name, newSSRC[tr], w.last[tr])
				}
				newSSRC[tr] = w.last[tr]
			}
		}
	})

	t.Run("tsjump", func(t *testing.T) {
		t.Parallel()
		cam := s.Camera(5)
		c, err := dial(t, s.URL(5))
		if err != nil {
			t.Fatal(err)
		}
		waitFrames(t, c, 5)
		cam.JumpTimestamp(900000)
		waitFrames(t, c, c.frameCount()+10)
		_, _, frames, _, _ := c.snapshot()
		checkConsecutive(t, 5, frames)
		jumps := 0
		for i := 1; i < len(frames); i++ {
			switch step := frames[i].ts - frames[i-1].ts; step {
			case 3600:
			case 3600 + 900000:
				jumps++
			default:
				t.Errorf("timestamp step %d", step)
			}
		}
		if jumps != 1 {
			t.Errorf("%d jumps, want 1", jumps)
		}
	})

	t.Run("garbage", func(t *testing.T) {
		t.Parallel()
		cam := s.Camera(6)
		var cs []*capture
		for range 2 {
			c, err := dial(t, s.URL(6))
			if err != nil {
				t.Fatal(err)
			}
			cs = append(cs, c)
		}
		for _, c := range cs {
			waitFrames(t, c, 3)
		}
		cam.SendGarbage(10)
		for _, c := range cs {
			// the garbage goes out ahead of the next video packet
			waitFrames(t, c, c.frameCount()+3)
		}
		for i, c := range cs {
			video, _, frames, _, decodeErrors := c.snapshot()
			if len(decodeErrors) != 10 {
				t.Errorf("session %d: %d decode errors, want 10: %v", i, len(decodeErrors), decodeErrors)
			}
			checkConsecutive(t, 6, frames)
			checkSeqContinuous(t, "video", video)
			for _, f := range frames {
				if f.nalus < 2 {
					t.Errorf("frame %d has %d NAL units", f.mark.Frame, f.nalus)
				}
			}
		}
	})

	t.Run("loss", func(t *testing.T) {
		t.Parallel()
		c, err := dial(t, s.URL(8))
		if err != nil {
			t.Fatal(err)
		}
		waitFrames(t, c, 5)
		s.Camera(8).LosePackets(5)
		waitFrames(t, c, c.frameCount()+10)
		_, _, frames, _, _ := c.snapshot()
		c.mu.Lock()
		lost := c.lost
		c.mu.Unlock()
		if lost != 5 {
			t.Errorf("client counted %d packets lost, want 5", lost)
		}
		// Frames that lost their mark packet but kept their picture come
		// out unmarked; count frame numbers missing among the marked ones.
		missing := 0
		var prev *rxFrame
		for i := range frames {
			if frames[i].seiPos < 0 {
				continue
			}
			if prev != nil {
				missing += int(frames[i].mark.Frame - prev.mark.Frame - 1)
			}
			prev = &frames[i]
		}
		if missing < 1 || missing > 5 {
			t.Errorf("%d frames missing, want 1 to 5", missing)
		}
	})

	t.Run("skew", func(t *testing.T) {
		t.Parallel()
		cam := s.Camera(9)
		c, err := dial(t, s.URL(9))
		if err != nil {
			t.Fatal(err)
		}
		waitFrames(t, c, 5)
		// offsets are the camera clock minus the receive time, of the
		// video sender reports from the first one received after `from`.
		offsets := func(from int) []time.Duration {
			_, _, _, srs, _ := c.snapshot()
			var out []time.Duration
			for _, r := range srs[min(from, len(srs)):] {
				if !r.audio {
					out = append(out, ntpToTime(r.sr.NTPTime).Sub(r.at))
				}
			}
			return out
		}
		reports := func() int {
			_, _, _, srs, _ := c.snapshot()
			return len(srs)
		}
		for _, skew := range []time.Duration{5 * time.Second, -2 * time.Second, 0} {
			from := reports()
			cam.SkewClock(skew)
			// Reports on their way show the old clock; once one shows the
			// new clock (sent before the next frame), all that follow do.
			// Received after they were sent, the clock looks a little
			// behind, never ahead.
			near := func(off time.Duration) bool { return off >= skew-time.Second && off <= skew+time.Millisecond }
			var offs []time.Duration
			eventually(t, 30*time.Second, "three sender reports with the new clock", func() bool {
				offs = offsets(from)
				for i, off := range offs {
					if near(off) {
						offs = offs[i:]
						return len(offs) >= 3
					}
				}
				return false
			})
			t.Logf("skew %v: reports show %v", skew, offs)
			for _, off := range offs {
				if !near(off) {
					t.Errorf("skew %v: a report after the change shows the clock %v off", skew, off)
				}
			}
		}
		_, _, frames, _, _ := c.snapshot()
		checkConsecutive(t, 9, frames)
	})

	t.Run("scheduled drop", func(t *testing.T) {
		t.Parallel()
		// dropped every second from 1 s on; a drop may also hit a session
		// still being set up, failing the dial.
		dropped := 0
		for attempt := 0; dropped < 2; attempt++ {
			if attempt == 6 {
				t.Fatalf("%d drops in %d attempts", dropped, attempt)
			}
			c, err := dial(t, s.URL(7))
			if err != nil {
				continue
			}
			at := waitClosed(t, c, 15*time.Second).Sub(start)
			if at < time.Second {
				t.Errorf("dropped %v after start, want 1 s or later", at)
			}
			dropped++
		}
	})
}

func waitChan(c *capture) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		c.client.Wait() //nolint:errcheck
		close(ch)
	}()
	return ch
}

// ssrcWatch sums up, per track (video on channels 0-1, audio on 2-3) and in
// wire order, how the SSRC of RTP packets and sender reports evolved.
type ssrcWatch struct {
	changes, seqGaps, srAfter, srWrong [2]int
	last                               [2]uint32
}

func watchSSRC(t *testing.T, frames []rawFrame) ssrcWatch {
	t.Helper()
	var w ssrcWatch
	var seen [2]bool
	var lastSeq [2]uint16
	for _, f := range frames {
		tr := f.channel / 2
		if tr > 1 {
			t.Fatalf("channel %d", f.channel)
		}
		if f.channel%2 == 1 {
			pkts, err := rtcp.Unmarshal(f.payload)
			if err != nil {
				t.Fatalf("RTCP: %v", err)
			}
			if sr, ok := pkts[0].(*rtcp.SenderReport); ok && w.changes[tr] > 0 {
				w.srAfter[tr]++
				if sr.SSRC != w.last[tr] {
					w.srWrong[tr]++
				}
			}
			continue
		}
		var p rtp.Packet
		if err := p.Unmarshal(f.payload); err != nil {
			t.Fatalf("RTP: %v", err)
		}
		if seen[tr] {
			if p.SSRC != w.last[tr] {
				w.changes[tr]++
			}
			if p.SequenceNumber != lastSeq[tr]+1 {
				w.seqGaps[tr]++
			}
		}
		seen[tr], w.last[tr], lastSeq[tr] = true, p.SSRC, p.SequenceNumber
	}
	return w
}
