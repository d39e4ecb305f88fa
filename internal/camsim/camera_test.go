package camsim

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// sentPacket is what a camera wrote, as a recorder saw it.
type sentPacket struct {
	audio   bool
	seq     uint16
	ts      uint32
	marker  bool
	payload []byte
	ntp     time.Time
	at      time.Time // (fake) time of the write
}

// recorder is a streamWriter that keeps everything.
type recorder struct {
	video, audio *description.Media
	mu           sync.Mutex
	pkts         []sentPacket
	srs          []*rtcp.SenderReport
	srAt         []time.Time
	srAudio      []bool
}

func (r *recorder) WritePacketRTPWithNTP(m *description.Media, pkt *rtp.Packet, ntp time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pkts = append(r.pkts, sentPacket{
		audio: m == r.audio, seq: pkt.SequenceNumber, ts: pkt.Timestamp, marker: pkt.Marker,
		payload: bytes.Clone(pkt.Payload), ntp: ntp, at: time.Now(),
	})
	return nil
}

func (r *recorder) WritePacketRTCP(m *description.Media, pkt rtcp.Packet) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.srs = append(r.srs, pkt.(*rtcp.SenderReport))
	r.srAt = append(r.srAt, time.Now())
	r.srAudio = append(r.srAudio, m == r.audio)
	return nil
}

// recFrame is a video access unit reassembled from recorded packets.
type recFrame struct {
	mark  Mark
	ts    uint32
	first uint16 // sequence number of its first packet
	at    time.Time
	key   bool
}

func (r *recorder) frames(t *testing.T, codec string) []recFrame {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []recFrame
	var cur []sentPacket
	for _, p := range r.pkts {
		if p.audio {
			continue
		}
		cur = append(cur, p)
		if !p.marker {
			continue
		}
		payloads := make([][]byte, len(cur))
		for i, c := range cur {
			payloads[i] = c.payload
			if c.ts != cur[0].ts {
				t.Fatalf("frame at seq %d: packets with different timestamps", cur[0].seq)
			}
		}
		nalus := depacketize(t, codec, payloads)
		m, ok := FindMark(codec, nalus)
		if !ok {
			t.Fatalf("frame at seq %d has no mark", cur[0].seq)
		}
		out = append(out, recFrame{mark: m, ts: cur[0].ts, first: cur[0].seq, at: cur[0].at, key: len(nalus) > 2 && isParam(codec, nalus[0])})
		cur = nil
	}
	return out
}

func isParam(codec string, n []byte) bool {
	if codec == CodecH264 {
		return n[0]&0x1f == 7
	}
	return (n[0]>>1)&0x3f == 32
}

// newTestCamera returns camera 3 looping file into a recorder.
func newTestCamera(t *testing.T, file string, faults ...Fault) (*Camera, *recorder) {
	t.Helper()
	cl, err := loadClip(clipPath(t, file))
	if err != nil {
		t.Fatal(err)
	}
	c := newCamera(3, cl, faults, 5*time.Second, slog.New(slog.DiscardHandler))
	rec := &recorder{video: &description.Media{}}
	if cl.audio != nil {
		rec.audio = &description.Media{}
	}
	c.stream, c.video, c.audio = rec, rec.video, rec.audio
	c.videoSSRC, c.audioSSRC = 1111, 2222
	return c, rec
}

// runFor runs c for d of (fake) time, calling at(elapsed) hooks first.
func runFor(c *Camera, d time.Duration, hooks map[time.Duration]func()) {
	ctx, cancel := context.WithCancel(context.Background())
	start := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.run(ctx, start, newRealPacer())
	}()
	var elapsed time.Duration
	for _, at := range sortedKeys(hooks) {
		time.Sleep(at - elapsed)
		elapsed = at
		hooks[at]()
	}
	time.Sleep(d - elapsed)
	cancel()
	<-done
}

