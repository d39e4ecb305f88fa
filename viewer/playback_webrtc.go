package viewer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/kuzet/kuzet/ingest"
	"github.com/kuzet/kuzet/registry"
)

// playbackStart is a session request the API has authorised.
type playbackStart struct {
	principal registry.Principal
	client    string
	reason    string
	incident  int64
	facility  string
	// cameras are the cameras in the order of the offer's video sections.
	cameras  []string
	from, to time.Time
	at       time.Time
	paused   bool
	offer    []byte
}

// playbackTrack maps a camera to the media section that carries it.
type playbackTrack struct {
	Camera string `json:"camera"`
	Mid    string `json:"mid"`
	Codec  string `json:"codec"`
}

// playbackUnplayable is a camera of the request that is not sent.
type playbackUnplayable struct {
	Camera string `json:"camera"`
	Reason string `json:"reason"`
}

// playbackStarted is the answer to a session request.
type playbackStarted struct {
	Session    string               `json:"session"`
	Answer     string               `json:"answer"`
	From       time.Time            `json:"from"`
	To         time.Time            `json:"to"`
	At         time.Time            `json:"at"`
	Tracks     []playbackTrack      `json:"tracks"`
	Unplayable []playbackUnplayable `json:"unplayable"`
}

// playbackOfferSections lists the codecs of every video section of an offer
// that can receive, in order. The offer must pass parseWHEPOffer's checks.
func playbackOfferSections(b []byte) (sections [][]whepCodec, err error) {
	if _, err := parseWHEPOffer(b); err != nil {
		return nil, err
	}
	defer func() {
		if r := recover(); r != nil {
			sections, err = nil, offerErrorf("the offer is not valid SDP")
		}
	}()
	var sd sdp.SessionDescription
	if err := sd.Unmarshal(b); err != nil {
		return nil, offerErrorf("the offer is not valid SDP: %v", err)
	}
	for _, md := range sd.MediaDescriptions {
		if md == nil || md.MediaName.Media != "video" || md.MediaName.Port.Value == 0 || !whepCanReceive(md) {
			continue
		}
		cs, err := whepSectionCodecs(md)
		if err != nil {
			return nil, err
		}
		sections = append(sections, cs)
	}
	return sections, nil
}

