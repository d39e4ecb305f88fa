package ingest

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/auth"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// This file is a camera for tests: an in-process gortsplib RTSP server on
// 127.0.0.1 that loops small encoded clips from testdata, marks every video
// access unit with a SEI frame counter, and injects faults on request.

// camOptions configures a test camera.
type camOptions struct {
	video string // "H264" (default), "H264B" (B-frames), "H265", "MJPEG", "none"
	audio string // "", "AAC", "PCMU"
	// noSDPParams leaves the parameter sets out of the SDP (in-band only).
	noSDPParams bool
	user, pass  string
	authMethods []auth.VerifyMethod // default: Basic and Digest MD5
	tls         *tls.Config
	udp         bool
	fps         int
	addr        string // listen address; "" picks a free port
	// clockOffset is added to the NTP time in sender reports; sendSR sends
	// one every second (the server's own come every 10 s).
	clockOffset time.Duration
	sendSR      bool
	// noMarker clears the RTP marker bit (cameras that end units only by
	// a new timestamp).
	noMarker bool
}

// testCam is a running test camera.
type testCam struct {
	t      testing.TB
	opts   camOptions
	addr   string
	srv    *gortsplib.Server
	stream *gortsplib.ServerStream
	vmedia *description.Media
	vforma format.Format
	amedia *description.Media
	aforma format.Format
	venc   interface {
		Encode([][]byte) ([]*rtp.Packet, error)
	}
	aus     [][][]byte // video access units of the clip, in decode order
	audio   [][]byte   // AAC access units of the audio clip
	audioFL int        // samples per audio unit

	mu         sync.Mutex
	stallUntil time.Time
	tsJump     uint32 // added to video timestamps (audio gets the same time)
	frames     uint64 // video units sent
	seq, aseq  uint16
	inject     []func(c *testCam)
	sessions   int
	altAUs     [][][]byte // switch to this clip at the next keyframe

	stop chan struct{}
	done chan struct{}
}

const markUUID = "kuzet-test-mark!" // 16 bytes

// markNALU returns a SEI user-data-unregistered NAL unit carrying n.
func markNALU(codec Codec, n uint64) []byte {
	digits := strconv.FormatUint(n, 10)
	var b []byte
	if codec == CodecH265 {
		b = []byte{39 << 1, 1}
	} else {
		b = []byte{6}
	}
	b = append(b, 5, byte(16+len(digits)))
	b = append(b, markUUID...)
	b = append(b, digits...)
	return append(b, 0x80)
}

// findMark returns the frame counter of a unit's SEI mark.
func findMark(codec Codec, nalus [][]byte) (uint64, bool) {
	hl := 1
	if codec == CodecH265 {
		hl = 2
	}
	for _, n := range nalus {
		if len(n) < hl+2+16+2 {
			continue
		}
		if codec == CodecH265 && n[0]>>1&0x3f != 39 || codec == CodecH264 && n[0]&0x1f != 6 {
			continue
		}
		p := n[hl:]
		if p[0] != 5 || string(p[2:18]) != markUUID {
			continue
		}
		size := int(p[1])
		if size < 17 || 2+size > len(p) {
			continue
		}
		v, err := strconv.ParseUint(string(p[18:2+size]), 10, 64)
		if err == nil {
			return v, true
		}
	}
	return 0, false
}

// loadAUs splits an Annex-B clip into access units (one picture each).
func loadAUs(t testing.TB, path string, codec Codec) [][][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var nalus h264.AnnexB
	if err := nalus.Unmarshal(b); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	a := newVideoAssembler(codec, nil, nil, nil)
	var aus [][][]byte
	var cur [][]byte
	for _, n := range nalus {
		vcl, _, aud, _ := a.kind(a.nalType(n))
		if aud {
			continue
		}
		// A picture ends at its VCL NAL units (one slice per picture here).
		cur = append(cur, n)
		if vcl {
			aus = append(aus, cur)
			cur = nil
		}
	}
	return aus
}

func loadAAC(t testing.TB, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var pkts mpeg4audio.ADTSPackets
	if err := pkts.Unmarshal(b); err != nil {
		t.Fatal(err)
	}
	out := make([][]byte, len(pkts))
	for i, p := range pkts {
		out[i] = p.AU
	}
	return out
}

type camHandler struct{ c *testCam }