func sortedKeys(m map[time.Duration]func()) []time.Duration {
	var ks []time.Duration
	for k := range m {
		ks = append(ks, k)
	}
	for i := range ks {
		for j := i + 1; j < len(ks); j++ {
			if ks[j] < ks[i] {
				ks[i], ks[j] = ks[j], ks[i]
			}
		}
	}
	return ks
}

// checkSeq checks that sequence numbers of one track run on by one.
func checkSeq(t *testing.T, rec *recorder, audio bool) int {
	t.Helper()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	n := 0
	var prev uint16
	for _, p := range rec.pkts {
		if p.audio != audio {
			continue
		}
		if n > 0 && p.seq != prev+1 {
			t.Fatalf("audio=%v: sequence %d after %d", audio, p.seq, prev)
		}
		prev = p.seq
		n++
	}
	return n
}

// Over three and a half loops of fake time: marks consecutive, timestamps
// evenly spaced across loop boundaries, wall clock pacing, sender reports.
func TestCameraLoopsContinuously(t *testing.T) {
	for _, file := range []string{"h264_640x360.ts", "h265_640x360.ts", "h264_aac_640x360.ts"} {
		t.Run(file, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c, rec := newTestCamera(t, file)
				start := time.Now()
				runFor(c, 35*time.Second, nil)

				frames := rec.frames(t, c.clip.codec)
				if want := 35 * 25; len(frames) < want-1 || len(frames) > want+1 {
					t.Fatalf("%d frames in 35 s, want %d", len(frames), want)
				}
				if uint64(len(frames)) != c.FramesSent() {
					t.Errorf("FramesSent %d, recorded %d", c.FramesSent(), len(frames))
				}
				loops := 0
				for i, f := range frames {
					if f.mark.Frame != uint64(i) || f.mark.Camera != 3 {
						t.Fatalf("frame %d: mark %+v", i, f.mark)
					}
					if want := start.Add(time.Duration(i) * 40 * time.Millisecond); !f.at.Equal(want) || !f.mark.Capture.Equal(want) {
						t.Fatalf("frame %d sent at %v, want %v", i, f.at.Sub(start), want.Sub(start))
					}
					if i%len(c.clip.frames) == 0 {
						loops++
						if !f.key {
							t.Errorf("frame %d starts a loop but is not a key frame", i)
						}
					}
					if i > 0 && f.ts-frames[i-1].ts != 3600 {
						t.Fatalf("frame %d: timestamp step %d, want 3600", i, f.ts-frames[i-1].ts)
					}
				}
				if loops < 3 {
					t.Errorf("only %d loops", loops)
				}
				checkSeq(t, rec, false)

				// A sender report before each key frame, mapping wall time to
				// the frames' timestamps.
				rec.mu.Lock()
				defer rec.mu.Unlock()
				var videoSRs int
				for i, sr := range rec.srs {
					if rec.srAudio[i] {
						if sr.SSRC != 2222 {
							t.Errorf("audio SR SSRC %d", sr.SSRC)
						}
						continue
					}
					videoSRs++
					if sr.SSRC != 1111 {
						t.Errorf("video SR SSRC %d", sr.SSRC)
					}
					el := rec.srAt[i].Sub(start)
					if want := frames[0].ts + uint32(ticks(el, videoClockRate)); sr.RTPTime != want {
						t.Errorf("SR at %v: RTP time %d, want %d", el, sr.RTPTime, want)
					}
					if got := ntpToTime(sr.NTPTime); got.Sub(rec.srAt[i]).Abs() > time.Microsecond {
						t.Errorf("SR NTP time %v, sent at %v", got, rec.srAt[i])
					}
				}
				if want := 35 / 2; videoSRs < want {
					t.Errorf("%d video sender reports, want at least %d", videoSRs, want)
				}

				if c.clip.audio == nil {
					return
				}
				rec.mu.Unlock()
				n := checkSeq(t, rec, true)
				rec.mu.Lock()
				if want := 35 * 48000 / 1024; n < want-1 || n > want+1 {
					t.Errorf("%d audio packets, want %d", n, want)
				}
				var prev *sentPacket
				for i := range rec.pkts {
					p := &rec.pkts[i]
					if !p.audio {
						continue
					}
					if prev != nil && p.ts-prev.ts != 1024 {
						t.Fatalf("audio timestamp step %d, want 1024", p.ts-prev.ts)
					}
					prev = p
				}
			})
		})
	}
}

