package viewer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/kuzet/kuzet/ingest"
)

const (
	transportWebRTC = "webrtc"
	transportMSE    = "mse"
)

// whepNoteHeader carries a note for the viewer about the answer (audio that
// is not sent, and why).
const whepNoteHeader = "Kuzet-Live-Note"

// whepOffer handles POST /whep/cameras/{id}: an SDP offer from a viewer.
// The answer (201) carries every server candidate (no trickle ICE) and a
// Location for DELETE.
func (l *Live) whepOffer(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/sdp" {
		l.metrics.starts.WithLabelValues(transportWebRTC, "bad_request").Inc()
		writeLiveProblem(w, http.StatusUnsupportedMediaType, liveCodeMediaType, "send the SDP offer with Content-Type: application/sdp")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, whepMaxOfferBytes))
	if err != nil {
		l.metrics.starts.WithLabelValues(transportWebRTC, "bad_request").Inc()
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeLiveProblem(w, http.StatusRequestEntityTooLarge, liveCodeBadOffer, fmt.Sprintf("the offer is larger than %d bytes", whepMaxOfferBytes))
			return
		}
		writeLiveProblem(w, http.StatusBadRequest, liveCodeBadOffer, "the offer could not be read")
		return
	}
	p, cam, ok := l.authorizeLive(w, r, transportWebRTC, id)
	if !ok {
		return
	}
	off, err := parseWHEPOffer(body)
	if err != nil {
		l.metrics.starts.WithLabelValues(transportWebRTC, "bad_request").Inc()
		writeLiveProblem(w, http.StatusBadRequest, liveCodeBadOffer, err.Error())
		return
	}
	stream, tracks, ok := l.liveTracks(w, transportWebRTC, cam)
	if !ok {
		return
	}
	choice, err := whepChooseCodecs(off, tracks)
	if err != nil {
		outcome, status, code := "not_playable", http.StatusUnprocessableEntity, liveCodeNotPlayable
		if !errors.Is(err, errWHEPNotPlayable) {
			outcome, status, code = "unavailable", http.StatusServiceUnavailable, liveCodeOffline
		}
		l.metrics.starts.WithLabelValues(transportWebRTC, outcome).Inc()
		writeLiveProblem(w, status, code, err.Error())
		return
	}
	if l.Sessions() >= l.cfg.MaxSessions {
		l.metrics.starts.WithLabelValues(transportWebRTC, "unavailable").Inc()
		w.Header().Set("Retry-After", "5")
		writeLiveProblem(w, http.StatusServiceUnavailable, liveCodeFull, "the server has no room for another live view")
		return
	}
	s, ctx, ok := l.newLiveSession(w, r, transportWebRTC, p, cam)
	if !ok {
		return
	}
	pcs, answer, err := l.negotiate(r.Context(), s, off, choice, body)
	if err != nil {
		s.stop(err)
		var oe *whepOfferError
		if errors.As(err, &oe) {
			l.metrics.starts.WithLabelValues(transportWebRTC, "bad_request").Inc()
			writeLiveProblem(w, http.StatusBadRequest, liveCodeBadOffer, err.Error())
			return
		}
		l.metrics.starts.WithLabelValues(transportWebRTC, "error").Inc()
		l.log.Error("WebRTC negotiation failed", "camera", cam.ID, "err", err)
		writeLiveProblem(w, http.StatusInternalServerError, liveCodeInternal, "the WebRTC session could not be set up")
		return
	}
	if !l.auditStart(w, r, s) {
		s.stop(errors.New("audit failed"))
		pcs.close()
		return
	}
	err = l.addSession(s, func() { l.runWebRTC(ctx, s, pcs, stream, choice) })
	if err != nil {
		s.stop(err)
		pcs.close()
		l.auditStop(s, err)
		l.metrics.starts.WithLabelValues(transportWebRTC, "unavailable").Inc()
		writeLiveProblem(w, http.StatusServiceUnavailable, liveCodeFull, err.Error())
		return
	}
	l.metrics.starts.WithLabelValues(transportWebRTC, "ok").Inc()
	l.log.Info("live view started", "camera", cam.ID, "user", p.Username, "session", s.id, "transport", transportWebRTC,
		"video", choice.video.MimeType)
	if choice.audioNote != "" {
		w.Header().Set(whepNoteHeader, choice.audioNote)
	}
	w.Header().Set("Content-Type", "application/sdp")
	w.Header().Set("Location", "/whep/sessions/"+s.id)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusCreated)
	_, _ = io.WriteString(w, answer)
}