func (h camHandler) auth(ctx *gortsplib.ServerConn, req *base.Request) bool {
	if h.c.opts.user == "" {
		return true
	}
	return ctx.VerifyCredentials(req, h.c.opts.user, h.c.opts.pass)
}

func (h camHandler) OnSessionOpen(*gortsplib.ServerHandlerOnSessionOpenCtx) {
	h.c.mu.Lock()
	h.c.sessions++
	h.c.mu.Unlock()
}

func (h camHandler) OnDescribe(ctx *gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if !h.auth(ctx.Conn, ctx.Request) {
		return &base.Response{StatusCode: base.StatusUnauthorized}, nil, liberrors.ErrServerAuth{}
	}
	if ctx.Path != "/cam" {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, nil
	}
	return &base.Response{StatusCode: base.StatusOK}, h.c.stream, nil
}

func (h camHandler) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if !h.auth(ctx.Conn, ctx.Request) {
		return &base.Response{StatusCode: base.StatusUnauthorized}, nil, liberrors.ErrServerAuth{}
	}
	return &base.Response{StatusCode: base.StatusOK}, h.c.stream, nil
}

func (h camHandler) OnPlay(*gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// startCam starts a test camera; it stops at the end of the test.
func startCam(t testing.TB, opts camOptions) *testCam {
	t.Helper()
	if opts.video == "" {
		opts.video = "H264"
	}
	if opts.fps == 0 {
		opts.fps = 25
	}
	c := &testCam{t: t, opts: opts, stop: make(chan struct{}), done: make(chan struct{}), seq: 1000, aseq: 5000}
	desc := &description.Session{}
	switch opts.video {
	case "H264", "H264B":
		clip := "testdata/h264_320x240.h264"
		if opts.video == "H264B" {
			clip = "testdata/h264_bframes_320x240.h264"
		}
		c.aus = loadAUs(t, clip, CodecH264)
		f := &format.H264{PayloadTyp: 96, PacketizationMode: 1}
		if !opts.noSDPParams {
			f.SPS, f.PPS = findParam(c.aus, CodecH264, h264NALSPS), findParam(c.aus, CodecH264, h264NALPPS)
		}
		enc, err := f.CreateEncoder()
		if err != nil {
			t.Fatal(err)
		}
		c.venc, c.vforma = enc, f
	case "H265":
		c.aus = loadAUs(t, "testdata/h265_320x240.h265", CodecH265)
		f := &format.H265{PayloadTyp: 96}
		if !opts.noSDPParams {
			f.VPS = findParam(c.aus, CodecH265, h265NALVPS)
			f.SPS, f.PPS = findParam(c.aus, CodecH265, h265NALSPS), findParam(c.aus, CodecH265, h265NALPPS)
		}
		enc, err := f.CreateEncoder()
		if err != nil {
			t.Fatal(err)
		}
		c.venc, c.vforma = enc, f
	case "MJPEG":
		c.vforma = &format.MJPEG{}
	case "none":
	default:
		t.Fatalf("video %q", opts.video)
	}
	if c.vforma != nil {
		c.vmedia = &description.Media{Type: description.MediaTypeVideo, Formats: []format.Format{c.vforma}}
		desc.Medias = append(desc.Medias, c.vmedia)
	}
	switch opts.audio {
	case "AAC":
		c.audio = loadAAC(t, "testdata/aac_16k.adts")
		c.audioFL = 1024
		c.aforma = &format.MPEG4Audio{PayloadTyp: 97, SizeLength: 13, IndexLength: 3, IndexDeltaLength: 3,
			Config: &mpeg4audio.AudioSpecificConfig{Type: mpeg4audio.ObjectTypeAACLC, SampleRate: 16000, ChannelCount: 1}}
	case "PCMU":
		c.aforma = &format.G711{PayloadTyp: 0, MULaw: true, SampleRate: 8000, ChannelCount: 1}
		c.audioFL = 160
	case "":
	default:
		t.Fatalf("audio %q", opts.audio)
	}
	if c.aforma != nil {
		c.amedia = &description.Media{Type: description.MediaTypeAudio, Formats: []format.Format{c.aforma}}
		desc.Medias = append(desc.Medias, c.amedia)
	}

	addr := opts.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ { // a restarted camera may wait for its old port
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	c.addr = ln.Addr().String()
	c.srv = &gortsplib.Server{
		Handler:     camHandler{c},
		RTSPAddress: c.addr,
		TLSConfig:   opts.tls,
		AuthMethods: opts.authMethods,
		Listen:      func(string, string) (net.Listener, error) { return ln, nil },
		// Fault injection writes bursts.
		WriteQueueSize: 8192,
		// The server's own reports encode the NTP fraction in nanoseconds;
		// with sendSR the camera sends standard ones itself.
		DisableRTCPSenderReports: opts.sendSR,
	}
	if opts.udp {
		p := freeUDPPair(t)
		c.srv.UDPRTPAddress, c.srv.UDPRTCPAddress = "127.0.0.1:"+strconv.Itoa(p), "127.0.0.1:"+strconv.Itoa(p+1)
	}
	if err := c.srv.Start(); err != nil {
		t.Fatal(err)
	}
	c.stream = &gortsplib.ServerStream{Server: c.srv, Desc: desc}
	if err := c.stream.Initialize(); err != nil {
		t.Fatal(err)
	}
	go c.run()
	t.Cleanup(c.Close)
	return c
}

// freeUDPPair returns an even UDP port p such that p and p+1 were free.
func freeUDPPair(t testing.TB) int {
	for i := 0; i < 100; i++ {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := pc.LocalAddr().(*net.UDPAddr).Port
		pc.Close()
		p &^= 1
		a, err1 := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(p))
		b, err2 := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(p+1))
		if a != nil {
			a.Close()
		}
		if b != nil {
			b.Close()
		}
		if err1 == nil && err2 == nil {
			return p
		}
	}
	t.Fatal("no free UDP port pair")
	return 0
}

