package viewer

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph265"
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"

	"github.com/kuzet/kuzet/ingest"
	"github.com/kuzet/kuzet/registry"
)

// Parameter sets of the 640x360 Main-profile test clip.
var (
	testSPS = mustHex("674d401ed900a02ff97011000003000100000300320f162e48")
	testPPS = mustHex("68ebccb2")
)

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// Test users. The header X-Test-User names one; fakeAuth trusts it.
var testUsers = map[string]registry.Principal{
	"op16":  {UserID: 1, Username: "op16", Roles: []registry.Role{registry.RoleOperator}, Facilities: []string{"f16"}},
	"op27":  {UserID: 2, Username: "op27", Roles: []registry.Role{registry.RoleOperator}, Facilities: []string{"f27"}},
	"inv16": {UserID: 3, Username: "inv16", Roles: []registry.Role{registry.RoleInvestigator}, Facilities: []string{"f16"}},
	"opall": {UserID: 4, Username: "opall", Roles: []registry.Role{registry.RoleOperator}, AllFacilities: true},
}

type fakeAuth struct{}

func (fakeAuth) Authenticate(r *http.Request) (registry.Principal, error) {
	if p, ok := testUsers[r.Header.Get("X-Test-User")]; ok {
		return p, nil
	}
	return registry.Principal{}, registry.ErrBadCredentials
}

// fakeAudit keeps rows in memory; fail makes Record fail.
type fakeAudit struct {
	mu   sync.Mutex
	rows []registry.Entry
	fail bool
}

func (a *fakeAudit) Record(_ context.Context, e registry.Entry) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.fail {
		return fmt.Errorf("%w: disk on fire", registry.ErrAudit)
	}
	a.rows = append(a.rows, e)
	return nil
}

func (a *fakeAudit) setFail(v bool) {
	a.mu.Lock()
	a.fail = v
	a.mu.Unlock()
}

// find returns the rows of action and outcome ("" for any outcome).
func (a *fakeAudit) find(action, outcome string) []registry.Entry {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []registry.Entry
	for _, e := range a.rows {
		if e.Action == action && (outcome == "" || e.Outcome == outcome) {
			out = append(out, e)
		}
	}
	return out
}

// fakeDir is a camera directory whose state follows the camera's stream.
type fakeDir struct {
	mu      sync.Mutex
	cams    []LiveCamera
	streams map[string]*ingest.Stream
}

func (d *fakeDir) LiveFacilities(context.Context) ([]LiveFacility, error) {
	return []LiveFacility{{ID: "f16", Name: "Facility 16"}, {ID: "f27", Name: "Facility 27"}}, nil
}

func (d *fakeDir) LiveCameras(_ context.Context, facility string) ([]LiveCamera, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []LiveCamera
	for _, c := range d.cams {
		if facility == "" || c.Facility == facility {
			out = append(out, d.withState(c))
		}
	}
	return out, nil
}

func (d *fakeDir) LiveCamera(_ context.Context, id string) (LiveCamera, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.cams {
		if c.ID == id {
			return d.withState(c), nil
		}
	}
	return LiveCamera{}, fmt.Errorf("%w: %s", ErrUnknownCamera, id)
}

func (d *fakeDir) withState(c LiveCamera) LiveCamera {
	s := d.streams[c.ID]
	if s != nil && s.Tracks() != nil {
		c.State, c.Codec = "online", string(s.Tracks().Video.Codec)
	} else {
		c.State, c.Reason, c.Detail = "offline", "refused", "connection refused"
	}
	return c
}

func (d *fakeDir) Stream(camera string) (*ingest.Stream, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s, ok := d.streams[camera]
	return s, ok
}

func (d *fakeDir) add(c LiveCamera, s *ingest.Stream) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.cams = append(d.cams, c)
	if d.streams == nil {
		d.streams = map[string]*ingest.Stream{}
	}
	d.streams[c.ID] = s
}

// synthCam publishes synthetic H.264 (or H.265) access units into a stream:
// frame n carries n in its slice payload, a keyframe every gop frames.
type synthCam struct {
	stream *ingest.Stream
	video  *ingest.Track
	audio  *ingest.Track
	fps    int
	gop    int
	size   int // slice payload bytes

	mu    sync.Mutex
	frame int64
	t0    time.Time
}

