package ingest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/auth"
)

func TestSourceH265WithAAC(t *testing.T) {
	t.Parallel()
	cam := startCam(t, camOptions{video: "H265", audio: "AAC"})
	h := runSource(t, SourceConfig{URL: cam.URL()})
	tr := checkSessionStart(t, h, CodecH265)
	a := tr.Audio
	if a == nil || a.Codec != CodecAAC || a.SampleRate != 16000 || a.Channels != 1 || a.ClockRate != 16000 || a.ID != 1 || len(a.AudioConfig) == 0 {
		t.Fatalf("audio track = %+v", a)
	}
	var video []*Unit
	var audio []*Unit
	deadline := time.Now().Add(10 * time.Second)
	for len(video) < 30 || len(audio) < 20 {
		it, err := h.next(time.Until(deadline))
		if err != nil {
			t.Fatalf("%d video, %d audio units: %v", len(video), len(audio), err)
		}
		if it.Event != nil {
			t.Fatalf("unexpected event %+v", it.Event)
		}
		u := it.Unit
		switch u.Track {
		case tr.Video:
			video = append(video, u)
		case tr.Audio:
			if !u.Key || u.Payload == nil || u.NALUs != nil || u.Size != len(u.Payload) {
				t.Fatalf("audio unit %+v", u)
			}
			audio = append(audio, u)
		default:
			t.Fatalf("unit of unknown track %p", u.Track)
		}
	}
	checkUnits(t, video, CodecH265)
	for i := 1; i < len(audio); i++ {
		if d := audio[i].PTS - audio[i-1].PTS; d != 1024 {
			t.Fatalf("audio PTS step %d, want 1024", d)
		}
	}
	// Audio and video share the run's time origin: their PTS, in seconds,
	// agree with their receive times to within a few frames.
	vs := float64(video[len(video)-1].PTS) / 90000
	as := float64(audio[len(audio)-1].PTS) / 16000
	dr := video[len(video)-1].Received.Sub(audio[len(audio)-1].Received).Seconds()
	if d := (vs - as) - dr; d > 0.2 || d < -0.2 {
		t.Errorf("audio/video drift %.3fs (video %.3fs, audio %.3fs, received %.3fs apart)", d, vs, as, dr)
	}
	hl := h.src.Health()
	if hl.VideoCodec != CodecH265 || hl.AudioCodec != CodecAAC {
		t.Errorf("health codecs %s/%s", hl.VideoCodec, hl.AudioCodec)
	}
}

func TestSourceG711(t *testing.T) {
	t.Parallel()
	cam := startCam(t, camOptions{audio: "PCMU"})
	h := runSource(t, SourceConfig{URL: cam.URL()})
	tr := checkSessionStart(t, h, CodecH264)
	if tr.Audio == nil || tr.Audio.Codec != CodecPCMU || tr.Audio.ClockRate != 8000 {
		t.Fatalf("audio track %+v", tr.Audio)
	}
	n := 0
	deadline := time.Now().Add(5 * time.Second)
	for n < 10 {
		it, err := h.next(time.Until(deadline))
		if err != nil {
			t.Fatal(err)
		}
		if it.Unit != nil && it.Unit.Track == tr.Audio {
			if len(it.Unit.Payload) != 160 {
				t.Fatalf("G.711 unit of %d bytes, want 160", len(it.Unit.Payload))
			}
			n++
		}
	}
}