func isKeyAU(codec Codec, au [][]byte) bool {
	a := newVideoAssembler(codec, nil, nil, nil)
	for _, n := range au {
		if _, key, _, _ := a.kind(a.nalType(n)); key {
			return true
		}
	}
	return false
}

func findParam(aus [][][]byte, codec Codec, typ int) []byte {
	a := newVideoAssembler(codec, nil, nil, nil)
	for _, au := range aus {
		for _, n := range au {
			if a.nalType(n) == typ {
				return n
			}
		}
	}
	return nil
}

// URL returns the camera's stream URL, without credentials.
func (c *testCam) URL() string {
	scheme := "rtsp"
	if c.opts.tls != nil {
		scheme = "rtsps"
	}
	return scheme + "://" + c.addr + "/cam"
}

// Close stops the camera: its sessions end.
func (c *testCam) Close() {
	select {
	case <-c.stop:
		return
	default:
	}
	close(c.stop)
	<-c.done
	c.stream.Close()
	c.srv.Close()
}

// Stall keeps sessions open but sends nothing for d.
func (c *testCam) Stall(d time.Duration) {
	c.mu.Lock()
	c.stallUntil = time.Now().Add(d)
	c.mu.Unlock()
}

// JumpTimestamp adds ticks (90 kHz) to the video timestamps from now on,
// and the same time to the audio timestamps.
func (c *testCam) JumpTimestamp(ticks uint32) {
	c.mu.Lock()
	c.tsJump += ticks
	c.mu.Unlock()
}

// Inject runs f on the sender goroutine before the next frame, to write
// crafted packets with c.writeVideo.
func (c *testCam) Inject(f func(c *testCam)) {
	c.mu.Lock()
	c.inject = append(c.inject, f)
	c.mu.Unlock()
}

// SwitchClip changes the clip (and so the parameter sets) at its next
// keyframe.
func (c *testCam) SwitchClip(aus [][][]byte) {
	c.mu.Lock()
	c.altAUs = aus
	c.mu.Unlock()
}

// Frames returns the number of video units sent.
func (c *testCam) Frames() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.frames
}

// Sessions returns how many RTSP sessions were opened.
func (c *testCam) Sessions() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sessions
}

// writeVideo sends one video packet, numbering it in sequence. Called on the
// sender goroutine.
func (c *testCam) writeVideo(pkt *rtp.Packet, ntp time.Time) {
	pkt.SequenceNumber = c.seq
	c.seq++
	_ = c.stream.WritePacketRTPWithNTP(c.vmedia, pkt, ntp)
}

// SkipSequence leaves n sequence numbers out (as if lost).
func (c *testCam) SkipSequence(n int) {
	c.Inject(func(c *testCam) { c.seq += uint16(n) })
}

