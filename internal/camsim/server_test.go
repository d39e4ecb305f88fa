package camsim

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.DiscardHandler)
}

// startServer starts a simulator on a free port, closed at cleanup.
func startServer(t testing.TB, cfg Config) *Server {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	if cfg.Clip == "" {
		cfg.Clip = clipPath(t, "h264_640x360.ts")
	}
	s, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

type rxPacket struct {
	seq, _ uint16
	ts     uint32
	ssrc   uint32
	at     time.Time
}

type rxFrame struct {
	mark    Mark
	ts      uint32
	ssrc    uint32
	at      time.Time
	key     bool
	hasPS   bool // parameter sets before the picture
	seiPos  int  // index of the mark among the NAL units
	nalus   int
	lastSeq uint16
}

type rxSR struct {
	audio bool
	sr    *rtcp.SenderReport
	at    time.Time
}

// capture is an RTSP client reading one camera over TCP and keeping what it
// received.
type capture struct {
	client *gortsplib.Client
	desc   *description.Session
	codec  string

	mu           sync.Mutex
	video, audio []rxPacket
	frames       []rxFrame
	srs          []rxSR
	decodeErrors []error
	lost         uint64
}

// dial connects to url and starts playing.
func dial(t testing.TB, url string) (*capture, error) {
	t.Helper()
	u, err := base.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	tcp := gortsplib.TransportTCP
	c := &capture{}
	c.client = &gortsplib.Client{
		Transport: &tcp,
		// Generous: on a loaded machine the whole process can stall
		// for seconds.
		ReadTimeout: 30 * time.Second,
		OnDecodeError: func(err error) {
			c.mu.Lock()
			c.decodeErrors = append(c.decodeErrors, err)
			c.mu.Unlock()
		},
		OnPacketsLost: func(n uint64) {
			c.mu.Lock()
			c.lost += n
			c.mu.Unlock()
		},
	}
	if err := c.client.Start(u.Scheme, u.Host); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			c.client.Close()
		}
	}()
	desc, _, err := c.client.Describe(u)
	if err != nil {
		return nil, err
	}
	c.desc = desc
	if err := c.client.SetupAll(desc.BaseURL, desc.Medias); err != nil {
		return nil, err
	}
	for _, m := range desc.Medias {
		switch f := m.Formats[0].(type) {
		case *format.H264:
			c.codec = CodecH264
			d, err := f.CreateDecoder()
			if err != nil {
				t.Fatal(err)
			}
			c.onVideo(m, f, d.Decode)
		case *format.H265:
			c.codec = CodecH265
			d, err := f.CreateDecoder()
			if err != nil {
				t.Fatal(err)
			}
			c.onVideo(m, f, d.Decode)
		case *format.MPEG4Audio:
			c.client.OnPacketRTP(m, f, func(pkt *rtp.Packet) {
				c.mu.Lock()
				c.audio = append(c.audio, rxPacket{seq: pkt.SequenceNumber, ts: pkt.Timestamp, ssrc: pkt.SSRC, at: time.Now()})
				c.mu.Unlock()
			})
		}
	}
	c.client.OnPacketRTCPAny(func(m *description.Media, pkt rtcp.Packet) {
		if sr, ok := pkt.(*rtcp.SenderReport); ok {
			c.mu.Lock()
			c.srs = append(c.srs, rxSR{audio: m.Type == description.MediaTypeAudio, sr: sr, at: time.Now()})
			c.mu.Unlock()
		}
	})
	if _, err := c.client.Play(nil); err != nil {
		return nil, err
	}
	ok = true
	t.Cleanup(c.client.Close)
	return c, nil
}