func TestSourceAuth(t *testing.T) {
	t.Parallel()
	const user, pass = "operator", "s3cret-Pa55"
	for _, tc := range []struct {
		name    string
		methods []auth.VerifyMethod
		pass    string
		want    State
	}{
		{"basic", []auth.VerifyMethod{auth.VerifyMethodBasic}, pass, StateOnline},
		{"digest", []auth.VerifyMethod{auth.VerifyMethodDigestMD5}, pass, StateOnline},
		{"wrong password", nil, "wrong-Pa55word", StateOffline},
		{"no credentials", nil, "", StateOffline},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cam := startCam(t, camOptions{user: user, pass: pass, authMethods: tc.methods})
			cfg := SourceConfig{URL: cam.URL(), Password: tc.pass}
			if tc.pass != "" {
				cfg.Username = user
			}
			h := runSource(t, cfg)
			if tc.want == StateOnline {
				checkSessionStart(t, h, CodecH264)
				h.units(5, 5*time.Second)
				return
			}
			hl := h.waitHealth(5*time.Second, func(h Health) bool { return h.State == StateOffline })
			if hl.Reason != OfflineAuthFailed {
				t.Fatalf("reason = %q (%s), want auth_failed", hl.Reason, hl.Detail)
			}
			e := h.event(time.Second)
			if e.Reason != ReasonCameraOffline || e.Tracks != nil || !strings.HasPrefix(e.Detail, "auth_failed") {
				t.Fatalf("event = %+v", e)
			}
			h.stop()
			logs := h.logs.String()
			if tc.pass != "" && (strings.Contains(logs, tc.pass) || strings.Contains(hl.Detail, tc.pass)) {
				t.Fatalf("password in logs or detail:\n%s", logs)
			}
			if !strings.Contains(logs, "auth_failed") {
				t.Fatalf("offline reason not logged:\n%s", logs)
			}
		})
	}
}

func TestSourceOfflineReasons(t *testing.T) {
	t.Parallel()
	cam := startCam(t, camOptions{})
	mjpeg := startCam(t, camOptions{video: "MJPEG"})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	for _, tc := range []struct {
		name   string
		url    string
		reason OfflineReason
		detail string
	}{
		{"not found", "rtsp://" + cam.addr + "/nope", OfflineNotFound, ""},
		{"refused", "rtsp://" + closed + "/cam", OfflineRefused, ""},
		{"unsupported codec", mjpeg.URL(), OfflineUnsupportedCodec, "M-JPEG"},
		{"unreachable", "rtsp://camera.invalid:554/cam", OfflineUnreachable, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := runSource(t, SourceConfig{URL: tc.url, BackoffMin: 100 * time.Millisecond, BackoffMax: 200 * time.Millisecond})
			hl := h.waitHealth(10*time.Second, func(h Health) bool { return h.State == StateOffline })
			if hl.Reason != tc.reason || !strings.Contains(hl.Detail, tc.detail) {
				t.Fatalf("offline %q (%s), want %q naming %q", hl.Reason, hl.Detail, tc.reason, tc.detail)
			}
			// One offline event per outage, however many retries.
			e := h.event(time.Second)
			if e.Reason != ReasonCameraOffline {
				t.Fatalf("event %+v", e)
			}
			h.waitHealth(5*time.Second, func(h Health) bool { return h.Reconnects >= 2 })
			if it, err := h.next(300 * time.Millisecond); err == nil {
				t.Fatalf("second item after retries: %+v", it)
			}
		})
	}
}

func TestSourceStallAndRecover(t *testing.T) {
	t.Parallel()
	cam := startCam(t, camOptions{})
	h := runSource(t, SourceConfig{URL: cam.URL(), ReadTimeout: 2 * time.Second, BackoffMin: 200 * time.Millisecond})
	checkSessionStart(t, h, CodecH264)
	h.units(10, 5*time.Second)
	stalled := time.Now()
	cam.Stall(4 * time.Second)
	e := h.eventReason(ReasonCameraOffline, 10*time.Second)
	took := time.Since(stalled)
	if !strings.HasPrefix(e.Detail, "timeout") || e.Tracks != nil {
		t.Fatalf("offline event %+v", e)
	}
	if took > 4*time.Second { // 2 s, and slack for a loaded machine
		t.Fatalf("offline %v after the stall with a 2s read timeout", took)
	}
	t.Logf("offline %v after the stall began (read timeout 2s)", took)
	e = h.event(10 * time.Second)
	if e.Reason != ReasonDiscontinuity || e.Detail != DetailSessionStarted || e.Tracks == nil {
		t.Fatalf("event after recovery %+v", e)
	}
	us := h.units(5, 5*time.Second)
	if !us[0].Key || us[0].PTS != 0 {
		t.Fatalf("first unit after recovery: key %v PTS %d", us[0].Key, us[0].PTS)
	}
	if hl := h.src.Health(); hl.Reconnects < 1 || hl.State != StateOnline {
		t.Fatalf("health %+v", hl)
	}
}

