package viewer

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"
	"github.com/coder/websocket"

	"github.com/kuzet/kuzet/ingest"
	"github.com/kuzet/kuzet/registry"
)

// mseClient reads the fallback stream of a camera.
type mseClient struct {
	t    *testing.T
	conn *websocket.Conn
}

func dialMSE(t *testing.T, e *liveEnv, camera, user string, origin string) (*mseClient, *http.Response, error) {
	t.Helper()
	h := http.Header{"X-Test-User": {user}}
	if origin != "" {
		h.Set("Origin", origin)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	url := "ws" + strings.TrimPrefix(e.srv.URL, "http") + "/api/v1/live/cameras/" + camera + "/fmp4"
	c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		return nil, resp, err
	}
	c.SetReadLimit(4 << 20)
	return &mseClient{t: t, conn: c}, resp, nil
}

func (c *mseClient) read() (websocket.MessageType, []byte) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	typ, b, err := c.conn.Read(ctx)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return typ, b
}

func (c *mseClient) readText() mseMessage {
	c.t.Helper()
	typ, b := c.read()
	if typ != websocket.MessageText {
		c.t.Fatalf("binary message (%d bytes) where a text message was due", len(b))
	}
	var m mseMessage
	if err := json.Unmarshal(b, &m); err != nil {
		c.t.Fatal(err)
	}
	return m
}

// readFragment reads a binary fragment and returns its one sample with its
// decode time.
func (c *mseClient) readFragment() (uint64, *fmp4.Sample) {
	c.t.Helper()
	typ, b := c.read()
	if typ != websocket.MessageBinary {
		c.t.Fatalf("text message %s where a fragment was due", b)
	}
	var parts fmp4.Parts
	if err := parts.Unmarshal(b); err != nil {
		c.t.Fatalf("fragment: %v", err)
	}
	if len(parts) != 1 || len(parts[0].Tracks) != 1 || len(parts[0].Tracks[0].Samples) != 1 {
		c.t.Fatalf("fragment layout: %d parts", len(parts))
	}
	tr := parts[0].Tracks[0]
	return tr.BaseTime, tr.Samples[0]
}

func (c *mseClient) readInit() {
	c.t.Helper()
	m := c.readText()
	if m.Type != "init" || !strings.Contains(m.Mime, `codecs="avc1.4d401e"`) {
		c.t.Fatalf("init message %+v", m)
	}
	typ, b := c.read()
	if typ != websocket.MessageBinary {
		c.t.Fatal("init segment missing")
	}
	var init fmp4.Init
	if err := init.Unmarshal(bytes.NewReader(b)); err != nil {
		c.t.Fatalf("init segment: %v", err)
	}
	if len(init.Tracks) != 1 || init.Tracks[0].TimeScale != 90000 {
		c.t.Fatalf("init tracks: %+v", init.Tracks)
	}
	if h, ok := init.Tracks[0].Codec.(*mp4.CodecH264); !ok || !bytes.Equal(h.SPS, testSPS) {
		c.t.Fatalf("init codec %#v", init.Tracks[0].Codec)
	}
}

func TestMSEFallbackStream(t *testing.T) {
	verifyNoLeaks(t)
	e := newLiveEnv(t, LiveConfig{})
	c := newSynthCam("c1", ingest.CodecH264, "")
	e.dir.add(LiveCamera{ID: "c1", Name: "c1", Facility: "f16"}, c.stream)
	c.start(time.Now())
	for range 10 {
		c.next(time.Now())
	}
	cl, _, err := dialMSE(t, e, "c1", "op16", "")
	if err != nil {
		t.Fatal(err)
	}
	cl.readInit()
	// The cached GOP: keyframe first, durations compressed 10×, then a
	// live frame at the real 40 ms.
	base0, s0 := cl.readFragment()
	if s0.IsNonSyncSample {
		t.Fatal("first fragment is not a sync sample")
	}
	n, _, _ := frameNumber(ingest.CodecH264, avccNALUs(t, s0.Payload))
	if n != 0 {
		t.Fatalf("first frame #%d", n)
	}
	prev := base0
	for i := 1; i < 9; i++ {
		base, s := cl.readFragment()
		if s.IsNonSyncSample != true || base-prev != 360 {
			t.Fatalf("cached fragment %d: base %d (+%d), sync %v", i, base, base-prev, !s.IsNonSyncSample)
		}
		prev = base
	}
	c.next(time.Now()) // frame 10, live, releases frame 9
	base9, _ := cl.readFragment()
	time.Sleep(40 * time.Millisecond)
	c.next(time.Now()) // frame 11 releases frame 10
	base10, _ := cl.readFragment()
	if base9-prev != 360 || base10-base9 != 360 {
		t.Errorf("frames 9 and 10 at +%d and +%d, want +360 (the catch-up ends at frame 10)", base9-prev, base10-base9)
	}
	// Camera outage: the held frame 11 is flushed, "offline" is said, a
	// new timeline starts with a new init and continuous decode times.
	c.offline(time.Now())
	base11, _ := cl.readFragment()
	if base11-base10 != 3600 {
		t.Errorf("live frame 11 at +%d, want +3600", base11-base10)
	}
	prev = base11
	if m := cl.readText(); m.Type != "offline" || m.Detail != "eof" {
		t.Fatalf("offline message %+v", m)
	}
	time.Sleep(300 * time.Millisecond)
	c.start(time.Now())
	cl.readInit()
	c.next(time.Now())
	c.next(time.Now().Add(40 * time.Millisecond))
	base, s := cl.readFragment()
	if s.IsNonSyncSample || base <= prev+3600 {
		t.Errorf("first fragment after the outage: base %d after %d, sync %v", base, prev, !s.IsNonSyncSample)
	}
	_ = cl.conn.Close(websocket.StatusNormalClosure, "")
	waitFor(t, 5*time.Second, "session end", func() bool { return e.live.Sessions() == 0 })
	starts := e.audit.find(registry.AuditLiveStart, registry.OutcomeStarted)
	stops := e.audit.find(registry.AuditLiveStop, "")
	if len(starts) != 1 || !strings.HasPrefix(starts[0].Detail, "mse") || len(stops) != 1 || !strings.Contains(stops[0].Detail, "viewer disconnected") {
		t.Errorf("audit: starts %+v stops %+v", starts, stops)
	}
}

func TestMSERefusals(t *testing.T) {
	e := newLiveEnv(t, LiveConfig{})
	startCam(t, e, "c1", ingest.CodecH264, "", 2)
	tests := []struct {
		name, user, origin string
		status             int
	}{
		{"anonymous", "", "", 401},
		{"other facility", "op27", "", 403},
		{"cross-site page", "op16", "https://evil.example", 403},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cl, resp, err := dialMSE(t, e, "c1", tc.user, tc.origin)
			if err == nil {
				_ = cl.conn.CloseNow()
				t.Fatal("upgrade accepted")
			}
			if resp == nil || resp.StatusCode != tc.status {
				t.Fatalf("response %v, want %d", resp, tc.status)
			}
		})
	}
	if n := e.live.Sessions(); n != 0 {
		t.Errorf("%d sessions", n)
	}
}

// avccNALUs splits a length-prefixed sample.
func avccNALUs(t *testing.T, b []byte) [][]byte {
	t.Helper()
	var out [][]byte
	for len(b) >= 4 {
		n := int(b[0])<<24 | int(b[1])<<16 | int(b[2])<<8 | int(b[3])
		if n > len(b)-4 {
			t.Fatal("bad AVCC sample")
		}
		out = append(out, b[4:4+n])
		b = b[4+n:]
	}
	return out
}
