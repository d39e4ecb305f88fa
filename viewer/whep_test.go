package viewer

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"
	"go.uber.org/goleak"

	"github.com/kuzet/kuzet/ingest"
	"github.com/kuzet/kuzet/registry"
)

// startCam adds a synthetic camera of facility f16 publishing in real time
// until the test ends; warm frames are published at once (from the past)
// so that the GOP cache holds a partial GOP.
func startCam(t *testing.T, e *liveEnv, id string, codec, audio ingest.Codec, warm int) *synthCam {
	t.Helper()
	c := newSynthCam(id, codec, audio)
	e.dir.add(LiveCamera{ID: id, Name: "Camera " + id, Facility: "f16", Zone: "z1", ZoneName: "Block A"}, c.stream)
	c.start(time.Now())
	for range warm {
		c.next(time.Now())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		c.stream.Close()
	})
	return c
}

func TestWHEPViewerStartsFromGOPAndCatchesUp(t *testing.T) {
	e := newLiveEnv(t, LiveConfig{})
	// 30 frames of a 50-frame GOP are cached: 1.2 s of video.
	startCam(t, e, "c1", ingest.CodecH264, "", 30)
	api := viewerAPI(t, false)
	t0 := time.Now()
	v := connect(t, api, e.srv.URL, "c1", "op16", false)
	defer v.close()
	select {
	case <-v.gotFrame:
	case <-time.After(5 * time.Second):
		t.Fatal("no frame within 5 s")
	}
	waitFor(t, 5*time.Second, "live frames", func() bool { return len(v.snapshot()) >= 45 })
	fs := v.snapshot()
	t.Logf("offer to first frame: %v", fs[0].at.Sub(t0).Round(time.Millisecond))
	if !fs[0].key || fs[0].n != 0 {
		t.Fatalf("first frame is #%d key=%v, want the cached keyframe #0", fs[0].n, fs[0].key)
	}
	for i := 1; i < len(fs); i++ {
		if fs[i].n != fs[i-1].n+1 {
			t.Fatalf("frame %d follows %d: frames lost or reordered", fs[i].n, fs[i-1].n)
		}
	}
	// The 30 cached frames (1.2 s) leave paced at 10× (~120 ms, not a
	// burst), with timestamps 10× closer than real; then live frames
	// advance by the real 40 ms (3600 ticks).
	catchUp := fs[29].at.Sub(fs[0].at)
	if catchUp < 80*time.Millisecond || catchUp > 800*time.Millisecond {
		t.Errorf("cached GOP took %v to arrive; want about 116 ms (paced at 10x)", catchUp)
	}
	if d := fs[5].ts - fs[4].ts; d != 360 {
		t.Errorf("catch-up timestamps advance by %d ticks, want 360", d)
	}
	last := len(fs) - 1
	if d := fs[last].ts - fs[last-1].ts; d != 3600 {
		t.Errorf("live timestamps advance by %d ticks, want 3600", d)
	}
	if got := e.audit.find(registry.AuditLiveStart, registry.OutcomeStarted); len(got) != 1 || got[0].Actor != "op16" ||
		got[0].Facility != "f16" || got[0].Objects[0] != "camera:c1" {
		t.Errorf("live.start audit rows: %+v", got)
	}
}