func TestSourceServerRestart(t *testing.T) {
	t.Parallel()
	cam := startCam(t, camOptions{})
	h := runSource(t, SourceConfig{URL: cam.URL()})
	tr1 := checkSessionStart(t, h, CodecH264)
	h.units(10, 5*time.Second)
	addr := cam.addr
	cam.Close()
	e := h.eventReason(ReasonCameraOffline, 5*time.Second)
	if !strings.HasPrefix(e.Detail, "eof") {
		t.Errorf("offline detail %q, want eof", e.Detail)
	}
	if hl := h.src.Health(); hl.State != StateOffline || hl.Reason != OfflineEOF {
		t.Errorf("health after close %s/%s", hl.State, hl.Reason)
	}
	time.Sleep(300 * time.Millisecond)
	restarted := time.Now()
	cam2 := startCam(t, camOptions{addr: addr})
	tr2 := checkSessionStart(t, h, CodecH264)
	us := h.units(1, 10*time.Second)
	took := time.Since(restarted)
	if tr2 == tr1 || tr2.Video == tr1.Video {
		t.Error("a new session reused the old Tracks")
	}
	// Keyframes come every second; the backoff after a short session is
	// at most 2s.
	if took > 6*time.Second {
		t.Fatalf("frames resumed %v after the restart", took)
	}
	t.Logf("frames resumed %v after the camera restarted (camera sent %d frames)", took, cam2.Frames())
	if !us[0].Key {
		t.Fatal("resumed on a non-key unit")
	}
}

func TestSourceTimestampJump(t *testing.T) {
	t.Parallel()
	cam := startCam(t, camOptions{audio: "AAC"})
	h := runSource(t, SourceConfig{URL: cam.URL()})
	tr := checkSessionStart(t, h, CodecH264)
	h.units(40, 5*time.Second)
	cam.JumpTimestamp(90000 * 3600)
	e := h.event(5 * time.Second)
	if e.Reason != ReasonDiscontinuity || e.Detail != DetailTimestampJump || e.Tracks != tr {
		t.Fatalf("event %+v, want a timestamp jump with the same tracks", e)
	}
	// Exactly one: the audio track jumps too, and must not break the run
	// again.
	deadline := time.Now().Add(3 * time.Second)
	var first *Unit
	for time.Now().Before(deadline) {
		it, err := h.next(time.Until(deadline))
		if err != nil {
			break
		}
		if it.Event != nil {
			t.Fatalf("second event %+v", it.Event)
		}
		if first == nil && it.Unit.Track == tr.Video {
			first = it.Unit
		}
	}
	if first == nil || !first.Key || first.PTS != 0 {
		t.Fatalf("new run starts with %+v, want a keyframe at PTS 0", first)
	}
	if hl := h.src.Health(); hl.Discontinuities != 1 {
		t.Fatalf("discontinuities = %d", hl.Discontinuities)
	}
}

func TestSourceSequence(t *testing.T) {
	t.Parallel()
	cam := startCam(t, camOptions{})
	h := runSource(t, SourceConfig{URL: cam.URL()})
	checkSessionStart(t, h, CodecH264)
	h.units(10, 5*time.Second)
	// A small gap is loss: counted, the unit in progress dropped.
	cam.SkipSequence(3)
	hl := h.waitHealth(3*time.Second, func(h Health) bool { return h.PacketsLost > 0 })
	if hl.PacketsLost != 3 || hl.Discontinuities != 0 {
		t.Fatalf("lost %d, discontinuities %d", hl.PacketsLost, hl.Discontinuities)
	}
	// A large one breaks the timeline, once.
	cam.SkipSequence(5000)
	e := h.event(5 * time.Second)
	if e.Reason != ReasonDiscontinuity || e.Detail != DetailSequenceGap {
		t.Fatalf("event %+v", e)
	}
	us := h.units(30, 5*time.Second)
	if !us[0].Key || us[0].PTS != 0 {
		t.Fatal("new run does not start at a keyframe")
	}
	if it, err := h.next(200 * time.Millisecond); err == nil && it.Event != nil {
		t.Fatalf("second event %+v", it.Event)
	}
}