func (c *capture) onVideo(m *description.Media, f format.Format, decode func(*rtp.Packet) ([][]byte, error)) {
	c.client.OnPacketRTP(m, f, func(pkt *rtp.Packet) {
		now := time.Now()
		c.mu.Lock()
		defer c.mu.Unlock()
		c.video = append(c.video, rxPacket{seq: pkt.SequenceNumber, ts: pkt.Timestamp, ssrc: pkt.SSRC, at: now})
		nalus, err := decode(pkt)
		if err != nil {
			return // more packets needed, or a broken frame
		}
		fr := rxFrame{ts: pkt.Timestamp, ssrc: pkt.SSRC, at: now, nalus: len(nalus), lastSeq: pkt.SequenceNumber, seiPos: -1}
		for i, n := range nalus {
			if m, ok := ParseMarkSEI(c.codec, n); ok {
				fr.mark, fr.seiPos = m, i
			}
			if isParam(c.codec, n) && i == 0 {
				fr.hasPS = true
			}
			if isKeyPicture(c.codec, n) {
				fr.key = true
			}
		}
		c.frames = append(c.frames, fr)
	})
}

func isKeyPicture(codec string, n []byte) bool {
	if codec == CodecH264 {
		return n[0]&0x1f == 5
	}
	t := (n[0] >> 1) & 0x3f
	return t >= 16 && t <= 21
}

// snapshot returns copies of what was received so far.
func (c *capture) snapshot() (video, audio []rxPacket, frames []rxFrame, srs []rxSR, decodeErrors []error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]rxPacket(nil), c.video...), append([]rxPacket(nil), c.audio...),
		append([]rxFrame(nil), c.frames...), append([]rxSR(nil), c.srs...), append([]error(nil), c.decodeErrors...)
}

// checkConsecutive checks that frames carry consecutive marks of camera n,
// one per access unit.
func checkConsecutive(t *testing.T, n int, frames []rxFrame) {
	t.Helper()
	if len(frames) == 0 {
		t.Fatal("no frames")
	}
	for i, f := range frames {
		if f.seiPos < 0 {
			t.Fatalf("frame %d (ts %d) has no mark", i, f.ts)
		}
		if f.mark.Camera != uint32(n) {
			t.Fatalf("frame %d: mark of camera %d, want %d", i, f.mark.Camera, n)
		}
		if i > 0 && f.mark.Frame != frames[i-1].mark.Frame+1 {
			t.Fatalf("frame %d: mark %d follows %d", i, f.mark.Frame, frames[i-1].mark.Frame)
		}
	}
}

func checkSeqContinuous(t *testing.T, what string, pkts []rxPacket) {
	t.Helper()
	for i := 1; i < len(pkts); i++ {
		if pkts[i].seq != pkts[i-1].seq+1 {
			t.Fatalf("%s: sequence %d after %d (packet %d)", what, pkts[i].seq, pkts[i-1].seq, i)
		}
	}
}