// liveTracks finds the camera's stream and its current tracks; a camera
// that is not online is answered with 503 and its reason.
func (l *Live) liveTracks(w http.ResponseWriter, transport string, cam LiveCamera) (*ingest.Stream, *ingest.Tracks, bool) {
	stream, ok := l.streams.Stream(cam.ID)
	var tracks *ingest.Tracks
	if ok {
		tracks = stream.Tracks()
	}
	if tracks == nil || tracks.Video == nil {
		l.metrics.starts.WithLabelValues(transport, "unavailable").Inc()
		detail := "the camera is offline"
		if cam.Detail != "" {
			detail += ": " + cam.Detail
		} else if cam.Reason != "" {
			detail += ": " + cam.Reason
		}
		w.Header().Set("Retry-After", "3")
		writeLiveProblem(w, http.StatusServiceUnavailable, liveCodeOffline, detail)
		return nil, nil, false
	}
	return stream, tracks, true
}

// livePeer is a session's peer connection with its tracks.
type livePeer struct {
	pc        *webrtc.PeerConnection
	video     *webrtc.TrackLocalStaticRTP
	audio     *webrtc.TrackLocalStaticRTP // nil without audio
	senders   []*webrtc.RTPSender
	connected chan struct{}
}

func (p *livePeer) close() { _ = p.pc.Close() }

// negotiate builds the peer connection for an offer and returns its answer
// with every gathered candidate. A refused offer is a *whepOfferError.
func (l *Live) negotiate(ctx context.Context, s *liveSession, off *whepOffer, ch whepChoice, sdp []byte) (*livePeer, string, error) {
	pc, err := l.ice.newPeerConnection(ch)
	if err != nil {
		return nil, "", err
	}
	p := &livePeer{pc: pc, connected: make(chan struct{})}
	ok := false
	defer func() {
		if !ok {
			_ = pc.Close()
		}
	}()
	watchPeer(pc, p.connected, s.stop)
	streamID := "kuzet-" + s.camera.ID
	p.video, err = webrtc.NewTrackLocalStaticRTP(ch.video.RTPCodecCapability, "video", streamID)
	if err != nil {
		return nil, "", fmt.Errorf("video track: %w", err)
	}
	vs, err := pc.AddTrack(p.video)
	if err != nil {
		return nil, "", fmt.Errorf("add video track: %w", err)
	}
	p.senders = append(p.senders, vs)
	if ch.audio != nil {
		p.audio, err = webrtc.NewTrackLocalStaticRTP(ch.audio.RTPCodecCapability, "audio", streamID)
		if err != nil {
			return nil, "", fmt.Errorf("audio track: %w", err)
		}
		as, err := pc.AddTrack(p.audio)
		if err != nil {
			return nil, "", fmt.Errorf("add audio track: %w", err)
		}
		p.senders = append(p.senders, as)
	}
	if err := setRemoteOffer(pc, string(sdp)); err != nil {
		return nil, "", err
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return nil, "", offerErrorf("no answer to this offer: %v", err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(answer); err != nil {
		return nil, "", fmt.Errorf("set local description: %w", err)
	}
	t := time.NewTimer(l.cfg.GatherTimeout)
	defer t.Stop()
	select {
	case <-gathered:
	case <-t.C:
		l.log.Warn("ICE gathering incomplete; answering with the candidates so far", "camera", s.camera.ID)
	case <-ctx.Done():
		return nil, "", ctx.Err()
	}
	ld := pc.LocalDescription()
	if ld == nil {
		return nil, "", errors.New("no local description")
	}
	ok = true
	return p, ld.SDP, nil
}

// setRemoteOffer applies the offer, turning pion's refusals (and, should
// one ever happen, a panic on odd input) into a *whepOfferError.
func setRemoteOffer(pc *webrtc.PeerConnection, sdp string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = offerErrorf("the offer was refused")
		}
	}()
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp}); err != nil {
		return offerErrorf("the offer was refused: %v", err)
	}
	return nil
}

// whepDelete handles DELETE /whep/sessions/{session}: the viewer leaves.
func (l *Live) whepDelete(w http.ResponseWriter, r *http.Request) {
	p, err := l.auth.Authenticate(r)
	if err != nil {
		writeLiveProblem(w, http.StatusUnauthorized, liveCodeUnauthenticated, "log in first")
		return
	}
	s := l.session(r.PathValue("session"))
	if s == nil || s.transport != transportWebRTC || s.principal.UserID != p.UserID {
		writeLiveProblem(w, http.StatusNotFound, liveCodeNotFound, "no such session")
		return
	}
	s.stop(errLiveDeleted)
	w.WriteHeader(http.StatusOK)
}

// whepPatch answers trickle ICE and ICE restarts: not supported; the answer
// already holds every server candidate.
func (l *Live) whepPatch(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Allow", "DELETE")
	writeLiveProblem(w, http.StatusMethodNotAllowed, liveCodeNoTrickle, "trickle ICE is not supported: the answer carries every candidate")
}

// whepOptions answers OPTIONS on the WHEP endpoint.
func (l *Live) whepOptions(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Allow", "OPTIONS, POST")
	w.Header().Set("Accept-Post", "application/sdp")
	w.WriteHeader(http.StatusNoContent)
}
