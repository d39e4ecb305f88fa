package viewer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/pion/webrtc/v4"
	"go.uber.org/goleak"

	"github.com/kuzet/kuzet/ingest"
)

// playEnv is a Playback over fake recordings, with WebRTC from a Live
// bound to loopback.
type playEnv struct {
	pb    *Playback
	live  *Live
	st    *fakeStore
	rec   *fakeRecordings
	audit *fakeAudit
}

func newPlayEnv(t *testing.T, cfg PlaybackConfig) *playEnv {
	t.Helper()
	e := &playEnv{st: &fakeStore{}, rec: &fakeRecordings{}, audit: &fakeAudit{}}
	dir := &fakeDir{}
	var err error
	e.live, err = NewLive(LiveConfig{ICEUDPListen: "127.0.0.1:0", ICETCPListen: "127.0.0.1:0", IncludeLoopback: true},
		LiveDeps{Streams: dir, Cameras: dir, Auth: fakeAuth{}, Audit: e.audit, Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	e.pb, err = NewPlayback(cfg, PlaybackDeps{Recordings: e.rec, Objects: e.st, Audit: e.audit, Live: e.live,
		FrameMark: func(codec string, nalus [][]byte) (time.Time, bool) {
			// The synthetic frames carry their number: its capture time
			// stands for an embedded mark.
			n, _, ok := frameNumber(ingest.Codec(codec), nalus)
			return frameWall(n), ok
		}, Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.pb.Close()
		e.live.Close()
	})
	return e
}

// playClient is a WebRTC receiver of a playback session: one track per
// camera, the control channel, and what arrived.
type playClient struct {
	pc   *webrtc.PeerConnection
	dc   *webrtc.DataChannel
	open chan struct{}
	wg   sync.WaitGroup
	mids map[string]string // mid → camera

	mu     sync.Mutex
	frames map[string][]recvFrame
	events []map[string]any
}

type playOpts struct {
	cameras  []string
	from, to time.Time
	at       time.Time
	paused   bool
}

func (e *playEnv) open(t *testing.T, o playOpts) *playClient {
	t.Helper()
	api := viewerAPI(t, false)
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	c := &playClient{pc: pc, open: make(chan struct{}), frames: map[string][]recvFrame{}, mids: map[string]string{}}
	t.Cleanup(c.close)
	for range o.cameras {
		if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	c.dc, err = pc.CreateDataChannel("control", nil)
	if err != nil {
		t.Fatal(err)
	}
	c.dc.OnOpen(func() { close(c.open) })
	c.dc.OnMessage(func(m webrtc.DataChannelMessage) {
		var ev map[string]any
		if json.Unmarshal(m.Data, &ev) == nil {
			c.mu.Lock()
			c.events = append(c.events, ev)
			c.mu.Unlock()
		}
	})
	var midMu sync.Mutex
	pc.OnTrack(func(tr *webrtc.TrackRemote, rcv *webrtc.RTPReceiver) {
		c.wg.Add(1)
		defer c.wg.Done()
		var mid string
		for _, x := range pc.GetTransceivers() {
			if x.Receiver() == rcv {
				mid = x.Mid()
			}
		}
		midMu.Lock()
		cam := c.mids[mid]
		midMu.Unlock()
		c.read(cam, tr)
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
	at := o.at
	if at.IsZero() {
		at = o.from
	}
	out, err := e.pb.start(context.Background(), playbackStart{principal: testUsers["inv16"], client: "127.0.0.1", reason: "test",
		facility: "f16", cameras: o.cameras, from: o.from, to: o.to, at: at, paused: o.paused, offer: []byte(pc.LocalDescription().SDP)})
	if err != nil {
		t.Fatal(err)
	}
	midMu.Lock()
	for _, tr := range out.Tracks {
		c.mids[tr.Mid] = tr.Camera
	}
	midMu.Unlock()
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: out.Answer}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.open:
	case <-time.After(10 * time.Second):
		t.Fatal("control channel did not open")
	}
	return c
}

func (c *playClient) read(camera string, tr *webrtc.TrackRemote) {
	d := &rtph264.Decoder{}
	_ = d.Init()
	for {
		pkt, _, err := tr.ReadRTP()
		if err != nil {
			return
		}
		au, err := d.Decode(pkt)
		if err != nil {
			continue
		}
		n, key, ok := frameNumber(ingest.CodecH264, au)
		if !ok {
			continue
		}
		c.mu.Lock()
		c.frames[camera] = append(c.frames[camera], recvFrame{n: n, key: key, ts: pkt.Timestamp, at: time.Now()})
		c.mu.Unlock()
	}
}

func (c *playClient) close() {
	_ = c.pc.Close()
	c.wg.Wait()
}

func (c *playClient) send(t *testing.T, cmd string) {
	t.Helper()
	if err := c.dc.SendText(cmd); err != nil {
		t.Fatal(err)
	}
}

// got returns the frame numbers camera received (from index from on).
func (c *playClient) got(camera string) []recvFrame {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.frames[camera])
}

func (c *playClient) eventsOf(typ string) []map[string]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []map[string]any
	for _, e := range c.events {
		if e["type"] == typ {
			out = append(out, e)
		}
	}
	return out
}

// waitFrame waits until camera has received frame n (or one after it).
func (c *playClient) waitFrame(t *testing.T, camera string, n int64, d time.Duration) {
	t.Helper()
	waitFor(t, d, fmt.Sprintf("frame %d of %s", n, camera), func() bool {
		fs := c.got(camera)
		return len(fs) > 0 && fs[len(fs)-1].n >= n
	})
}

func numbers(fs []recvFrame) []int64 {
	out := make([]int64, len(fs))
	for i, f := range fs {
		out[i] = f.n
	}
	return out
}

// checkRun checks that ns runs from first to last without a frame lost or
// repeated, but for the frames of skip.
func checkRun(t *testing.T, ns []int64, first, last int64, skip [][2]int64) {
	t.Helper()
	if len(ns) == 0 || ns[0] != first {
		t.Fatalf("frames start %v, want %d", head(ns), first)
	}
	want := first
	for i, n := range ns {
		for _, s := range skip {
			if want >= s[0] && want < s[1] {
				want = s[1]
			}
		}
		if n != want {
			t.Fatalf("frame %d is %d, want %d (%v)", i, n, want, ns[max(0, i-3):min(len(ns), i+3)])
		}
		want++
		if n == last {
			return
		}
	}
	t.Fatalf("frames end at %d, want %d", ns[len(ns)-1], last)
}

func head(ns []int64) []int64 { return ns[:min(len(ns), 5)] }

// TestPlaybackAcrossSegmentsAndAGap: playback starts at the keyframe before
// the instant asked for, runs through a segment boundary without losing a
// frame, tells the client about the gap (with its reason) and jumps over
// it, and goes on in the next segment.
func TestPlaybackAcrossSegmentsAndAGap(t *testing.T) {
	t.Parallel()
	e := newPlayEnv(t, PlaybackConfig{})
	addFootage(t, e.st, e.rec, footageSpec{camera: "c1", frames: 1500, segFrames: 250, gaps: [][2]int64{{600, 750}}})
	c := e.open(t, playOpts{cameras: []string{"c1"}, from: frameWall(0), to: frameWall(1500), at: frameWall(560)})
	c.send(t, `{"op":"speed","speed":2}`)
	c.waitFrame(t, "c1", 780, 15*time.Second)
	checkRun(t, numbers(c.got("c1")), 550, 780, [][2]int64{{600, 750}})
	gaps := c.eventsOf("gap")
	if len(gaps) != 1 || gaps[0]["reason"] != "camera_offline" || gaps[0]["camera"] != "c1" ||
		gaps[0]["from"] != frameWall(600).Format(time.RFC3339Nano) || gaps[0]["to"] != frameWall(750).Format(time.RFC3339Nano) {
		t.Fatalf("gap events %v", gaps)
	}
	if skips := c.eventsOf("skip"); len(skips) != 1 || skips[0]["to"] != frameWall(750).Format(time.RFC3339Nano) {
		t.Fatalf("skip events %v", skips)
	}
	// The jump over the 6 s gap took far less than 6 s (at 2×, 3 s).
	fs := c.got("c1")
	var before, after time.Time
	for _, f := range fs {
		if f.n == 599 {
			before = f.at
		}
		if f.n == 750 {
			after = f.at
		}
	}
	if d := after.Sub(before); d > 1500*time.Millisecond {
		t.Errorf("frame 750 arrived %v after frame 599", d)
	}
	if rows := e.audit.find("playback", "started"); len(rows) != 1 || rows[0].Reason != "test" {
		t.Errorf("started rows %+v", rows)
	}
}

// TestPlaybackSeekPauseStepAndSpeed drives one session through seek,
// pause, steps and speeds, checking the frames that arrive.
func TestPlaybackSeekPauseStepAndSpeed(t *testing.T) {
	t.Parallel()
	e := newPlayEnv(t, PlaybackConfig{PositionInterval: 50 * time.Millisecond})
	addFootage(t, e.st, e.rec, footageSpec{camera: "c1", frames: 3000, segFrames: 500})
	c := e.open(t, playOpts{cameras: []string{"c1"}, from: frameWall(0), to: frameWall(3000), at: frameWall(100), paused: true})

	// Paused at 100: the keyframe and nothing after.
	c.waitFrame(t, "c1", 100, 5*time.Second)
	time.Sleep(300 * time.Millisecond)
	if ns := numbers(c.got("c1")); !slices.Equal(ns, []int64{100}) {
		t.Fatalf("paused at 100: got %v", ns)
	}

	// Seek (paused) to 1234: from the keyframe 1225 up to 1234, fast.
	mark := len(c.got("c1"))
	start := time.Now()
	c.send(t, `{"op":"seek","at":"`+frameWall(1234).Format(time.RFC3339Nano)+`"}`)
	c.waitFrame(t, "c1", 1234, 5*time.Second)
	took := time.Since(start)
	time.Sleep(300 * time.Millisecond)
	after := numbers(c.got("c1")[mark:])
	checkRun(t, after, 1225, 1234, nil)
	if after[len(after)-1] != 1234 {
		t.Fatalf("paused after the seek, frames went on: %v", after)
	}
	t.Logf("seek to frame 1234 shown after %v (keyframe 1225, 10 frames at catch-up speed)", took.Round(time.Millisecond))
	// The position reports the frame and its mark.
	waitFor(t, 2*time.Second, "position at 1234", func() bool {
		ps := c.eventsOf("position")
		if len(ps) == 0 {
			return false
		}
		cam := ps[len(ps)-1]["cameras"].([]any)[0].(map[string]any)
		return cam["at"] == frameWall(1234).Format(time.RFC3339Nano) && cam["mark"] == frameWall(1234).Format(time.RFC3339Nano)
	})

	// Step forward, then back.
	mark = len(c.got("c1"))
	c.send(t, `{"op":"step","frames":1}`)
	c.waitFrame(t, "c1", 1235, 3*time.Second)
	c.send(t, `{"op":"step","frames":-1}`)
	waitFor(t, 3*time.Second, "step back", func() bool {
		ns := numbers(c.got("c1")[mark:])
		return len(ns) > 1 && ns[len(ns)-1] == 1234 && ns[len(ns)-2] == 1233
	})
	if ns := numbers(c.got("c1")[mark:]); !slices.Equal(ns, []int64{1235, 1225, 1226, 1227, 1228, 1229, 1230, 1231, 1232, 1233, 1234}) {
		t.Fatalf("after steps: %v", ns)
	}

	// Play at 0.5×: about 12.5 frames a second.
	mark = len(c.got("c1"))
	c.send(t, `{"op":"speed","speed":0.5}`)
	c.send(t, `{"op":"play"}`)
	time.Sleep(2 * time.Second)
	slow := numbers(c.got("c1")[mark:])
	checkRun(t, slow, 1235, slow[len(slow)-1], nil)
	if n := len(slow); n < 18 || n > 32 {
		t.Errorf("0.5× sent %d frames in 2 s, want about 25", n)
	}

	// Pause: nothing more.
	c.send(t, `{"op":"pause"}`)
	time.Sleep(300 * time.Millisecond)
	n1 := len(c.got("c1"))
	time.Sleep(time.Second)
	if n2 := len(c.got("c1")); n2 != n1 {
		t.Errorf("paused, %d more frames arrived", n2-n1)
	}

	// 8×: keyframes only, at 8 a second (one keyframe per 25-frame second
	// of footage).
	mark = len(c.got("c1"))
	c.send(t, `{"op":"speed","speed":8}`)
	c.send(t, `{"op":"play"}`)
	time.Sleep(2 * time.Second)
	fast := c.got("c1")[mark:]
	for _, f := range fast {
		if !f.key || f.n%25 != 0 {
			t.Fatalf("at 8× frame %d (key %t) was sent", f.n, f.key)
		}
	}
	if n := len(fast); n < 12 || n > 20 {
		t.Errorf("8× sent %d keyframes in 2 s, want about 16", n)
	}
	// Back to 1×: every frame again, from a keyframe.
	mark = len(c.got("c1"))
	c.send(t, `{"op":"speed","speed":1}`)
	time.Sleep(1500 * time.Millisecond)
	normal := numbers(c.got("c1")[mark:])
	if len(normal) < 20 || normal[0]%25 != 0 {
		t.Fatalf("back at 1×: %v", head(normal))
	}
	checkRun(t, normal, normal[0], normal[len(normal)-1], nil)
}

// TestPlaybackKeepsCamerasInStep: two cameras on one clock, with a seek:
// the frames each receives are of the same moment.
func TestPlaybackKeepsCamerasInStep(t *testing.T) {
	t.Parallel()
	e := newPlayEnv(t, PlaybackConfig{})
	addFootage(t, e.st, e.rec, footageSpec{camera: "c1", frames: 2000, segFrames: 250})
	addFootage(t, e.st, e.rec, footageSpec{camera: "c2", frames: 2000, segFrames: 400, gaps: [][2]int64{{1000, 1200}}})
	c := e.open(t, playOpts{cameras: []string{"c1", "c2"}, from: frameWall(0), to: frameWall(2000), at: frameWall(50)})
	c.waitFrame(t, "c1", 80, 5*time.Second)
	inStep := func(what string) {
		t.Helper()
		a, b := c.got("c1"), c.got("c2")
		la, lb := a[len(a)-1], b[len(b)-1]
		if d := la.n - lb.n; d < -5 || d > 5 {
			t.Errorf("%s: c1 at frame %d, c2 at frame %d", what, la.n, lb.n)
		}
	}
	inStep("playing")
	c.send(t, `{"op":"seek","at":"`+frameWall(950).Format(time.RFC3339Nano)+`"}`)
	c.waitFrame(t, "c1", 1020, 8*time.Second)
	// c2 is in a gap from 1000: it stops at 999 and says why, c1 goes on.
	b := c.got("c2")
	if last := b[len(b)-1].n; last != 999 {
		t.Errorf("c2 at %d during its gap", last)
	}
	if g := c.eventsOf("gap"); len(g) != 1 || g[0]["camera"] != "c2" {
		t.Errorf("gap events %v", g)
	}
	if s := c.eventsOf("skip"); len(s) != 0 {
		t.Errorf("the clock jumped while c1 had footage: %v", s)
	}
	c.send(t, `{"op":"seek","at":"`+frameWall(1500).Format(time.RFC3339Nano)+`"}`)
	c.waitFrame(t, "c2", 1530, 8*time.Second)
	inStep("after a seek")
}

// TestPlaybackReadsFragmentByFragment: with 10-minute segments, reads
// never exceed one fragment and the footage read ahead stays within the
// prefetch bound, however long the segment.
func TestPlaybackReadsFragmentByFragment(t *testing.T) {
	t.Parallel()
	e := newPlayEnv(t, PlaybackConfig{Prefetch: 2})
	addFootage(t, e.st, e.rec, footageSpec{camera: "c1", frames: 15000, segFrames: 15000, size: 2000})
	segs, _ := e.rec.RecordedSegments(context.Background(), "c1", frameWall(0), frameWall(15000))
	largest := int64(0)
	for _, f := range segs[0].Fragments {
		largest = max(largest, f.Size)
	}
	c := e.open(t, playOpts{cameras: []string{"c1"}, from: frameWall(0), to: frameWall(15000), at: frameWall(5000)})
	c.send(t, `{"op":"speed","speed":2}`)
	c.waitFrame(t, "c1", 5100, 10*time.Second)
	e.st.mu.Lock()
	maxLen, reads, maxOpen := e.st.maxLen, e.st.reads, e.st.maxOpen
	e.st.mu.Unlock()
	t.Logf("segment of %d bytes; largest read %d bytes, %d reads, at most %d open", segs[0].Bytes, maxLen, reads, maxOpen)
	if maxLen > largest || maxOpen > 1 {
		t.Errorf("read %d bytes at once (largest fragment %d), %d readers open", maxLen, largest, maxOpen)
	}
	// Fetched ahead: at most the prefetch queue, the item being built
	// and the one being sent.
	if limit := int64(2+2) + 6; reads > limit+int64(5100-5000)/25+2 {
		t.Errorf("%d fragments read for %d sent: the fetcher runs ahead unbounded", reads, (5100-5000)/25)
	}
}

// TestPlaybackRefusesAndCleansUp: a session that never connects ends after
// the connect timeout; Close ends the rest; no goroutine survives.
func TestPlaybackRefusesAndCleansUp(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	e := newPlayEnv(t, PlaybackConfig{MaxSessions: 1})
	addFootage(t, e.st, e.rec, footageSpec{camera: "c1", frames: 500, segFrames: 250})
	c := e.open(t, playOpts{cameras: []string{"c1"}, from: frameWall(0), to: frameWall(500)})
	c.waitFrame(t, "c1", 30, 5*time.Second)
	// A second session is refused: the limit is one.
	_, err := e.pb.start(context.Background(), playbackStart{principal: testUsers["inv16"], reason: "x", cameras: []string{"c1"},
		from: frameWall(0), to: frameWall(500), at: frameWall(0), offer: []byte("v=0")})
	if !errors.Is(err, errPlaybackFull) {
		t.Errorf("second session: %v", err)
	}
	// A bad offer is refused as such.
	e2 := newPlayEnv(t, PlaybackConfig{})
	_, err = e2.pb.start(context.Background(), playbackStart{principal: testUsers["inv16"], reason: "x", cameras: []string{"c1"},
		from: frameWall(0), to: frameWall(500), at: frameWall(0), offer: []byte("v=0")})
	var oe *whepOfferError
	if !errors.As(err, &oe) {
		t.Errorf("bad offer: %v", err)
	}
	c.close()
	waitFor(t, 15*time.Second, "the session to end", func() bool { return e.pb.Sessions() == 0 })
	if rows := e.audit.find("playback", "ok"); len(rows) < 2 {
		t.Errorf("rows at the end: %+v", rows)
	} else if last := rows[len(rows)-1]; !strings.Contains(last.Detail, "ended") || last.Reason != "test" {
		t.Errorf("last row %+v", last)
	}
	e.pb.Close()
	e.live.Close()
	e2.pb.Close()
	e2.live.Close()
}

func TestParsePlayCommand(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in string
		ok bool
	}{
		{`{"op":"play"}`, true},
		{`{"op":"pause"}`, true},
		{`{"op":"seek","at":"2025-03-10T09:00:00Z"}`, true},
		{`{"op":"speed","speed":0.5}`, true},
		{`{"op":"speed","speed":8}`, true},
		{`{"op":"step","frames":-1}`, true},
		{`{"op":"speed","speed":16}`, false},
		{`{"op":"speed","speed":0.1}`, false},
		{`{"op":"step","frames":2}`, false},
		{`{"op":"seek"}`, false},
		{`{"op":"seek","at":"1900-01-01T00:00:00Z"}`, false},
		{`{"op":"play","at":"2025-03-10T09:00:00Z"}`, false},
		{`{"op":"rewind"}`, false},
		{`{"op":"play","extra":1}`, false},
		{`{"op":"play"} {}`, false},
		{`[]`, false},
		{strings.Repeat(" ", 2000) + `{"op":"play"}`, false},
	} {
		_, err := parsePlayCommand([]byte(c.in))
		if (err == nil) != c.ok {
			t.Errorf("%.40q: error %v", c.in, err)
		}
	}
}

func FuzzPlayCommand(f *testing.F) {
	for _, s := range []string{`{"op":"play"}`, `{"op":"seek","at":"2025-03-10T09:00:00Z"}`, `{"op":"speed","speed":4}`, `{"op":"step","frames":1}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := parsePlayCommand(b)
		if err != nil {
			if !errors.Is(err, errPlayCommand) {
				t.Fatalf("error %v", err)
			}
			return
		}
		again, _ := json.Marshal(c)
		if _, err := parsePlayCommand(again); err != nil {
			t.Fatalf("accepted %s, refused %s: %v", b, again, err)
		}
	})
}