func (c *testCam) run() {
	defer close(c.done)
	start := time.Now()
	vBase, aBase := uint32(123456), uint32(654321)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	frameDur := time.Second / time.Duration(c.opts.fps)
	var sentAudio int64
	var lastSR time.Time
	idx := 0
	aus := c.aus
	for {
		select {
		case <-c.stop:
			return
		case <-tick.C:
		}
		now := time.Now()
		c.mu.Lock()
		stalled := now.Before(c.stallUntil)
		inject := c.inject
		c.inject = nil
		jump := c.tsJump
		alt := c.altAUs
		c.mu.Unlock()
		for _, f := range inject {
			f(c)
		}
		if stalled {
			continue
		}
		el := now.Sub(start)
		// The camera's clock: capture times, shifted by clockOffset.
		capture := func(ts uint32, base uint32, rate int64) time.Time {
			return start.Add(ticksDuration(int64(ts-base), rate)).Add(c.opts.clockOffset)
		}
		if c.venc != nil {
			for {
				c.mu.Lock()
				n := c.frames
				c.mu.Unlock()
				if time.Duration(n)*frameDur > el {
					break
				}
				if idx == len(aus) {
					idx = 0
				}
				codec := CodecH264
				if c.opts.video == "H265" {
					codec = CodecH265
				}
				au := aus[idx]
				if alt != nil && isKeyAU(codec, au) {
					aus, idx, alt = alt, 0, nil
					c.mu.Lock()
					c.altAUs = nil
					c.mu.Unlock()
					au = aus[0]
				}
				idx++
				full := append([][]byte{markNALU(codec, n)}, au...)
				pkts, err := c.venc.Encode(full)
				if err != nil {
					c.t.Errorf("encode: %v", err)
					return
				}
				ts := vBase + uint32(int64(n)*90000/int64(c.opts.fps)) + jump
				for _, p := range pkts {
					p.Timestamp = ts
					p.Marker = p.Marker && !c.opts.noMarker
					c.writeVideo(p, capture(ts-jump, vBase, 90000))
				}
				c.mu.Lock()
				c.frames++
				c.mu.Unlock()
			}
		}
		if c.aforma != nil {
			rate := int64(c.aforma.ClockRate())
			for time.Duration(sentAudio*int64(c.audioFL))*time.Second/time.Duration(rate) <= el {
				ts := aBase + uint32(sentAudio*int64(c.audioFL)) + uint32(int64(jump)*rate/90000)
				var payload []byte
				if c.opts.audio == "AAC" {
					au := c.audio[sentAudio%int64(len(c.audio))]
					payload = append([]byte{0, 16, byte(len(au) >> 5), byte(len(au) << 3)}, au...)
				} else {
					payload = make([]byte, c.audioFL)
					for i := range payload {
						payload[i] = 0xff
					}
				}
				pkt := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: c.aforma.PayloadType(), SequenceNumber: c.aseq,
					Timestamp: ts, Marker: true}, Payload: payload}
				c.aseq++
				_ = c.stream.WritePacketRTPWithNTP(c.amedia, pkt, capture(ts-uint32(int64(jump)*rate/90000), aBase, rate))
				sentAudio++
			}
		}
		if c.opts.sendSR && c.vmedia != nil && now.Sub(lastSR) >= time.Second {
			lastSR = now
			st := c.stream.Stats()
			ssrc := st.Medias[c.vmedia].Formats[c.vforma].LocalSSRC
			ts := vBase + uint32(int64(c.Frames())*90000/int64(c.opts.fps))
			_ = c.stream.WritePacketRTCP(c.vmedia, &rtcp.SenderReport{SSRC: ssrc,
				NTPTime: ntpTime(capture(ts, vBase, 90000)), RTPTime: ts + jump})
		}
	}
}

func ntpTime(t time.Time) uint64 {
	s := uint64(t.Unix()) + 2208988800
	f := uint64(t.Nanosecond()) << 32 / 1e9
	return s<<32 | f
}

func (c *testCam) String() string { return fmt.Sprintf("testcam %s %s", c.addr, c.opts.video) }

// newPacket returns an RTP packet (sequence number set when written).
func newPacket(pt uint8, ts uint32, marker bool, payload []byte) *rtp.Packet {
	return &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: pt, Timestamp: ts, Marker: marker}, Payload: payload}
}
