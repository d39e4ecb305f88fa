package ingest

import (
	"context"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"

	"github.com/kuzet/kuzet/internal/testenv"
)

// ffmpeg's RTP packetization. ffmpeg 5.1's RTSP muxer cannot listen (its
// "-rtsp_flags listen" is an input option; as an output it dials the URL),
// so ffmpeg publishes the clip (video copied, audio re-encoded to AAC since
// MPEG-TS audio has no global header to announce) with ANNOUNCE/RECORD (RTP over TCP) into a
// relay, an in-process RTSP server that hands every RTP packet and RTCP
// sender report on unchanged (but for the SSRC, which the relay's stream
// owns), and the source pulls from the relay. What the source depacketizes
// is ffmpeg's packetization: its SDP parameters, fragmentation, timestamps
// and sender reports. The RTSP server here is ours (gortsplib); a
// third-party RTSP server as the camera is in thirdparty_rtsp_test.go.

type relay struct {
	srv    *gortsplib.Server
	addr   string
	mu     sync.Mutex
	stream *gortsplib.ServerStream
}

func (r *relay) OnAnnounce(ctx *gortsplib.ServerHandlerOnAnnounceCtx) (*base.Response, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stream != nil {
		r.stream.Close()
	}
	r.stream = &gortsplib.ServerStream{Server: r.srv, Desc: ctx.Description}
	if err := r.stream.Initialize(); err != nil {
		return &base.Response{StatusCode: base.StatusInternalServerError}, err
	}
	return &base.Response{StatusCode: base.StatusOK}, nil
}

func (r *relay) OnDescribe(*gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stream == nil {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, nil
	}
	return &base.Response{StatusCode: base.StatusOK}, r.stream, nil
}

func (r *relay) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if ctx.Session.State() == gortsplib.ServerSessionStatePreRecord {
		return &base.Response{StatusCode: base.StatusOK}, nil, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stream == nil {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, nil
	}
	return &base.Response{StatusCode: base.StatusOK}, r.stream, nil
}

func (r *relay) OnPlay(*gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	return &base.Response{StatusCode: base.StatusOK}, nil
}

func (r *relay) OnRecord(ctx *gortsplib.ServerHandlerOnRecordCtx) (*base.Response, error) {
	r.mu.Lock()
	st := r.stream
	r.mu.Unlock()
	ctx.Session.OnPacketRTPAny(func(m *description.Media, _ format.Format, p *rtp.Packet) {
		_ = st.WritePacketRTP(m, p)
	})
	ctx.Session.OnPacketRTCPAny(func(m *description.Media, p rtcp.Packet) {
		sr, ok := p.(*rtcp.SenderReport)
		if !ok {
			return
		}
		for _, f := range st.Stats().Medias[m].Formats {
			c := *sr
			c.SSRC = f.LocalSSRC
			_ = st.WritePacketRTCP(m, &c)
		}
	})
	return &base.Response{StatusCode: base.StatusOK}, nil
}

func startRelay(t *testing.T) *relay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{addr: ln.Addr().String()}
	r.srv = &gortsplib.Server{
		Handler:                  r,
		RTSPAddress:              r.addr,
		Listen:                   func(string, string) (net.Listener, error) { return ln, nil },
		DisableRTCPSenderReports: true,
	}
	if err := r.srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.srv.Close()
		r.mu.Lock()
		if r.stream != nil {
			r.stream.Close()
		}
		r.mu.Unlock()
	})
	return r
}

func TestFFmpegPacketizationViaRelay(t *testing.T) {
	t.Parallel()
	ffmpeg := testenv.FFmpeg(t)
	clip := clipPath(t, "h264_aac_640x360.ts")
	r := startRelay(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, ffmpeg, "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1",
		"-i", clip, "-c:v", "copy", "-c:a", "aac", "-b:a", "64k", "-f", "rtsp", "-rtsp_transport", "tcp", "rtsp://"+r.addr+"/cam")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if s := stderr.String(); s != "" {
			t.Logf("ffmpeg: %s", s)
		}
	})

	// The source starts before ffmpeg has published: 404 until then.
	h := runSource(t, SourceConfig{URL: "rtsp://" + r.addr + "/cam", BackoffMin: 200 * time.Millisecond, BackoffMax: time.Second})
	var tr *Tracks
	deadline := time.Now().Add(15 * time.Second)
	for tr == nil {
		it, err := h.next(time.Until(deadline))
		if err != nil {
			t.Fatalf("no session from ffmpeg: %v; health %+v", err, h.src.Health())
		}
		if it.Event != nil && it.Event.Tracks != nil {
			tr = it.Event.Tracks
		}
	}
	if v := tr.Video; v == nil || v.Codec != CodecH264 || v.Width != 640 || v.Height != 360 {
		t.Fatalf("video track %v", tr.Video)
	}
	if a := tr.Audio; a == nil || a.Codec != CodecAAC || a.SampleRate != 48000 {
		t.Fatalf("audio track %v", tr.Audio)
	}
	var video, audio []*Unit
	deadline = time.Now().Add(4 * time.Second)
	for time.Now().Before(deadline) {
		it, err := h.next(time.Until(deadline))
		if err != nil {
			break
		}
		if it.Event != nil {
			t.Fatalf("event %+v", it.Event)
		}
		if it.Unit.Track == tr.Video {
			video = append(video, it.Unit)
		} else {
			audio = append(audio, it.Unit)
		}
	}
	if len(video) < 75 || len(audio) < 140 {
		t.Fatalf("%d video and %d audio units in 4 s", len(video), len(audio))
	}
	if !video[0].Key || !paramsFirst(newVideoAssembler(CodecH264, nil, nil, nil), video[0].NALUs) {
		t.Fatal("first unit is not a keyframe with its parameter sets")
	}
	for i := 1; i < len(video); i++ {
		if d := video[i].PTS - video[i-1].PTS; d != 3600 {
			t.Fatalf("video PTS step %d at unit %d", d, i)
		}
	}
	hl := h.waitHealth(10*time.Second, func(h Health) bool { return h.ClockOffsetKnown })
	t.Logf("ffmpeg camera: %d video, %d audio units in 4 s; fps %.1f, %.0f kbit/s, keyframe interval %v, clock offset %v",
		len(video), len(audio), hl.FPS, hl.Bitrate/1000, hl.KeyframeInterval, hl.ClockOffset)
	if hl.ClockOffset > time.Second || hl.ClockOffset < -time.Second {
		t.Fatalf("clock offset %v from ffmpeg's sender reports", hl.ClockOffset)
	}
}