func TestWHEPRefusals(t *testing.T) {
	e := newLiveEnv(t, LiveConfig{})
	startCam(t, e, "c1", ingest.CodecH264, "", 5)
	startCam(t, e, "c265", ingest.CodecH265, "", 5)
	off := newSynthCam("off", ingest.CodecH264, "")
	e.dir.add(LiveCamera{ID: "off", Name: "Offline", Facility: "f16"}, off.stream)
	api := viewerAPI(t, false)
	v, offer := newTestViewer(t, api, false)
	v.close()
	junkSeeds, err := os.ReadDir("testdata/fuzz/FuzzWHEPOffer")
	if err != nil {
		t.Fatal(err)
	}
	if len(junkSeeds) == 0 {
		t.Fatal("no fuzz seeds")
	}
	tests := []struct {
		name, camera, user, ctype, body string
		status                          int
		typ, detail                     string
	}{
		{"no session", "c1", "", "application/sdp", offer, 401, "unauthenticated", ""},
		{"other facility", "c1", "op27", "application/sdp", offer, 403, "forbidden", ""},
		{"role without live view", "c1", "inv16", "application/sdp", offer, 403, "forbidden", ""},
		{"unknown camera", "nope", "op16", "application/sdp", offer, 404, "not-found", ""},
		{"wrong content type", "c1", "op16", "application/json", offer, 415, "unsupported-media-type", ""},
		{"empty", "c1", "op16", "application/sdp", "", 400, "bad-offer", "empty"},
		{"not sdp", "c1", "op16", "application/sdp", "hello, camera", 400, "bad-offer", "not valid SDP"},
		{"no video", "c1", "op16", "application/sdp", removeSection(offer, "m=video"), 400, "bad-offer", "no video"},
		{"no fingerprint", "c1", "op16", "application/sdp", dropLines(offer, "a=fingerprint"), 400, "bad-offer", "fingerprint"},
		{"no ice credentials", "c1", "op16", "application/sdp", dropLines(offer, "a=ice-pwd"), 400, "bad-offer", "ICE"},
		{"huge", "c1", "op16", "application/sdp", strings.Repeat("a=x\r\n", 20000), 413, "bad-offer", ""},
		{"h265 camera, h264 browser", "c265", "op16", "application/sdp", offer, 422, "codec-not-playable", "not playable in this browser"},
		{"camera offline", "off", "op16", "application/sdp", offer, 503, "camera-offline", "offline"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body, h := postOffer(t, e.srv.URL, tc.camera, tc.user, tc.ctype, tc.body)
			if code != tc.status {
				t.Fatalf("status %d, want %d: %s", code, tc.status, body)
			}
			if ct := h.Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("content type %q", ct)
			}
			var p liveProblem
			if err := json.Unmarshal([]byte(body), &p); err != nil {
				t.Fatal(err)
			}
			if p.Type != "urn:kuzet:problem:"+tc.typ || !strings.Contains(p.Detail, tc.detail) {
				t.Fatalf("problem %+v, want type %s with %q", p, tc.typ, tc.detail)
			}
		})
	}
	for _, s := range junkSeeds {
		t.Run("seed "+s.Name(), func(t *testing.T) {
			b, err := os.ReadFile("testdata/fuzz/FuzzWHEPOffer/" + s.Name())
			if err != nil {
				t.Fatal(err)
			}
			sdp := fuzzSeedBytes(t, b)
			code, body, _ := postOffer(t, e.srv.URL, "c1", "op16", "application/sdp", string(sdp))
			if code != http.StatusCreated && code != http.StatusBadRequest && code != http.StatusRequestEntityTooLarge {
				t.Fatalf("status %d: %s", code, body)
			}
		})
	}
	denied := e.audit.find(registry.AuditLiveStart, registry.OutcomeDenied)
	if len(denied) != 2 || denied[0].Actor != "op27" || denied[0].Facility != "f16" || denied[1].Actor != "inv16" {
		t.Errorf("denied live.start rows: %+v", denied)
	}
	// Sessions from seeds that were answered end at shutdown; none is
	// left behind once the service closes.
	e.live.Close()
	if n := e.live.Sessions(); n != 0 {
		t.Errorf("%d sessions left after Close", n)
	}
}

