package viewer

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph265"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/kuzet/kuzet/ingest"
	"github.com/kuzet/kuzet/registry"
)

// Why sessions end; the cause is written in the live.stop audit row.
var (
	errLiveShutdown       = errors.New("server shutting down")
	errLiveDeleted        = errors.New("viewer left")
	errLivePeerFailed     = errors.New("peer connection failed")
	errLivePeerClosed     = errors.New("peer connection closed")
	errLiveConnectTimeout = errors.New("peer did not connect in time")
	errLiveStreamEnded    = errors.New("camera stream ended")
	errLiveCodecChanged   = errors.New("camera changed its video codec")
	errLiveClientGone     = errors.New("viewer disconnected")
)

// liveSession is one viewer watching one camera.
type liveSession struct {
	id        string
	transport string
	client    string
	principal registry.Principal
	camera    LiveCamera
	started   time.Time
	cancel    context.CancelCauseFunc
}

// stop ends the session with cause (the first cause wins).
func (s *liveSession) stop(cause error) { s.cancel(cause) }

// newLiveSession makes the session of p watching cam over transport, with
// the context that stop ends. When no session id can be drawn it answers
// 500 and returns false.
func (l *Live) newLiveSession(w http.ResponseWriter, r *http.Request, transport string, p registry.Principal, cam LiveCamera) (*liveSession, context.Context, bool) {
	sid, err := newLiveSessionID()
	if err != nil {
		writeLiveProblem(w, http.StatusInternalServerError, liveCodeInternal, "no session id")
		return nil, nil, false
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	s := &liveSession{
		id: sid, transport: transport, client: liveClient(r), principal: p, camera: cam,
		started: l.now(), cancel: cancel,
	}
	return s, ctx, true
}

// addLiveReader adds the reader of a live view to stream: bounded by
// QueueItems and QueueBytes, starting at the current GOP and skipping to
// the next keyframe when the viewer falls behind.
func (l *Live) addLiveReader(stream *ingest.Stream) (*ingest.Reader, error) {
	return stream.AddReader(ingest.ReaderConfig{
		Kind: ingest.ReaderLive, Capacity: l.cfg.QueueItems, MaxBytes: l.cfg.QueueBytes,
		Policy: ingest.SkipToKeyframe, FromGOP: true,
	})
}

// auditStop writes the live.stop row of a session. Its failure cannot
// refuse anything any more: it is logged and counted.
func (l *Live) auditStop(s *liveSession, cause error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e := registry.EntryFor(s.principal, s.client, registry.AuditLiveStop)
	e.Facility, e.Objects = s.camera.Facility, []string{"camera:" + s.camera.ID}
	e.From, e.To = s.started, l.now()
	e.Detail = fmt.Sprintf("%s session %s: %v", s.transport, s.id, cause)
	if err := l.audit.Record(ctx, e); err != nil {
		l.metrics.auditFail.Inc()
		l.log.Error("audit of a live view's end failed", "camera", s.camera.ID, "user", s.principal.Username, "err", err)
	}
	l.log.Info("live view ended", "camera", s.camera.ID, "user", s.principal.Username, "session", s.id,
		"transport", s.transport, "cause", cause.Error(), "duration", e.To.Sub(s.started).Round(time.Millisecond))
}

// runWebRTC is a WebRTC session's goroutine: it waits for the peer to
// connect, then reads the camera from the GOP cache on and sends it until
// the session is stopped.
func (l *Live) runWebRTC(ctx context.Context, s *liveSession, p *livePeer, stream *ingest.Stream, ch whepChoice) {
	var wg sync.WaitGroup
	defer func() {
		p.close()
		wg.Wait()
		l.auditStop(s, context.Cause(ctx))
	}()
	// RTCP must be read for NACKs to be answered; the readers end when the
	// peer connection closes.
	for _, snd := range p.senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 1500)
			for {
				if _, _, err := snd.Read(buf); err != nil {
					return
				}
			}
		}()
	}
	t := time.NewTimer(l.cfg.ConnectTimeout)
	select {
	case <-p.connected:
		t.Stop()
	case <-t.C:
		s.stop(errLiveConnectTimeout)
		return
	case <-ctx.Done():
		t.Stop()
		return
	}
	r, err := l.addLiveReader(stream)
	if err != nil {
		s.stop(errLiveStreamEnded)
		return
	}
	defer r.Close()
	wr, err := newLiveRTPWriter(ch, p, l.cfg.PayloadMaxSize)
	if err != nil {
		s.stop(err)
		return
	}
	feed := newLiveFeed(r, l.cfg.CatchUpSpeed, true, l.now)
	first := true
	for {
		out, err := feed.next(ctx)
		if err != nil {
			if errors.Is(err, ingest.ErrStreamClosed) {
				s.stop(errLiveStreamEnded)
			}
			return
		}
		if out.event != nil {
			if out.event.Tracks != nil && !wr.compatible(out.event.Tracks) {
				s.stop(errLiveCodecChanged)
				return
			}
			continue
		}
		if out.catchingUp {
			l.metrics.paced.Inc()
		}
		sent, err := wr.write(out)
		if err != nil {
			s.stop(fmt.Errorf("send: %w", err))
			return
		}
		if sent && first {
			first = false
			l.metrics.firstFrame.WithLabelValues(transportWebRTC).Observe(l.now().Sub(s.started).Seconds())
		}
	}
}

