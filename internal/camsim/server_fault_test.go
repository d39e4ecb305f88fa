package camsim

import (
	"errors"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"
)

// waitFrames waits until c has received at least n frames.
func waitFrames(t *testing.T, c *capture, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		got := len(c.frames)
		c.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d frames after 10 s, want %d", got, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
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
		Cameras:            7,
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
		waitClosed(t, c, 3*time.Second)
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
		waitClosed(t, c, 3*time.Second)
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
			if time.Since(off) > 10*time.Second {
				t.Fatal("still offline after 10 s")
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
		time.Sleep(2500 * time.Millisecond)
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
		// A raw reader: a full client drops packets of an unexpected SSRC.
		r := rawPlay(t, s.URL(4))
		time.Sleep(700 * time.Millisecond)
		cam.ChangeSSRC()
		time.Sleep(1500 * time.Millisecond)

		type track struct {
			ssrcs  []uint32
			seqs   []uint16
			srSSRC []uint32
		}
		var tracks [2]track // video on channels 0-1, audio on 2-3
		for _, f := range r.snapshot() {
			tr := &tracks[f.channel/2]
			if f.channel%2 == 1 {
				pkts, err := rtcp.Unmarshal(f.payload)
				if err != nil {
					t.Fatalf("RTCP: %v", err)
				}
				for _, p := range pkts {
					if sr, ok := p.(*rtcp.SenderReport); ok {
						tr.srSSRC = append(tr.srSSRC, sr.SSRC)
					}
				}
				continue
			}
			var p rtp.Packet
			if err := p.Unmarshal(f.payload); err != nil {
				t.Fatalf("RTP: %v", err)
			}
			tr.ssrcs = append(tr.ssrcs, p.SSRC)
			tr.seqs = append(tr.seqs, p.SequenceNumber)
		}
		for i, name := range []string{"video", "audio"} {
			tr := tracks[i]
			if len(tr.ssrcs) < 20 {
				t.Fatalf("%s: %d packets", name, len(tr.ssrcs))
			}
			changes := 0
			for j := 1; j < len(tr.ssrcs); j++ {
				if tr.seqs[j] != tr.seqs[j-1]+1 {
					t.Errorf("%s: sequence %d after %d", name, tr.seqs[j], tr.seqs[j-1])
				}
				if tr.ssrcs[j] != tr.ssrcs[j-1] {
					changes++
				}
			}
			if changes != 1 {
				t.Errorf("%s: SSRC changed %d times, want once", name, changes)
			}
			first, last := tr.ssrcs[0], tr.ssrcs[len(tr.ssrcs)-1]
			if len(tr.srSSRC) < 2 || tr.srSSRC[0] != first || tr.srSSRC[len(tr.srSSRC)-1] != last {
				t.Errorf("%s: sender report SSRCs %v, RTP SSRC %d then %d", name, tr.srSSRC, first, last)
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
		time.Sleep(500 * time.Millisecond)
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
		time.Sleep(500 * time.Millisecond)
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
			at := waitClosed(t, c, 3*time.Second).Sub(start)
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