// cameraCodec is the codec of a camera's first recording in [from, to), or
// "" when it has none.
func (p *Playback) cameraCodec(ctx context.Context, camera string, from, to time.Time) (string, error) {
	for pos := from; pos.Before(to); pos = pos.Add(playMaxPage) {
		segs, err := p.recs.RecordedSegments(ctx, camera, pos, minTime(pos.Add(playMaxPage), to))
		if err != nil {
			return "", err
		}
		for _, s := range segs {
			if len(s.Fragments) > 0 {
				return s.Codec, nil
			}
		}
	}
	return "", nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// start negotiates a session for req and starts it.
func (p *Playback) start(ctx context.Context, req playbackStart) (playbackStarted, error) {
	var out playbackStarted
	live := p.live.Load()
	if live == nil {
		return out, errPlaybackUnavailable
	}
	if p.Sessions() >= p.cfg.MaxSessions {
		return out, errPlaybackFull
	}
	sections, err := playbackOfferSections(req.offer)
	if err != nil {
		return out, err
	}
	if len(sections) < len(req.cameras) {
		return out, offerErrorf("the offer has %d video sections that can receive; %d cameras need one each", len(sections), len(req.cameras))
	}
	id, err := newLiveSessionID()
	if err != nil {
		return out, err
	}
	sctx, cancel := context.WithCancelCause(context.Background())
	s := &playSession{
		id: id, principal: req.principal, client: req.client, reason: req.reason, incident: req.incident, facility: req.facility,
		from: req.from, to: req.to, at: req.at, paused: req.paused, sdpOffer: req.offer, started: p.cfg.Now(), cancel: cancel,
		ctrl: make(chan playControl, 32), connected: make(chan struct{}), live: live,
	}
	out = playbackStarted{Session: id, From: req.from, To: req.to, At: req.at, Tracks: []playbackTrack{}, Unplayable: []playbackUnplayable{}}
	var codecs []webrtc.RTPCodecParameters
	for i, cam := range req.cameras {
		codec, err := p.cameraCodec(ctx, cam, req.from, req.to)
		if err != nil {
			cancel(err)
			return out, fmt.Errorf("recording index: %w", err)
		}
		if codec == "" {
			codec = string(ingest.CodecH264) // nothing recorded: the track only carries gaps
		}
		var pick *whepCodec
		switch codec {
		case string(ingest.CodecH264):
			pick = whepPickH264(sections[i], nil)
		case string(ingest.CodecH265):
			pick = whepPickH265(sections[i], nil)
		}
		if pick == nil {
			out.Unplayable = append(out.Unplayable, playbackUnplayable{Camera: cam,
				Reason: fmt.Sprintf("the camera's %s video is not playable in this browser", codec)})
			continue
		}
		params := whepCodecParams(*pick, "video/"+codec)
		codecs = append(codecs, params)
		s.cams = append(s.cams, &playCam{id: cam, codec: codec, params: params, utrack: &ingest.Track{Codec: ingest.Codec(codec), ClockRate: 90000}})
	}
	if len(s.cams) == 0 {
		cancel(errWHEPNotPlayable)
		return out, fmt.Errorf("%w: none of the cameras can be played in this browser", errWHEPNotPlayable)
	}
	answer, err := p.negotiate(ctx, s, codecs)
	if err != nil {
		cancel(err)
		return out, err
	}
	out.Answer = answer
	for _, c := range s.cams {
		out.Tracks = append(out.Tracks, playbackTrack{Camera: c.id, Mid: c.mid, Codec: c.codec})
	}
	e := registry.EntryFor(req.principal, req.client, registry.AuditPlayback)
	e.Facility, e.From, e.To, e.Reason, e.Outcome = req.facility, req.from, req.to, req.reason, registry.OutcomeStarted
	e.Objects = s.objects()
	e.Detail = fmt.Sprintf("session %s from %s", id, req.at.Format(time.RFC3339Nano))
	if err := p.audit.Record(ctx, e); err != nil {
		cancel(err)
		s.closePeer()
		return out, fmt.Errorf("%w: %v", registry.ErrAudit, err)
	}
	if err := p.addSession(s, func() { p.runSession(sctx, s) }); err != nil {
		cancel(err)
		s.closePeer()
		p.record(s.endEntry(err, time.Time{}, time.Time{}))
		return out, err
	}
	return out, nil
}

// objects are the audit objects of a session.
func (s *playSession) objects() []string {
	var o []string
	if s.incident != 0 {
		o = append(o, fmt.Sprintf("incident:%d", s.incident))
	}
	for _, c := range s.cams {
		o = append(o, "camera:"+c.id)
	}
	return o
}

// negotiate builds the session's peer connection with one track per camera
// and a data channel from the browser, and returns the answer with every
// candidate.
func (p *Playback) negotiate(ctx context.Context, s *playSession, codecs []webrtc.RTPCodecParameters) (string, error) {
	live := s.live
	x := live.ice
	m := &webrtc.MediaEngine{}
	seen := map[string]bool{}
	for _, c := range codecs {
		k := fmt.Sprintf("%s/%d/%s", c.MimeType, c.PayloadType, c.SDPFmtpLine)
		if seen[k] {
			continue
		}
		seen[k] = true
		if err := m.RegisterCodec(c, webrtc.RTPCodecTypeVideo); err != nil {
			return "", fmt.Errorf("register %s: %w", c.MimeType, err)
		}
	}
	pc, err := x.peerConnection(m)
	if err != nil {
		return "", err
	}
	s.pc = pc
	ok := false
	defer func() {
		if !ok {
			_ = pc.Close()
		}
	}()
	watchPeer(pc, s.connected, s.stop)
	pc.OnDataChannel(func(dc *webrtc.DataChannel) {
		if dc.Label() != "control" {
			return
		}
		dc.OnOpen(func() {
			s.setDataChannel(dc)
			s.push(playControl{sync: true})
		})
		dc.OnMessage(func(msg webrtc.DataChannelMessage) {
			if !msg.IsString {
				return
			}
			c, err := parsePlayCommand(msg.Data)
			if err != nil {
				s.push(playControl{err: err.Error()})
				return
			}
			s.push(playControl{cmd: c})
		})
	})
	for _, c := range s.cams {
		c.track, err = webrtc.NewTrackLocalStaticRTP(c.params.RTPCodecCapability, "video-"+c.id, "kuzet-"+c.id)
		if err != nil {
			return "", fmt.Errorf("track: %w", err)
		}
		snd, err := pc.AddTrack(c.track)
		if err != nil {
			return "", fmt.Errorf("add track: %w", err)
		}
		s.senders = append(s.senders, snd)
		c.writer, err = newLiveRTPWriter(whepChoice{video: c.params}, &livePeer{video: c.track}, live.cfg.PayloadMaxSize)
		if err != nil {
			return "", err
		}
	}
	if err := setRemoteOffer(pc, string(s.offer())); err != nil {
		return "", err
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return "", offerErrorf("no answer to this offer: %v", err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(answer); err != nil {
		return "", fmt.Errorf("set local description: %w", err)
	}
	t := time.NewTimer(live.cfg.GatherTimeout)
	defer t.Stop()
	select {
	case <-gathered:
	case <-t.C:
		p.log.Warn("ICE gathering incomplete; answering with the candidates so far", "session", s.id)
	case <-ctx.Done():
		return "", ctx.Err()
	}
	ld := pc.LocalDescription()
	if ld == nil {
		return "", errors.New("no local description")
	}
	for _, tr := range pc.GetTransceivers() {
		snd := tr.Sender()
		if snd == nil || snd.Track() == nil {
			continue
		}
		for _, c := range s.cams {
			if snd.Track().ID() == "video-"+c.id {
				c.mid = tr.Mid()
			}
		}
	}
	for _, c := range s.cams {
		if c.mid == "" {
			return "", offerErrorf("the offer has no video section left for camera %s", c.id)
		}
	}
	if !strings.Contains(ld.SDP, "m=application") {
		return "", offerErrorf("the offer has no data channel (the player controls playback through one named \"control\")")
	}
	ok = true
	return ld.SDP, nil
}