func ntpToTime(v uint64) time.Time {
	sec := int64(v>>32) - 2208988800
	frac := int64((v & 0xffffffff) * uint64(time.Second) >> 32)
	return time.Unix(sec, frac)
}

func TestCameraStall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, rec := newTestCamera(t, "h264_640x360.ts")
		start := time.Now()
		runFor(c, 6*time.Second, map[time.Duration]func(){
			2*time.Second + 10*time.Millisecond: func() { c.Stall(1500 * time.Millisecond) },
		})
		frames := rec.frames(t, CodecH264)
		gaps := 0
		for i := 1; i < len(frames); i++ {
			f, p := frames[i], frames[i-1]
			if f.mark.Frame != p.mark.Frame+1 {
				t.Fatalf("frame %d follows %d", f.mark.Frame, p.mark.Frame)
			}
			gap := f.at.Sub(p.at)
			if gap == 40*time.Millisecond {
				if f.ts-p.ts != 3600 {
					t.Fatalf("frame %d: timestamp step %d", i, f.ts-p.ts)
				}
				continue
			}
			gaps++
			// stalled from 2.01 s to 3.51 s: the frame due at 2.04 s goes
			// out at 3.51 s, its timestamp 1.47 s later than due.
			if f.at.Sub(start) != 3510*time.Millisecond || gap != 1510*time.Millisecond {
				t.Errorf("frame %d after a %v gap at %v", i, gap, f.at.Sub(start))
			}
			if want := uint32(ticks(gap, videoClockRate)); f.ts-p.ts != want {
				t.Errorf("timestamp step %d over the stall, want %d", f.ts-p.ts, want)
			}
		}
		if gaps != 1 {
			t.Errorf("%d gaps, want 1", gaps)
		}
		rec.mu.Lock()
		defer rec.mu.Unlock()
		for _, at := range rec.srAt {
			if el := at.Sub(start); el > 2010*time.Millisecond && el < 3510*time.Millisecond {
				t.Errorf("sender report during the stall, at %v", el)
			}
		}
		checkSeqLocked(t, rec)
	})
}

func checkSeqLocked(t *testing.T, rec *recorder) {
	t.Helper()
	rec.mu.Unlock()
	defer rec.mu.Lock()
	checkSeq(t, rec, false)
}

func TestCameraTimestampJump(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, rec := newTestCamera(t, "h264_aac_640x360.ts")
		runFor(c, 3*time.Second, map[time.Duration]func(){
			time.Second + 10*time.Millisecond: func() { c.JumpTimestamp(900000) },
		})
		frames := rec.frames(t, CodecH264)
		jumps := 0
		for i := 1; i < len(frames); i++ {
			switch step := frames[i].ts - frames[i-1].ts; step {
			case 3600:
			case 3600 + 900000:
				jumps++
				if frames[i].mark.Frame != 26 {
					t.Errorf("jump at frame %d, want 26 (the first after 1.01 s)", frames[i].mark.Frame)
				}
			default:
				t.Fatalf("frame %d: timestamp step %d", i, step)
			}
		}
		if jumps != 1 {
			t.Errorf("%d jumps, want 1", jumps)
		}
		rec.mu.Lock()
		defer rec.mu.Unlock()
		var prev *sentPacket
		audioJumps := 0
		for i := range rec.pkts {
			p := &rec.pkts[i]
			if !p.audio {
				continue
			}
			if prev != nil {
				switch p.ts - prev.ts {
				case 1024:
				case 1024 + 480000:
					audioJumps++
				default:
					t.Fatalf("audio timestamp step %d", p.ts-prev.ts)
				}
			}
			prev = p
		}
		if audioJumps != 1 {
			t.Errorf("%d audio jumps, want 1 (of 10 s)", audioJumps)
		}
	})
}