func newSynthCam(camera string, codec ingest.Codec, audio ingest.Codec) *synthCam {
	c := &synthCam{
		stream: ingest.NewStream(ingest.StreamConfig{Camera: camera, GOPCacheBytes: 8 << 20}, nil, nil),
		fps:    25, gop: 50, size: 3000,
	}
	c.video = &ingest.Track{ID: 0, Codec: codec, ClockRate: 90000, Width: 640, Height: 360}
	switch codec {
	case ingest.CodecH264:
		c.video.SPS, c.video.PPS = testSPS, testPPS
	case ingest.CodecH265:
		c.video.VPS = mustHex("40010c01ffff01600000030090000003000003003f928090")
		c.video.SPS = mustHex("42010101600000030090000003000003003fa0050201696592a4932bc05a020000030002000003003210")
		c.video.PPS = mustHex("4401c172b46240")
	}
	if audio != "" {
		c.audio = &ingest.Track{ID: 1, Codec: audio, ClockRate: 8000, SampleRate: 8000, Channels: 1}
		if audio == ingest.CodecAAC {
			c.audio.ClockRate, c.audio.SampleRate = 48000, 48000
		}
	}
	return c
}

// start publishes the tracks event of a new timeline.
func (c *synthCam) start(now time.Time) {
	c.mu.Lock()
	c.frame, c.t0 = 0, now
	c.mu.Unlock()
	c.stream.PublishEvent(&ingest.Event{Reason: ingest.ReasonDiscontinuity, Detail: ingest.DetailSessionStarted, At: now,
		Tracks: &ingest.Tracks{Video: c.video, Audio: c.audio}})
}

func (c *synthCam) offline(now time.Time) {
	c.stream.PublishEvent(&ingest.Event{Reason: ingest.ReasonCameraOffline, Detail: "eof", At: now})
}

// next publishes the next frame (and, with audio, one 40 ms audio unit)
// stamped with wall time now.
func (c *synthCam) next(now time.Time) {
	c.mu.Lock()
	n := c.frame
	c.frame++
	c.mu.Unlock()
	key := n%int64(c.gop) == 0
	var nalus [][]byte
	var payload []byte
	if c.video.Codec == ingest.CodecH264 {
		payload = make([]byte, 1+c.size)
		payload[0] = 0x41 // non-IDR slice
		if key {
			payload[0] = 0x65 // IDR slice
			nalus = append(nalus, c.video.SPS, c.video.PPS)
		}
		putFrameNumber(payload[1:], n)
	} else {
		payload = make([]byte, 2+c.size)
		payload[0], payload[1] = 1<<1, 1 // TRAIL_R
		if key {
			payload[0] = 19 << 1 // IDR_W_RADL
			nalus = append(nalus, c.video.VPS, c.video.SPS, c.video.PPS)
		}
		putFrameNumber(payload[2:], n)
	}
	nalus = append(nalus, payload)
	size := 0
	for _, x := range nalus {
		size += len(x)
	}
	pts := n * 90000 / int64(c.fps)
	c.stream.Publish(&ingest.Unit{Track: c.video, PTS: pts, DTS: pts, Wall: now, Received: now, Key: key, NALUs: nalus, Size: size})
	if c.audio != nil {
		samples := int64(c.audio.ClockRate) / int64(c.fps)
		p := make([]byte, samples)
		c.stream.Publish(&ingest.Unit{Track: c.audio, PTS: n * samples, DTS: n * samples, Wall: now, Received: now, Key: true, Payload: p, Size: len(p)})
	}
}

// run publishes frames in real time until ctx ends.
func (c *synthCam) run(ctx context.Context) {
	t := time.NewTicker(time.Second / time.Duration(c.fps))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			c.next(now)
		}
	}
}

// putFrameNumber writes n in 8 bytes of 7 bits with the high bit set, and
// fills the rest of b with 0xAA: no start code can appear in a payload
// (depacketizers look for them).
func putFrameNumber(b []byte, n int64) {
	for i := range b {
		b[i] = 0xAA
	}
	for i := range 8 {
		b[i] = 0x80 | byte(n>>(7*i))&0x7f
	}
}

