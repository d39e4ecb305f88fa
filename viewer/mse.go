package viewer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"
	"github.com/coder/websocket"

	"github.com/kuzet/kuzet/ingest"
)

// The fallback for networks where WebRTC cannot connect: the same camera
// reader (GOP cache, bounded queue, skip to keyframe), sent as fragmented
// MP4 over a WebSocket and played with Media Source Extensions.
//
// Messages, server to browser:
//
//	text   {"type":"init","mime":"video/mp4; codecs=\"avc1.64001f\""}
//	binary the initialization segment (ftyp+moov), right after "init"
//	binary one fragment (moof+mdat) per video access unit
//	text   {"type":"offline","detail":"..."}  the camera went offline
//
// A new camera timeline sends a new "init". Decode times stay continuous
// across timelines. Audio is not sent (control-room walls are silent).
// The browser sends nothing; a message from it ends the session.

// mseWriteTimeout ends a fallback session whose viewer does not take a
// message for this long (its reader meanwhile drops to keyframes).
const mseWriteTimeout = 10 * time.Second

// msePingInterval is how often a fallback viewer is pinged; one that does
// not answer within mseWriteTimeout is gone and its session ends.
const msePingInterval = 15 * time.Second

// mseMessage is a text message of the fallback stream.
type mseMessage struct {
	Type   string `json:"type"`
	Mime   string `json:"mime,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// mseStream handles GET /api/v1/live/cameras/{id}/fmp4 (WebSocket).
func (l *Live) mseStream(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	p, cam, ok := l.authorizeLive(w, r, transportMSE, id)
	if !ok {
		return
	}
	stream, _, ok := l.liveTracks(w, transportMSE, cam)
	if !ok {
		return
	}
	if !sameOrigin(r) {
		l.metrics.starts.WithLabelValues(transportMSE, "forbidden").Inc()
		writeLiveProblem(w, http.StatusForbidden, liveCodeForbidden, "the stream may only be opened from Kuzet's own pages")
		return
	}
	if l.Sessions() >= l.cfg.MaxSessions {
		l.metrics.starts.WithLabelValues(transportMSE, "unavailable").Inc()
		writeLiveProblem(w, http.StatusServiceUnavailable, liveCodeFull, "the server has no room for another live view")
		return
	}
	s, ctx, ok := l.newLiveSession(w, r, transportMSE, p, cam)
	if !ok {
		return
	}
	if !l.auditStart(w, r, s) {
		s.stop(errors.New("audit failed"))
		return
	}
	// Accept refuses cross-origin upgrades: another site cannot ride the
	// viewer's session cookie.
	conn, err := websocket.Accept(w, r, nil)
	if err != nil {
		s.stop(err)
		l.auditStop(s, fmt.Errorf("websocket: %w", err))
		l.metrics.starts.WithLabelValues(transportMSE, "bad_request").Inc()
		return
	}
	conn.SetReadLimit(1024)
	err = l.addSession(s, func() { l.runMSE(ctx, s, conn, stream) })
	if err != nil {
		s.stop(err)
		_ = conn.Close(websocket.StatusTryAgainLater, err.Error())
		l.auditStop(s, err)
		l.metrics.starts.WithLabelValues(transportMSE, "unavailable").Inc()
		return
	}
	l.metrics.starts.WithLabelValues(transportMSE, "ok").Inc()
	l.log.Info("live view started", "camera", cam.ID, "user", p.Username, "session", s.id, "transport", transportMSE)
}

// sameOrigin reports whether a WebSocket upgrade comes from a page of this
// server (or from a client that sends no Origin, which is not a browser).
// Browsers do not apply CORS to WebSockets: without this check another site
// could open a stream with the viewer's cookie.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && strings.EqualFold(u.Host, r.Host)
}

// runMSE is a fallback session's goroutine.
func (l *Live) runMSE(ctx context.Context, s *liveSession, conn *websocket.Conn, stream *ingest.Stream) {
	var wg sync.WaitGroup
	defer func() {
		s.stop(errLiveClientGone) // no-op when a cause was set
		_ = conn.CloseNow()
		wg.Wait()
		l.auditStop(s, context.Cause(ctx))
	}()
	// The browser sends nothing: CloseRead notices when it goes away.
	readCtx := conn.CloseRead(ctx)
	wg.Add(1)
	go func() {
		defer wg.Done()
		<-readCtx.Done()
		s.stop(errLiveClientGone)
	}()
	// While the camera is offline nothing is written, so a viewer whose
	// machine vanished would go unnoticed: ping it.
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(msePingInterval)
		defer t.Stop()
		for {
			select {
			case <-readCtx.Done():
				return
			case <-t.C:
				pctx, cancel := context.WithTimeout(readCtx, mseWriteTimeout)
				err := conn.Ping(pctx)
				cancel()
				if err != nil {
					s.stop(errLiveClientGone)
					return
				}
			}
		}
	}()
	r, err := l.addLiveReader(stream)
	if err != nil {
		s.stop(errLiveStreamEnded)
		return
	}
	defer r.Close()
	send := func(typ websocket.MessageType, b []byte) error {
		wctx, cancel := context.WithTimeout(ctx, mseWriteTimeout)
		defer cancel()
		return conn.Write(wctx, typ, b)
	}
	sendText := func(m mseMessage) error {
		b, _ := json.Marshal(m)
		return send(websocket.MessageText, b)
	}
	feed := newLiveFeed(r, l.cfg.CatchUpSpeed, false, l.now)
	var mux *liveFMP4
	first := true
	for {
		out, err := feed.next(ctx)
		if err != nil {
			if errors.Is(err, ingest.ErrStreamClosed) {
				s.stop(errLiveStreamEnded)
			}
			return
		}
		var frag []byte
		switch {
		case out.event != nil && out.event.Tracks == nil:
			if mux != nil {
				frag, err = mux.flush()
			}
			if err == nil && frag != nil {
				err = send(websocket.MessageBinary, frag)
			}
			if err == nil {
				err = sendText(mseMessage{Type: "offline", Detail: out.event.Detail})
			}
		case out.event != nil:
			if mux != nil {
				frag, err = mux.flush()
				if err == nil && frag != nil {
					err = send(websocket.MessageBinary, frag)
				}
			}
			var init []byte
			var mime string
			if err == nil {
				mux, init, mime, err = newLiveFMP4(out.event.Tracks.Video, mux)
			}
			if err == nil {
				err = sendText(mseMessage{Type: "init", Mime: mime})
			}
			if err == nil {
				err = send(websocket.MessageBinary, init)
			}
		case mux != nil && out.unit.Track.Codec.IsVideo():
			frag, err = mux.push(out.unit, out.ts)
			if err == nil && frag != nil {
				err = send(websocket.MessageBinary, frag)
				if err == nil && first {
					first = false
					l.metrics.firstFrame.WithLabelValues(transportMSE).Observe(l.now().Sub(s.started).Seconds())
				}
			}
		}
		if err != nil {
			if ctx.Err() == nil {
				s.stop(fmt.Errorf("send: %w", err))
			}
			return
		}
	}
}

// liveFMP4 turns video units into fMP4 fragments of one sample each. A
// sample's duration is the distance to the next, so each unit is held
// until the next arrives.
type liveFMP4 struct {
	codec ingest.Codec
	seq   uint32
	// offset keeps decode times positive: output timestamps start at 0 and
	// a first frame may have PTS > DTS.
	offset  int64
	held    *fmp4.Sample
	heldDTS int64
	lastDur uint32
}

// mseTimeOffset is where decode time starts (1 s at 90 kHz).
const mseTimeOffset = 90000

// newLiveFMP4 starts a muxer for track, continuing the timeline of prev
// (nil for the first), and returns the initialization segment and its MIME
// type.
func newLiveFMP4(t *ingest.Track, prev *liveFMP4) (*liveFMP4, []byte, string, error) {
	m := &liveFMP4{codec: t.Codec, offset: mseTimeOffset, lastDur: 3000}
	if prev != nil {
		m.seq, m.lastDur = prev.seq, prev.lastDur
	}
	var c mp4.Codec
	var codecs string
	switch t.Codec {
	case ingest.CodecH264:
		if len(t.SPS) < 4 || len(t.PPS) == 0 {
			return nil, nil, "", errors.New("H.264 track without parameter sets")
		}
		c = &mp4.CodecH264{SPS: t.SPS, PPS: t.PPS}
		codecs = fmt.Sprintf("avc1.%02x%02x%02x", t.SPS[1], t.SPS[2], t.SPS[3])
	case ingest.CodecH265:
		if len(t.SPS) == 0 || len(t.PPS) == 0 || len(t.VPS) == 0 {
			return nil, nil, "", errors.New("H.265 track without parameter sets")
		}
		c = &mp4.CodecH265{VPS: t.VPS, SPS: t.SPS, PPS: t.PPS}
		codecs = mseHEVCCodec(t.SPS)
	default:
		return nil, nil, "", fmt.Errorf("no fMP4 for %s", t.Codec)
	}
	init := fmp4.Init{Tracks: []*fmp4.InitTrack{{ID: 1, TimeScale: 90000, Codec: c}}}
	var buf seekablebuffer.Buffer
	if err := init.Marshal(&buf); err != nil {
		return nil, nil, "", fmt.Errorf("fMP4 init: %w", err)
	}
	return m, buf.Bytes(), `video/mp4; codecs="` + codecs + `"`, nil
}

// mseHEVCCodec is the RFC 6381 codecs parameter of an H.265 SPS
// ("hvc1.1.6.L93.B0").
func mseHEVCCodec(spsBytes []byte) string {
	var sps h265.SPS
	if err := sps.Unmarshal(spsBytes); err != nil {
		return "hvc1.1.6.L93.B0"
	}
	ptl := sps.ProfileTierLevel
	var compat uint32
	for j, f := range ptl.GeneralProfileCompatibilityFlag {
		if f {
			compat |= 1 << j
		}
	}
	space := ""
	if ptl.GeneralProfileSpace > 0 {
		space = string(rune('A' + ptl.GeneralProfileSpace - 1))
	}
	tier := "L"
	if ptl.GeneralTierFlag != 0 {
		tier = "H"
	}
	var cons byte
	for i, f := range []bool{ptl.GeneralProgressiveSourceFlag, ptl.GeneralInterlacedSourceFlag,
		ptl.GeneralNonPackedConstraintFlag, ptl.GeneralFrameOnlyConstraintFlag} {
		if f {
			cons |= 0x80 >> i
		}
	}
	s := fmt.Sprintf("hvc1.%s%d.%X.%s%d", space, ptl.GeneralProfileIdc, compat, tier, ptl.GeneralLevelIdc)
	if cons != 0 {
		s += fmt.Sprintf(".%X", cons)
	}
	return strings.TrimSuffix(s, ".")
}

// push adds a unit with output timestamp ts (90 kHz) and returns the
// fragment of the previous unit, if any.
func (m *liveFMP4) push(u *ingest.Unit, ts int64) ([]byte, error) {
	ptsOffset := u.PTS - u.DTS
	dts := ts - ptsOffset + m.offset
	var s fmp4.Sample
	var err error
	switch m.codec {
	case ingest.CodecH264:
		err = s.FillH264(int32(ptsOffset), u.NALUs)
		s.IsNonSyncSample = !u.Key
	case ingest.CodecH265:
		err = s.FillH265(int32(ptsOffset), u.NALUs)
		s.IsNonSyncSample = !u.Key
	}
	if err != nil {
		return nil, nil // a unit that cannot be muxed is skipped
	}
	var frag []byte
	if m.held != nil {
		d := dts - m.heldDTS
		if d <= 0 || d > 10*90000 {
			d = int64(m.lastDur)
		}
		m.lastDur = uint32(d)
		frag, err = m.fragment(uint32(d))
		if err != nil {
			return nil, err
		}
	}
	if dts < 0 {
		dts = 0
	}
	m.held, m.heldDTS = &s, dts
	return frag, nil
}

// flush returns the held unit's fragment with the last known duration.
func (m *liveFMP4) flush() ([]byte, error) {
	if m.held == nil {
		return nil, nil
	}
	return m.fragment(m.lastDur)
}

func (m *liveFMP4) fragment(dur uint32) ([]byte, error) {
	m.held.Duration = dur
	m.seq++
	p := fmp4.Part{SequenceNumber: m.seq, Tracks: []*fmp4.PartTrack{{
		ID: 1, BaseTime: uint64(m.heldDTS), Samples: []*fmp4.Sample{m.held},
	}}}
	m.held = nil
	var buf seekablebuffer.Buffer
	if err := p.Marshal(&buf); err != nil {
		return nil, fmt.Errorf("fMP4 fragment: %w", err)
	}
	return buf.Bytes(), nil
}