// liveRTPWriter packetizes units into a session's tracks.
type liveRTPWriter struct {
	videoCodec ingest.Codec
	video      *webrtc.TrackLocalStaticRTP
	venc       interface {
		Encode([][]byte) ([]*rtp.Packet, error)
	}
	vbase uint32

	audioCodec ingest.Codec // "" without audio
	audio      *webrtc.TrackLocalStaticRTP
	abase      uint32
	aseq       uint16
	encodeErrs uint64
}

func liveRandomUint32() uint32 {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint32(b[:])
}

func newLiveRTPWriter(ch whepChoice, p *livePeer, payloadMax int) (*liveRTPWriter, error) {
	w := &liveRTPWriter{video: p.video, vbase: liveRandomUint32(), audio: p.audio, abase: liveRandomUint32(), aseq: uint16(liveRandomUint32())}
	pt := uint8(ch.video.PayloadType)
	switch ch.video.MimeType {
	case webrtc.MimeTypeH264:
		e := &rtph264.Encoder{PayloadType: pt, PayloadMaxSize: payloadMax, PacketizationMode: 1}
		if err := e.Init(); err != nil {
			return nil, fmt.Errorf("H.264 packetizer: %w", err)
		}
		w.venc, w.videoCodec = e, ingest.CodecH264
	case webrtc.MimeTypeH265:
		e := &rtph265.Encoder{PayloadType: pt, PayloadMaxSize: payloadMax}
		if err := e.Init(); err != nil {
			return nil, fmt.Errorf("H.265 packetizer: %w", err)
		}
		w.venc, w.videoCodec = e, ingest.CodecH265
	default:
		return nil, fmt.Errorf("no packetizer for %s", ch.video.MimeType)
	}
	if ch.audio != nil {
		switch ch.audio.MimeType {
		case webrtc.MimeTypePCMU:
			w.audioCodec = ingest.CodecPCMU
		case webrtc.MimeTypePCMA:
			w.audioCodec = ingest.CodecPCMA
		}
	}
	return w, nil
}

// compatible reports whether a new timeline of the camera can go on in this
// session: the same video codec (its parameter sets travel in band).
func (w *liveRTPWriter) compatible(t *ingest.Tracks) bool {
	return t.Video != nil && t.Video.Codec == w.videoCodec
}

// write sends one unit; sent is true for a video unit that left.
func (w *liveRTPWriter) write(o liveOut) (sent bool, err error) {
	u := o.unit
	switch {
	case u.Track.Codec == w.videoCodec:
		pkts, err := w.venc.Encode(u.NALUs)
		if err != nil {
			w.encodeErrs++ // a unit the packetizer cannot carry is skipped
			return false, nil
		}
		ts := w.vbase + uint32(o.ts)
		for _, pkt := range pkts {
			pkt.Timestamp = ts
			if err := w.video.WriteRTP(pkt); err != nil {
				return false, err
			}
		}
		return true, nil
	case w.audio != nil && u.Track.Codec == w.audioCodec:
		w.aseq++
		pkt := &rtp.Packet{
			Header: rtp.Header{
				Version: 2, SequenceNumber: w.aseq, Timestamp: w.abase + uint32(o.ts),
			},
			Payload: u.Payload,
		}
		return false, w.audio.WriteRTP(pkt)
	}
	return false, nil
}