func getFrameNumber(b []byte) int64 {
	var n int64
	for i := range 8 {
		n |= int64(b[i]&0x7f) << (7 * i)
	}
	return n
}

// frameNumber reads the frame number of a synthetic access unit.
func frameNumber(codec ingest.Codec, nalus [][]byte) (n int64, key bool, ok bool) {
	for _, x := range nalus {
		off := 1
		if codec == ingest.CodecH265 {
			off = 2
		}
		if len(x) < off+8 {
			continue
		}
		var typ int
		if codec == ingest.CodecH264 {
			typ = int(x[0] & 0x1f)
			if typ != 1 && typ != 5 {
				continue
			}
			key = typ == 5
		} else {
			typ = int(x[0]>>1) & 0x3f
			if typ > 21 {
				continue
			}
			key = typ >= 16
		}
		return getFrameNumber(x[off:]), key, true
	}
	return 0, false, false
}

// liveEnv is a Live service behind an httptest server, with fakes.
type liveEnv struct {
	live  *Live
	srv   *httptest.Server
	dir   *fakeDir
	audit *fakeAudit
}

func newLiveEnv(t testing.TB, cfg LiveConfig) *liveEnv {
	t.Helper()
	if cfg.ICEUDPListen == "" {
		cfg.ICEUDPListen = "127.0.0.1:0"
	}
	if cfg.ICETCPListen == "" {
		cfg.ICETCPListen = "127.0.0.1:0"
	}
	cfg.IncludeLoopback = true
	e := &liveEnv{dir: &fakeDir{}, audit: &fakeAudit{}}
	l, err := NewLive(cfg, LiveDeps{Streams: e.dir, Cameras: e.dir, Auth: fakeAuth{}, Audit: e.audit, Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	e.live = l
	mux := http.NewServeMux()
	l.Register(mux)
	e.srv = httptest.NewServer(mux)
	t.Cleanup(func() {
		e.srv.Close()
		l.Close()
	})
	return e
}

// testViewer is an in-process WebRTC receiver.
type testViewer struct {
	pc       *webrtc.PeerConnection
	location string
	note     string

	mu         sync.Mutex
	frames     []recvFrame
	audioPkts  int
	firstFrame time.Time
	wg         sync.WaitGroup
	gotFrame   chan struct{}
}

// recvFrame is one access unit received, depacketized.
type recvFrame struct {
	n   int64
	key bool
	ts  uint32
	at  time.Time
}

// viewerCodecs builds a receiver's media engine: H.264 only, or H.264 and
// H.265, plus PCMU/PCMA/Opus audio.
func viewerAPI(t testing.TB, withH265 bool) *webrtc.API {
	t.Helper()
	se := webrtc.SettingEngine{}
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeTCP4})
	return viewerAPIWith(t, withH265, se)
}

// viewerAPIWith is viewerAPI with the receiver's network settings.
func viewerAPIWith(t testing.TB, withH265 bool, se webrtc.SettingEngine) *webrtc.API {
	t.Helper()
	m := &webrtc.MediaEngine{}
	fb := []webrtc.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}}
	reg := func(mime string, pt uint8, fmtp string, typ webrtc.RTPCodecType, rate uint32, ch uint16) {
		if err := m.RegisterCodec(webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: mime, ClockRate: rate, Channels: ch, SDPFmtpLine: fmtp, RTCPFeedback: fb},
			PayloadType:        webrtc.PayloadType(pt),
		}, typ); err != nil {
			t.Fatal(err)
		}
	}
	reg(webrtc.MimeTypeH264, 102, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f", webrtc.RTPCodecTypeVideo, 90000, 0)
	reg(webrtc.MimeTypeH264, 112, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=64001f", webrtc.RTPCodecTypeVideo, 90000, 0)
	if withH265 {
		reg(webrtc.MimeTypeH265, 49, "level-id=93;profile-id=1;tier-flag=0;tx-mode=SRST", webrtc.RTPCodecTypeVideo, 90000, 0)
	}
	reg(webrtc.MimeTypeOpus, 111, "minptime=10;useinbandfec=1", webrtc.RTPCodecTypeAudio, 48000, 2)
	reg(webrtc.MimeTypePCMU, 0, "", webrtc.RTPCodecTypeAudio, 8000, 0)
	reg(webrtc.MimeTypePCMA, 8, "", webrtc.RTPCodecTypeAudio, 8000, 0)
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		t.Fatal(err)
	}
	se.SetIncludeLoopbackCandidate(true)
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
}