func TestSourceParameterChangeAndBFrames(t *testing.T) {
	t.Parallel()
	cam := startCam(t, camOptions{noSDPParams: true})
	h := runSource(t, SourceConfig{URL: cam.URL()})
	tr := checkSessionStart(t, h, CodecH264) // parameter sets in-band only
	h.units(10, 5*time.Second)
	cam.SwitchClip(loadAUs(t, "testdata/h264_bframes_320x240.h264", CodecH264))
	e := h.event(5 * time.Second)
	if e.Reason != ReasonDiscontinuity || e.Detail != DetailParameterSets || e.Tracks == nil || e.Tracks.Video == tr.Video {
		t.Fatalf("event %+v, want new tracks for new parameter sets", e)
	}
	if string(e.Tracks.Video.SPS) == string(tr.Video.SPS) {
		t.Fatal("same SPS in the new track")
	}
	us := h.units(60, 5*time.Second)
	reordered := false
	for i, u := range us {
		if u.Track != e.Tracks.Video {
			t.Fatal("unit of the old track after the change")
		}
		if u.DTS > u.PTS {
			t.Fatalf("unit %d: DTS %d after PTS %d", i, u.DTS, u.PTS)
		}
		if i > 0 && u.DTS <= us[i-1].DTS {
			t.Fatalf("unit %d: DTS %d not after %d", i, u.DTS, us[i-1].DTS)
		}
		if u.DTS != u.PTS {
			reordered = true
		}
	}
	if !reordered || !h.src.Health().HasBFrames {
		t.Fatal("B-frames not detected")
	}
}