// Scheduled faults fire at their time and repeat with their period.
func TestCameraScheduledFaults(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, rec := newTestCamera(t, "h264_640x360.ts",
			Fault{Kind: FaultTimestampJump, At: time.Second, Every: 2 * time.Second, Ticks: 90000},
			Fault{Kind: FaultStall, Cameras: []int{3}, At: 4 * time.Second, For: time.Second},
			Fault{Kind: FaultGarbage, Cameras: []int{3}, At: 500 * time.Millisecond, Count: 7},
			Fault{Kind: FaultSSRC, Cameras: []int{4}, At: 0}, // another camera
		)
		runFor(c, 6*time.Second, nil)
		frames := rec.frames(t, CodecH264)
		var jumps, stalls []uint64
		for i := 1; i < len(frames); i++ {
			step := frames[i].ts - frames[i-1].ts
			switch {
			case step == 3600:
			case step == 3600+90000:
				jumps = append(jumps, frames[i].mark.Frame)
			case frames[i].at.Sub(frames[i-1].at) > 900*time.Millisecond:
				stalls = append(stalls, frames[i].mark.Frame)
				// The stall (1 s) and the third jump (at 5 s, when the
				// stall ends) both land on this frame.
				if step != 3600+90000+90000 {
					t.Errorf("timestamp step %d over the stall, want %d", step, 3600+2*90000)
				}
			default:
				t.Fatalf("frame %d: timestamp step %d", i, step)
			}
		}
		// Jumps at 1 s and 3 s (frames 25 and 75); the stall at 4 s holds
		// frame 100 until 5 s.
		if len(jumps) != 2 || jumps[0] != 25 || jumps[1] != 75 {
			t.Errorf("jumps at frames %v, want [25 75]", jumps)
		}
		if len(stalls) != 1 || stalls[0] != 100 {
			t.Errorf("stalls before frames %v, want [100]", stalls)
		}
		if got := c.garbageTotal.Load(); got != 7 {
			t.Errorf("garbage requested %d, want 7", got)
		}
		if c.ssrcXor.Load() != 0 {
			t.Error("fault for camera 4 fired on camera 3")
		}
	})
}

func TestCameraLosePackets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, rec := newTestCamera(t, "h264_aac_640x360.ts")
		runFor(c, 2*time.Second, map[time.Duration]func(){
			time.Second + 10*time.Millisecond: func() { c.LosePackets(5) },
		})
		rec.mu.Lock()
		defer rec.mu.Unlock()
		gaps := 0
		var prev, prevAudio *sentPacket
		for i := range rec.pkts {
			p := &rec.pkts[i]
			if p.audio {
				if prevAudio != nil && p.seq != prevAudio.seq+1 {
					t.Errorf("audio sequence gap: %d after %d", p.seq, prevAudio.seq)
				}
				prevAudio = p
				continue
			}
			if prev != nil && p.seq != prev.seq+1 {
				gaps++
				if p.seq-prev.seq != 6 {
					t.Errorf("video sequence %d after %d, want 5 lost", p.seq, prev.seq)
				}
			}
			prev = p
		}
		if gaps != 1 {
			t.Errorf("%d gaps, want 1", gaps)
		}
	})
}

// countingHandler counts log records at or above Warn.
type countingHandler struct {
	slog.Handler // for WithGroup
	mu           sync.Mutex
	warns        int
}

func (h *countingHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		h.mu.Lock()
		h.warns++
		h.mu.Unlock()
	}
	return nil
}

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }

func TestCameraCountsSlowReaderDrops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		logs := &countingHandler{Handler: slog.DiscardHandler}
		cl, err := loadClip(clipPath(t, "h264_640x360.ts"))
		if err != nil {
			t.Fatal(err)
		}
		c := newCamera(1, cl, nil, time.Second, slog.New(logs))
		h := &handler{}
		ss := &gortsplib.ServerSession{}
		ss.SetUserData(c)
		for range 100 {
			h.OnStreamWriteError(&gortsplib.ServerHandlerOnStreamWriteErrorCtx{Session: ss, Error: errors.New("write queue is full")})
		}
		time.Sleep(11 * time.Second)
		h.OnStreamWriteError(&gortsplib.ServerHandlerOnStreamWriteErrorCtx{Session: ss, Error: errors.New("write queue is full")})
		if got := c.PacketsDropped(); got != 101 {
			t.Errorf("PacketsDropped %d, want 101", got)
		}
		if logs.warns != 2 {
			t.Errorf("%d warnings, want 2 (one per 10 s)", logs.warns)
		}
	})
}

// A skewed clock shows in the NTP time of the sender reports, from a report
// sent before the next video frame, and nowhere else: RTP timestamps, their
// mapping and the marks stay true.
func TestCameraSkewClock(t *testing.T) {
	for _, tc := range []struct {
		name   string
		file   string
		faults []Fault
		hooks  func(c *Camera) map[time.Duration]func()
		// want is the skew of a report sent el after start.
		want func(el time.Duration) time.Duration
		// forced are times of reports that only the change explains (no
		// key frame, no period).
		forced []time.Duration
	}{
		{
			name: "SkewClock", file: "h264_aac_640x360.ts",
			hooks: func(c *Camera) map[time.Duration]func() {
				return map[time.Duration]func(){
					2010 * time.Millisecond: func() { c.SkewClock(5 * time.Second) },
					4010 * time.Millisecond: func() { c.SkewClock(0) },
				}
			},
			want: func(el time.Duration) time.Duration {
				if el >= 2040*time.Millisecond && el < 4040*time.Millisecond {
					return 5 * time.Second
				}
				return 0
			},
			forced: []time.Duration{2040 * time.Millisecond, 4040 * time.Millisecond},
		},
		{
			name: "scheduled", file: "h264_640x360.ts",
			faults: []Fault{{Kind: FaultClockSkew, At: 1020 * time.Millisecond, For: 2 * time.Second, Offset: -3 * time.Second}},
			want: func(el time.Duration) time.Duration {
				if el >= 1040*time.Millisecond && el < 3040*time.Millisecond {
					return -3 * time.Second
				}
				return 0
			},
			forced: []time.Duration{1040 * time.Millisecond, 3040 * time.Millisecond},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c, rec := newTestCamera(t, tc.file, tc.faults...)
				start := time.Now()
				var hooks map[time.Duration]func()
				if tc.hooks != nil {
					hooks = tc.hooks(c)
				}
				runFor(c, 6*time.Second, hooks)
				frames := rec.frames(t, c.clip.codec)
				for i, f := range frames {
					if !f.mark.Capture.Equal(f.at) {
						t.Fatalf("frame %d: mark capture %v, sent %v", i, f.mark.Capture.Sub(start), f.at.Sub(start))
					}
				}
				rec.mu.Lock()
				defer rec.mu.Unlock()
				skewed, audio := 0, 0
				seen := map[time.Duration]bool{}
				for i, sr := range rec.srs {
					el := rec.srAt[i].Sub(start)
					want := tc.want(el)
					if got := ntpToTime(sr.NTPTime).Sub(rec.srAt[i]); (got - want).Abs() > time.Microsecond {
						t.Errorf("report at %v (audio %v): clock %v off, want %v", el, rec.srAudio[i], got, want)
					}
					if want != 0 {
						skewed++
					}
					if rec.srAudio[i] {
						audio++
						continue
					}
					seen[el] = true
					if w := frames[0].ts + uint32(ticks(el, videoClockRate)); sr.RTPTime != w {
						t.Errorf("report at %v: RTP time %d, want %d", el, sr.RTPTime, w)
					}
				}
				for _, at := range tc.forced {
					if !seen[at] {
						t.Errorf("no video sender report at %v, when the clock changed", at)
					}
				}
				if skewed < 2 {
					t.Errorf("%d skewed reports", skewed)
				}
				if (c.clip.audio != nil) != (audio > 0) {
					t.Errorf("%d audio reports", audio)
				}
			})
		})
	}
}