// newTestViewer makes a receiver with video (and audio) recvonly transceivers
// and returns it with its offer.
func newTestViewer(t testing.TB, api *webrtc.API, audio bool) (*testViewer, string) {
	t.Helper()
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	v := &testViewer{pc: pc, gotFrame: make(chan struct{})}
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	if audio {
		if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeAudio, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		v.wg.Add(1)
		defer v.wg.Done()
		v.readTrack(tr)
	})
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	return v, pc.LocalDescription().SDP
}

func (v *testViewer) readTrack(tr *webrtc.TrackRemote) {
	mime := strings.ToLower(tr.Codec().MimeType)
	if !strings.HasPrefix(mime, "video/") {
		for {
			if _, _, err := tr.ReadRTP(); err != nil {
				return
			}
			v.mu.Lock()
			v.audioPkts++
			v.mu.Unlock()
		}
	}
	codec := ingest.CodecH264
	var h264d *rtph264.Decoder
	var h265d *rtph265.Decoder
	if mime == strings.ToLower(webrtc.MimeTypeH265) {
		codec = ingest.CodecH265
		h265d = &rtph265.Decoder{}
		_ = h265d.Init()
	} else {
		h264d = &rtph264.Decoder{}
		_ = h264d.Init()
	}
	for {
		pkt, _, err := tr.ReadRTP()
		if err != nil {
			return
		}
		var au [][]byte
		if h264d != nil {
			au, err = h264d.Decode(pkt)
		} else {
			au, err = h265d.Decode(pkt)
		}
		if err != nil {
			continue // more packets needed, or a frame lost
		}
		n, key, ok := frameNumber(codec, au)
		if !ok {
			continue
		}
		now := time.Now()
		v.mu.Lock()
		v.frames = append(v.frames, recvFrame{n: n, key: key, ts: pkt.Timestamp, at: now})
		if len(v.frames) == 1 {
			v.firstFrame = now
			close(v.gotFrame)
		}
		v.mu.Unlock()
	}
}

func (v *testViewer) snapshot() []recvFrame {
	v.mu.Lock()
	defer v.mu.Unlock()
	return slices.Clone(v.frames)
}

func (v *testViewer) close() {
	_ = v.pc.GracefulClose()
	v.wg.Wait()
}

// postOffer sends an offer as user and returns the response status, body and
// headers.
func postOffer(t testing.TB, base, camera, user, contentType, sdp string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest("POST", base+"/whep/cameras/"+camera, strings.NewReader(sdp))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	if user != "" {
		req.Header.Set("X-Test-User", user)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// answer posts the viewer's offer as user and applies the answer.
func (v *testViewer) answer(base, camera, user, offer string) error {
	req, err := http.NewRequest("POST", base+"/whep/cameras/"+camera, strings.NewReader(offer))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/sdp")
	req.Header.Set("X-Test-User", user)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("offer: %d %s", resp.StatusCode, b)
	}
	v.location, v.note = resp.Header.Get("Location"), resp.Header.Get(whepNoteHeader)
	if err := v.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(b)}); err != nil {
		return fmt.Errorf("answer: %w", err)
	}
	return nil
}

// connect makes a viewer watch camera as user; it fails the test unless
// the offer is answered.
func connect(t testing.TB, api *webrtc.API, base, camera, user string, audio bool) *testViewer {
	t.Helper()
	v, offer := newTestViewer(t, api, audio)
	if err := v.answer(base, camera, user, offer); err != nil {
		v.close()
		t.Fatal(err)
	}
	return v
}

func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var errNoFrame = errors.New("no frame within 20 s")

// testLogger discards logs unless KUZET_TEST_LOG=1, which sends them to
// stderr (pion logs from its goroutines after a test ends, so not to t.Log).
func testLogger(testing.TB) *slog.Logger {
	if os.Getenv("KUZET_TEST_LOG") == "1" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}