// removeSection drops the media section starting with prefix.
func removeSection(sdp, prefix string) string {
	var out []string
	skip := false
	for _, l := range strings.Split(sdp, "\r\n") {
		if strings.HasPrefix(l, "m=") {
			skip = strings.HasPrefix(l, prefix)
		}
		if !skip && l != "" {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\r\n") + "\r\n"
}

func dropLines(sdp, prefix string) string {
	var out []string
	for _, l := range strings.Split(sdp, "\r\n") {
		if !strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\r\n")
}

func TestWHEPAuditFailureRefusesView(t *testing.T) {
	e := newLiveEnv(t, LiveConfig{})
	startCam(t, e, "c1", ingest.CodecH264, "", 5)
	e.audit.setFail(true)
	v, offer := newTestViewer(t, viewerAPI(t, false), false)
	defer v.close()
	code, body, _ := postOffer(t, e.srv.URL, "c1", "op16", "application/sdp", offer)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "audit-unavailable") {
		t.Fatalf("status %d: %s", code, body)
	}
	if n := e.live.Sessions(); n != 0 {
		t.Fatalf("%d sessions after a refused view", n)
	}
}

func TestWHEPDeleteEndsSession(t *testing.T) {
	verifyNoLeaks(t)
	e := newLiveEnv(t, LiveConfig{})
	startCam(t, e, "c1", ingest.CodecH264, "", 5)
	api := viewerAPI(t, false)
	v := connect(t, api, e.srv.URL, "c1", "op16", false)
	<-v.gotFrame
	if !strings.HasPrefix(v.location, "/whep/sessions/") {
		t.Fatalf("location %q", v.location)
	}
	do := func(method, user string) int {
		req, _ := http.NewRequest(method, e.srv.URL+v.location, nil)
		req.Header.Set("X-Test-User", user)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := do("PATCH", "op16"); c != http.StatusMethodNotAllowed {
		t.Errorf("PATCH: %d, want 405", c)
	}
	if c := do("DELETE", "op27"); c != http.StatusNotFound {
		t.Errorf("DELETE by another user: %d, want 404", c)
	}
	if c := do("DELETE", "op16"); c != http.StatusOK {
		t.Errorf("DELETE: %d, want 200", c)
	}
	waitFor(t, 5*time.Second, "session end", func() bool { return e.live.Sessions() == 0 })
	stops := e.audit.find(registry.AuditLiveStop, "")
	if len(stops) != 1 || !strings.Contains(stops[0].Detail, "viewer left") || stops[0].To.Before(stops[0].From) {
		t.Errorf("live.stop rows: %+v", stops)
	}
	v.close()
}

func TestWHEPSessionsEndWhenPeersFailOrVanish(t *testing.T) {
	verifyNoLeaks(t)
	e := newLiveEnv(t, LiveConfig{ConnectTimeout: time.Second})
	startCam(t, e, "c1", ingest.CodecH264, "", 5)
	api := viewerAPI(t, false)

	// A viewer that never applies the answer: closed after ConnectTimeout.
	v1, offer := newTestViewer(t, api, false)
	code, body, _ := postOffer(t, e.srv.URL, "c1", "op16", "application/sdp", offer)
	if code != http.StatusCreated {
		t.Fatalf("offer: %d %s", code, body)
	}
	// A viewer that connects and then closes its peer connection without
	// DELETE.
	v2 := connect(t, api, e.srv.URL, "c1", "op16", false)
	<-v2.gotFrame
	if n := e.live.Sessions(); n != 2 {
		t.Fatalf("%d sessions, want 2", n)
	}
	v2.close()
	waitFor(t, 5*time.Second, "both sessions to end", func() bool { return e.live.Sessions() == 0 })
	v1.close()
	causes := ""
	for _, r := range e.audit.find(registry.AuditLiveStop, "") {
		causes += r.Detail + "\n"
	}
	if !strings.Contains(causes, "did not connect in time") || !strings.Contains(causes, "peer connection") {
		t.Errorf("stop causes:\n%s", causes)
	}
}

// verifyNoLeaks checks, after every cleanup of the test (it runs last),
// that the test left no goroutine behind: sessions, pion's peer
// connections, readers, the ICE ports.
func verifyNoLeaks(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
}

func TestWHEPCodecs(t *testing.T) {
	e := newLiveEnv(t, LiveConfig{})
	startCam(t, e, "h265", ingest.CodecH265, "", 5)
	startCam(t, e, "pcmu", ingest.CodecH264, ingest.CodecPCMU, 5)
	startCam(t, e, "aac", ingest.CodecH264, ingest.CodecAAC, 5)

	t.Run("H.265 to a browser that offers it", func(t *testing.T) {
		v := connect(t, viewerAPI(t, true), e.srv.URL, "h265", "op16", false)
		defer v.close()
		if !strings.Contains(v.pc.RemoteDescription().SDP, "H265/90000") {
			t.Fatalf("answer without H265:\n%s", v.pc.RemoteDescription().SDP)
		}
		select {
		case <-v.gotFrame:
		case <-time.After(5 * time.Second):
			t.Fatal("no H.265 frame")
		}
		if f := v.snapshot()[0]; !f.key {
			t.Errorf("first H.265 frame not a keyframe: %+v", f)
		}
	})
	t.Run("G.711 passes through", func(t *testing.T) {
		v := connect(t, viewerAPI(t, false), e.srv.URL, "pcmu", "op16", true)
		defer v.close()
		if v.note != "" {
			t.Errorf("note %q", v.note)
		}
		waitFor(t, 5*time.Second, "audio packets", func() bool {
			v.mu.Lock()
			defer v.mu.Unlock()
			return v.audioPkts > 5
		})
	})
	t.Run("AAC is skipped and said so", func(t *testing.T) {
		v := connect(t, viewerAPI(t, false), e.srv.URL, "aac", "op16", true)
		defer v.close()
		if !strings.Contains(v.note, "AAC") {
			t.Errorf("note %q, want it to say AAC is not sent", v.note)
		}
		if strings.Contains(v.pc.RemoteDescription().SDP, "a=sendonly\r\na=msid") && strings.Count(v.pc.RemoteDescription().SDP, "a=sendonly") > 1 {
			t.Errorf("audio sent:\n%s", v.pc.RemoteDescription().SDP)
		}
		<-v.gotFrame
	})
}

func TestWHEPCameraOutageKeepsSession(t *testing.T) {
	e := newLiveEnv(t, LiveConfig{})
	c := newSynthCam("c1", ingest.CodecH264, "")
	e.dir.add(LiveCamera{ID: "c1", Name: "c1", Facility: "f16"}, c.stream)
	c.start(time.Now())
	c.next(time.Now())
	v := connect(t, viewerAPI(t, false), e.srv.URL, "c1", "op16", false)
	defer v.close()
	<-v.gotFrame
	for range 10 {
		time.Sleep(40 * time.Millisecond)
		c.next(time.Now())
	}
	c.offline(time.Now())
	time.Sleep(500 * time.Millisecond)
	c.start(time.Now()) // a new session: frame numbers and PTS restart
	for range 10 {
		c.next(time.Now())
		time.Sleep(40 * time.Millisecond)
	}
	waitFor(t, 3*time.Second, "frames after the outage", func() bool { return len(v.snapshot()) >= 21 })
	fs := v.snapshot()
	// After the outage: frame #0 of the new timeline, a keyframe, with a
	// timestamp after the last one by about the wall time that passed.
	i := 11
	if fs[i].n != 0 || !fs[i].key {
		t.Fatalf("frame after outage: %+v", fs[i])
	}
	gap := time.Duration(fs[i].ts-fs[i-1].ts) * time.Second / 90000
	if gap < 400*time.Millisecond || gap > 2*time.Second {
		t.Errorf("timestamp gap across the outage %v, want about 540ms", gap)
	}
	if e.live.Sessions() != 1 {
		t.Errorf("session ended by the outage")
	}
}

func TestLiveCameraList(t *testing.T) {
	e := newLiveEnv(t, LiveConfig{})
	startCam(t, e, "c1", ingest.CodecH264, "", 1)
	off := newSynthCam("c2", ingest.CodecH264, "")
	e.dir.add(LiveCamera{ID: "c2", Name: "c2", Facility: "f16", Zone: "z2"}, off.stream)
	e.dir.add(LiveCamera{ID: "c27", Name: "c27", Facility: "f27"}, nil)
	get := func(path, user string) (int, map[string]json.RawMessage) {
		req, _ := http.NewRequest("GET", e.srv.URL+path, nil)
		req.Header.Set("X-Test-User", user)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]json.RawMessage
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	tests := []struct {
		name, path, user string
		status           int
		want             string
	}{
		{"own facility", "/api/v1/live/cameras?facility=f16", "op16", 200, `"id":"c1"`},
		{"offline reason", "/api/v1/live/cameras?facility=f16", "op16", 200, `"reason":"refused"`},
		{"other facility", "/api/v1/live/cameras?facility=f27", "op16", 403, ""},
		{"all in scope", "/api/v1/live/cameras", "op27", 200, `"id":"c27"`},
		{"no live role", "/api/v1/live/cameras", "inv16", 403, ""},
		{"anonymous", "/api/v1/live/cameras", "", 401, ""},
		{"facilities", "/api/v1/live/facilities", "op16", 200, `"id":"f16"`},
		{"one camera", "/api/v1/live/cameras/c1", "op16", 200, `"state"`},
		{"one camera out of scope", "/api/v1/live/cameras/c1", "op27", 403, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, m := get(tc.path, tc.user)
			if code != tc.status {
				t.Fatalf("status %d, want %d", code, tc.status)
			}
			all, _ := json.Marshal(m)
			if !strings.Contains(string(all), tc.want) {
				t.Fatalf("%s lacks %s", all, tc.want)
			}
		})
	}
	_, m := get("/api/v1/live/cameras", "op16")
	if strings.Contains(string(m["cameras"]), "c27") || strings.Contains(string(m["cameras"]), "f27") {
		t.Errorf("op16 sees f27 cameras: %s", m["cameras"])
	}
	_, m = get("/api/v1/live/facilities", "op16")
	if strings.Contains(string(m["facilities"]), "f27") {
		t.Errorf("op16 sees facility f27: %s", m["facilities"])
	}
}

func TestWHEPNetwork(t *testing.T) {
	verifyNoLeaks(t)
	t.Run("ICE-TCP when UDP is blocked", func(t *testing.T) {
		e := newLiveEnv(t, LiveConfig{})
		startCam(t, e, "c1", ingest.CodecH264, "", 5)
		se := webrtc.SettingEngine{}
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeTCP4})
		v := connect(t, viewerAPIWith(t, false, se), e.srv.URL, "c1", "op16", false)
		defer v.close()
		select {
		case <-v.gotFrame:
		case <-time.After(10 * time.Second):
			t.Fatal("no frame over ICE-TCP")
		}
		pair, err := v.pc.GetReceivers()[0].Transport().ICETransport().GetSelectedCandidatePair()
		if err != nil || pair == nil || pair.Remote.Protocol != webrtc.ICEProtocolTCP {
			t.Errorf("selected pair %v (%v), want TCP", pair, err)
		}
	})
	t.Run("public IPs replace host candidates", func(t *testing.T) {
		e := newLiveEnv(t, LiveConfig{PublicIPs: []string{"203.0.113.7"}})
		startCam(t, e, "c1", ingest.CodecH264, "", 5)
		v, offer := newTestViewer(t, viewerAPI(t, false), false)
		defer v.close()
		code, body, _ := postOffer(t, e.srv.URL, "c1", "op16", "application/sdp", offer)
		if code != http.StatusCreated {
			t.Fatalf("offer: %d %s", code, body)
		}
		var cands []string
		for _, l := range strings.Split(body, "\r\n") {
			if strings.HasPrefix(l, "a=candidate:") {
				cands = append(cands, l)
			}
		}
		if len(cands) == 0 || !strings.Contains(strings.Join(cands, "\n"), " 203.0.113.7 ") || strings.Contains(strings.Join(cands, "\n"), " 127.0.0.1 ") {
			t.Errorf("candidates:\n%s", strings.Join(cands, "\n"))
		}
	})
	t.Run("a peer that vanishes is closed after the ICE timeouts", func(t *testing.T) {
		e := newLiveEnv(t, LiveConfig{DisconnectedTimeout: time.Second, FailedTimeout: time.Second, DisableICETCP: true})
		startCam(t, e, "c1", ingest.CodecH264, "", 5)
		conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		se := webrtc.SettingEngine{}
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
		se.SetICEUDPMux(ice.NewUDPMuxDefault(ice.UDPMuxParams{UDPConn: conn}))
		v := connect(t, viewerAPIWith(t, false, se), e.srv.URL, "c1", "op16", false)
		<-v.gotFrame
		// The viewer's machine disappears: nothing more leaves it, no
		// DTLS close, no DELETE.
		conn.Close()
		start := time.Now()
		waitFor(t, 10*time.Second, "the session to end", func() bool { return e.live.Sessions() == 0 })
		t.Logf("session closed %v after the peer vanished", time.Since(start).Round(time.Millisecond))
		stops := e.audit.find(registry.AuditLiveStop, "")
		if len(stops) != 1 || !strings.Contains(stops[0].Detail, "peer connection") {
			t.Errorf("stop rows %+v", stops)
		}
		v.close()
	})
}