// TestServeTenSeconds reads three cameras (H.264, H.265, H.264+AAC) for ten
// seconds of real time (11 s on an idle machine), across each clip's loop
// point, and checks
// everything a camera promises: marks consecutive, sequence numbers and
// timestamps continuous, parameter sets in the SDP and before each key
// frame, sender reports consistent with the frames' send times.
func TestServeTenSeconds(t *testing.T) {
	t.Parallel()
	s := startServer(t, Config{
		Cameras: 3,
		CameraClips: map[int]string{
			2: clipPath(t, "h265_640x360.ts"),
			3: clipPath(t, "h264_aac_640x360.ts"),
		},
		SenderReportPeriod: time.Second,
	})
	start := time.Now()
	caps := make([]*capture, 4)
	for n := 1; n <= 3; n++ {
		c, err := dial(t, s.URL(n))
		if err != nil {
			t.Fatalf("camera %d: %v", n, err)
		}
		caps[n] = c
	}
	// Read until every camera has delivered ten seconds of marks across its
	// loop point; on a loaded machine that may take longer than 10 s.
	eventually(t, 60*time.Second, "ten seconds of frames from every camera", func() bool {
		for n := 1; n <= 3; n++ {
			_, _, frames, _, _ := caps[n].snapshot()
			if len(frames) == 0 {
				return false
			}
			first, last := frames[0], frames[len(frames)-1]
			if last.mark.Capture.Sub(first.mark.Capture) < 10*time.Second ||
				last.mark.Frame < uint64(len(s.Camera(n).clip.frames))+5 {
				return false
			}
		}
		return true
	})
	for n := 1; n <= 3; n++ {
		caps[n].client.Close()
	}
	t.Logf("read for %v", time.Since(start))

	for n, want := range map[int]struct {
		codec string
		audio bool
	}{1: {CodecH264, false}, 2: {CodecH265, false}, 3: {CodecH264, true}} {
		t.Run(want.codec+map[bool]string{true: "+AAC"}[want.audio], func(t *testing.T) {
			c, cam := caps[n], s.Camera(n)
			video, audio, frames, srs, decodeErrors := c.snapshot()
			if c.codec != want.codec {
				t.Fatalf("codec %s, want %s", c.codec, want.codec)
			}
			if len(decodeErrors) > 0 {
				t.Errorf("decode errors: %v", decodeErrors)
			}

			// SDP parameter sets.
			switch f := c.desc.Medias[0].Formats[0].(type) {
			case *format.H264:
				if string(f.SPS) != string(cam.clip.sps) || string(f.PPS) != string(cam.clip.pps) {
					t.Error("SDP SPS/PPS differ from the clip's")
				}
			case *format.H265:
				if string(f.VPS) != string(cam.clip.vps) || string(f.SPS) != string(cam.clip.sps) || string(f.PPS) != string(cam.clip.pps) {
					t.Error("SDP VPS/SPS/PPS differ from the clip's")
				}
			}

			// Ten seconds of consecutive marks, across the loop point.
			checkConsecutive(t, n, frames)
			first, last := frames[0], frames[len(frames)-1]
			if span := last.mark.Capture.Sub(first.mark.Capture); span < 10*time.Second {
				t.Errorf("marks span %v (%d frames), want at least 10 s", span, len(frames))
			}
			loopPoint := uint64(len(cam.clip.frames))
			if first.mark.Frame >= loopPoint || last.mark.Frame <= loopPoint {
				t.Errorf("frames %d..%d do not cross the loop point %d", first.mark.Frame, last.mark.Frame, loopPoint)
			}
			t.Logf("%d frames, marks %d..%d over %v, first at %v after start",
				len(frames), first.mark.Frame, last.mark.Frame, last.mark.Capture.Sub(first.mark.Capture), first.at.Sub(start))

			keys := 0
			for i, f := range frames {
				if i > 0 && f.ts-frames[i-1].ts != 3600 {
					t.Fatalf("frame %d (mark %d): timestamp step %d, want 3600", i, f.mark.Frame, f.ts-frames[i-1].ts)
				}
				if lat := f.at.Sub(f.mark.Capture); lat < 0 {
					t.Errorf("frame %d received %v before its capture time", f.mark.Frame, -lat)
				}
				isKey := f.mark.Frame%loopPoint%50 == 0
				if f.key != isKey {
					t.Errorf("frame %d: key %v, want %v", f.mark.Frame, f.key, isKey)
				}
				if f.key {
					keys++
					if !f.hasPS {
						t.Errorf("key frame %d without parameter sets first", f.mark.Frame)
					}
				}
			}
			if keys < 5 {
				t.Errorf("%d key frames, want 5 or more", keys)
			}
			checkSeqContinuous(t, "video", video)
			for _, p := range video {
				if p.ssrc != video[0].ssrc {
					t.Fatal("video SSRC changed")
				}
			}

			// Sender reports agree on one mapping from RTP time to wall
			// time, and by that mapping no frame is sent early while some
			// go out on time (late ones are the simulator's scheduling lag
			// on a loaded machine).
			var videoSRs int
			var ref *rtcp.SenderReport
			minLate, maxLate := time.Hour, -time.Hour
			for _, r := range srs {
				if r.audio {
					if len(audio) == 0 || r.sr.SSRC != audio[0].ssrc {
						t.Errorf("audio SR with SSRC %d", r.sr.SSRC)
					}
					continue
				}
				videoSRs++
				if r.sr.SSRC != video[0].ssrc {
					t.Errorf("video SR SSRC %d, RTP SSRC %d", r.sr.SSRC, video[0].ssrc)
				}
				if ref == nil {
					ref = r.sr
					continue
				}
				wallDiff := ntpToTime(r.sr.NTPTime).Sub(ntpToTime(ref.NTPTime))
				rtpDiff := duration(int64(r.sr.RTPTime-ref.RTPTime), videoClockRate)
				if d := wallDiff - rtpDiff; d.Abs() > 2*time.Millisecond {
					t.Errorf("sender reports disagree by %v", d)
				}
			}
			if ref == nil {
				t.Fatal("no video sender report")
			}
			for _, f := range frames {
				due := ntpToTime(ref.NTPTime).Add(duration(int64(int32(f.ts-ref.RTPTime)), videoClockRate))
				late := f.mark.Capture.Sub(due)
				minLate, maxLate = min(minLate, late), max(maxLate, late)
			}
			t.Logf("frames sent %v to %v after the time their timestamps map to", minLate, maxLate)
			if minLate < -5*time.Millisecond || minLate > 50*time.Millisecond {
				t.Errorf("frames sent from %v after the time their sender reports give", minLate)
			}
			if videoSRs < 8 {
				t.Errorf("%d video sender reports, want about 10 (1 s period)", videoSRs)
			}

			if !want.audio {
				if len(audio) > 0 {
					t.Error("audio from a camera without audio")
				}
				return
			}
			if len(audio) < 10*48000/1024-10 {
				t.Fatalf("%d audio packets", len(audio))
			}
			checkSeqContinuous(t, "audio", audio)
			for i := 1; i < len(audio); i++ {
				if audio[i].ts-audio[i-1].ts != 1024 {
					t.Fatalf("audio packet %d: timestamp step %d, want 1024", i, audio[i].ts-audio[i-1].ts)
				}
			}
		})
	}
}