func TestSourceOversizeUnit(t *testing.T) {
	t.Parallel()
	cam := startCam(t, camOptions{})
	h := runSource(t, SourceConfig{URL: cam.URL(), MaxAccessUnit: 256 << 10})
	checkSessionStart(t, h, CodecH264)
	h.units(5, 5*time.Second)
	// An endless fragmented NAL unit: a FU-A start and then continuation
	// fragments, never an end, 420 KB in all, under one timestamp.
	cam.Inject(func(c *testCam) {
		ts := uint32(999)
		frag := make([]byte, 1400)
		for i := range frag {
			frag[i] = byte(i)
		}
		for i := 0; i < 300; i++ {
			hdr := byte(0x05) // IDR
			if i == 0 {
				hdr |= 0x80 // start
			}
			p := append([]byte{0x7c, hdr}, frag...)
			c.writeVideo(newPacket(96, ts, false, p), time.Now())
		}
	})
	hl := h.waitHealth(5*time.Second, func(h Health) bool { return h.OversizeUnits > 0 })
	if hl.OversizeUnits != 1 {
		t.Fatalf("oversize units %d, want 1", hl.OversizeUnits)
	}
	before := hl.Frames
	h.waitHealth(5*time.Second, func(h Health) bool { return h.Frames > before+25 })
	// Everything queued so far (the camera keeps sending).
	for n := h.r.Len(); n > 0; n-- {
		it, err := h.next(time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if it.Unit != nil && it.Unit.Size > 256<<10 {
			t.Fatalf("unit of %d bytes published", it.Unit.Size)
		}
	}
}

// Cameras that never set the marker bit: units end at the next timestamp.
func TestSourceNoMarker(t *testing.T) {
	t.Parallel()
	cam := startCam(t, camOptions{noMarker: true})
	h := runSource(t, SourceConfig{URL: cam.URL()})
	checkSessionStart(t, h, CodecH264)
	checkUnits(t, h.units(30, 5*time.Second), CodecH264)
}

func TestSourceUDP(t *testing.T) {
	t.Parallel()
	for _, tr := range []Transport{TransportUDP, TransportAuto} {
		t.Run(string(tr), func(t *testing.T) {
			t.Parallel()
			cam := startCam(t, camOptions{udp: true})
			h := runSource(t, SourceConfig{URL: cam.URL(), Transport: tr})
			checkSessionStart(t, h, CodecH264)
			checkUnits(t, h.units(25, 5*time.Second), CodecH264)
			if hl := h.src.Health(); hl.Transport != "udp" {
				t.Fatalf("transport %q", hl.Transport)
			}
		})
	}
}

func TestSourceRTSPS(t *testing.T) {
	t.Parallel()
	cert, pool := selfSigned(t)
	cam := startCam(t, camOptions{tls: &tls.Config{Certificates: []tls.Certificate{cert}}})
	t.Run("trusted", func(t *testing.T) {
		h := runSource(t, SourceConfig{URL: cam.URL(), TLSConfig: &tls.Config{RootCAs: pool}})
		checkSessionStart(t, h, CodecH264)
		h.units(5, 5*time.Second)
	})
	t.Run("untrusted", func(t *testing.T) {
		h := runSource(t, SourceConfig{URL: cam.URL()})
		hl := h.waitHealth(5*time.Second, func(h Health) bool { return h.State == StateOffline })
		if hl.Reason != OfflineTLS {
			t.Fatalf("reason %q (%s), want tls", hl.Reason, hl.Detail)
		}
	})
}

func TestSourceClockOffset(t *testing.T) {
	t.Parallel()
	cam := startCam(t, camOptions{clockOffset: 5 * time.Second, sendSR: true})
	h := runSource(t, SourceConfig{URL: cam.URL()})
	checkSessionStart(t, h, CodecH264)
	hl := h.waitHealth(5*time.Second, func(h Health) bool { return h.ClockOffsetKnown })
	if d := hl.ClockOffset - 5*time.Second; d > 200*time.Millisecond || d < -200*time.Millisecond {
		t.Fatalf("clock offset %v, want about 5s", hl.ClockOffset)
	}
	// Units after the first sender report carry the camera's wall time.
	for _, u := range h.units(60, 5*time.Second)[40:] {
		if d := u.Wall.Sub(u.Received) - 5*time.Second; d > 200*time.Millisecond || d < -200*time.Millisecond {
			t.Fatalf("wall %v vs received %v", u.Wall, u.Received)
		}
	}
}

func TestSourceGarbage(t *testing.T) {
	t.Parallel()
	cam := startCam(t, camOptions{audio: "AAC"})
	h := runSource(t, SourceConfig{URL: cam.URL()})
	checkSessionStart(t, h, CodecH264)
	h.units(5, 5*time.Second)
	cam.Inject(func(c *testCam) {
		b := make([]byte, 64)
		for i := 0; i < 200; i++ {
			_, _ = rand.Read(b)
			p := newPacket(96, uint32(i*7919), i%3 == 0, append([]byte(nil), b[:1+i%63]...))
			c.writeVideo(p, time.Now())
		}
	})
	before := h.src.Health().Frames
	hl := h.waitHealth(5*time.Second, func(h Health) bool { return h.Frames > before+50 })
	t.Logf("after 200 garbage packets: %d decode errors, %d discontinuities", hl.DecodeErrors, hl.Discontinuities)
	if hl.State != StateOnline {
		t.Fatalf("state %s", hl.State)
	}
}

func TestSourceConfigErrors(t *testing.T) {
	st := NewStream(StreamConfig{Camera: "c"}, nil, nil)
	for _, tc := range []struct {
		name string
		cfg  SourceConfig
		want string
	}{
		{"no camera", SourceConfig{URL: "rtsp://h/x"}, "camera id"},
		{"bad scheme", SourceConfig{Camera: "c", URL: "http://h/x"}, "scheme"},
		{"credentials in url", SourceConfig{Camera: "c", URL: "rtsp://u:topsecret@h/x"}, "credentials"},
		{"bad transport", SourceConfig{Camera: "c", URL: "rtsp://h/x", Transport: "sctp"}, "transport"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewSource(tc.cfg, st, nil, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "topsecret") {
				t.Fatalf("password in error %q", err)
			}
		})
	}
}

func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "camera"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(c)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}