func TestLiveConfigValidation(t *testing.T) {
	taken, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	tests := []struct {
		name string
		cfg  LiveConfig
		err  string
	}{
		{"bad STUN URL", LiveConfig{ICEServers: []ICEServer{{URLs: []string{"http://stun.example.org"}}}}, "ICE server URL"},
		{"TURN without credentials", LiveConfig{ICEServers: []ICEServer{{URLs: []string{"turn:turn.example.org:3478"}}}}, "username and a credential"},
		{"server without URLs", LiveConfig{ICEServers: []ICEServer{{}}}, "no URLs"},
		{"NACK buffer not a power of two", LiveConfig{NACKBufferPackets: 100}, "power of two"},
		{"payload too large", LiveConfig{PayloadMaxSize: 9000}, "payload max size"},
		{"bad public IP", LiveConfig{PublicIPs: []string{"camera.example.org"}}, "not an IP address"},
		{"UDP port taken", LiveConfig{ICEUDPListen: taken.LocalAddr().String()}, "ICE UDP listen"},
		{"bad UDP address", LiveConfig{ICEUDPListen: "nonsense"}, "ICE UDP address"},
	}
	deps := LiveDeps{Streams: &fakeDir{}, Cameras: &fakeDir{}, Auth: fakeAuth{}, Audit: &fakeAudit{}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.cfg.ICEUDPListen == "" {
				tc.cfg.ICEUDPListen = "127.0.0.1:0"
			}
			tc.cfg.ICETCPListen = "127.0.0.1:0"
			l, err := NewLive(tc.cfg, deps)
			if err == nil {
				l.Close()
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %q, want %q", err, tc.err)
			}
		})
	}
	ok := LiveConfig{ICEUDPListen: "127.0.0.1:0", ICETCPListen: "127.0.0.1:0",
		ICEServers: []ICEServer{{URLs: []string{"stun:stun.example.org:3478"}}, {URLs: []string{"turn:turn.example.org:3478?transport=tcp"}, Username: "u", Credential: "p"}}}
	l, err := NewLive(ok, deps)
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	l.Close() // idempotent
	if _, err := NewLive(ok, LiveDeps{}); err == nil {
		t.Error("missing dependencies accepted")
	}
}