func TestNotFound(t *testing.T) {
	t.Parallel()
	s := startServer(t, Config{Cameras: 2})
	for _, path := range []string{"/cam/0", "/cam/3", "/cam/01", "/cam/", "/cam", "/other/1", "/cam/1/extra"} {
		t.Run(path, func(t *testing.T) {
			_, err := dial(t, "rtsp://"+s.Addr()+path)
			var bad liberrors.ErrClientBadStatusCode
			if !errors.As(err, &bad) || bad.Code != base.StatusNotFound {
				t.Errorf("got %v, want 404", err)
			}
		})
	}
}

func TestNewRejects(t *testing.T) {
	clip := clipPath(t, "h264_640x360.ts")
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"too many cameras", Config{Cameras: MaxCameras + 1, Clip: clip}, "cameras"},
		{"negative cameras", Config{Cameras: -1, Clip: clip}, "cameras"},
		{"missing clip", Config{Clip: "/nonexistent.ts"}, "nonexistent"},
		{"fault on missing camera", Config{Cameras: 2, Clip: clip, Faults: []Fault{{Kind: FaultDrop, Cameras: []int{3}}}}, "camera 3"},
		{"stall without duration", Config{Clip: clip, Faults: []Fault{{Kind: FaultStall}}}, "for="},
		{"clip for missing camera", Config{Cameras: 1, Clip: clip, CameraClips: map[int]string{2: clip}}, "camera 2"},
		{"password alone", Config{Clip: clip, Password: "x"}, "password"},
		{"colon in password", Config{Clip: clip, Username: "u", Password: "a:b"}, "':'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg, slog.New(slog.DiscardHandler))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}

func TestRunStopsWithContext(t *testing.T) {
	t.Parallel()
	s, err := New(Config{Listen: "127.0.0.1:0", Cameras: 4, Clip: clipPath(t, "h264_640x360.ts")}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	eventually(t, 30*time.Second, "frames sent", func() bool { return s.Camera(4).FramesSent() >= 5 })
	c, err := dial(t, s.URL(4))
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return")
	}
	waitErr := make(chan error, 1)
	go func() { waitErr <- c.client.Wait() }()
	select {
	case <-waitErr:
	case <-time.After(30 * time.Second):
		t.Error("client still connected after Run returned")
	}
	s.Close() // again: no effect
}
