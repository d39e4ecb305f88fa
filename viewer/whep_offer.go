package viewer

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/kuzet/kuzet/ingest"
)

// Limits on what a browser may send as an offer.
const (
	whepMaxOfferBytes = 64 << 10
	whepMaxSections   = 16
	whepMaxCodecs     = 128
)

// whepOfferError is an offer the signalling refuses with 400; its text says
// why, for the client.
type whepOfferError struct{ msg string }

func (e *whepOfferError) Error() string { return e.msg }

func offerErrorf(format string, a ...any) error {
	return &whepOfferError{msg: fmt.Sprintf(format, a...)}
}

// whepOffer is what the signalling needs to know of a browser's offer.
type whepOffer struct {
	// video and audio are the codecs of the first video and audio section
	// that can receive; audio is nil when there is no such section.
	video []whepCodec
	audio []whepCodec
	// hasAudio is true when an audio section can receive.
	hasAudio bool
}

// whepCodec is one payload type of an offered section.
type whepCodec struct {
	pt        uint8
	name      string // upper case: H264, H265, PCMU, ...
	clockRate uint32
	channels  uint16
	fmtp      string
	feedback  []string // rtcp-fb values: "nack", "nack pli", "ccm fir", ...
}

func (c whepCodec) param(key string) (string, bool) {
	for _, kv := range strings.Split(c.fmtp, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if ok && strings.EqualFold(k, key) {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}

// parseWHEPOffer checks an SDP offer from a browser and extracts its
// receiving codecs. Any malformed or unusable offer is a *whepOfferError;
// it never panics, whatever the bytes.
func parseWHEPOffer(b []byte) (off *whepOffer, err error) {
	if len(b) == 0 {
		return nil, offerErrorf("the offer is empty")
	}
	if len(b) > whepMaxOfferBytes {
		return nil, offerErrorf("the offer is larger than %d bytes", whepMaxOfferBytes)
	}
	defer func() {
		// The SDP parser is a dependency: should it ever panic on odd
		// bytes, the offer is bad, not the server.
		if r := recover(); r != nil {
			off, err = nil, offerErrorf("the offer is not valid SDP")
		}
	}()
	var sd sdp.SessionDescription
	if err := sd.Unmarshal(b); err != nil {
		return nil, offerErrorf("the offer is not valid SDP: %v", err)
	}
	if len(sd.MediaDescriptions) > whepMaxSections {
		return nil, offerErrorf("the offer has %d media sections; at most %d are accepted", len(sd.MediaDescriptions), whepMaxSections)
	}
	_, sessUfrag := sd.Attribute("ice-ufrag")
	_, sessPwd := sd.Attribute("ice-pwd")
	_, sessFP := sd.Attribute("fingerprint")
	off = &whepOffer{}
	haveVideo := false
	for _, md := range sd.MediaDescriptions {
		if md == nil || md.MediaName.Port.Value == 0 {
			continue // rejected or disabled section
		}
		kind := md.MediaName.Media
		if kind != "video" && kind != "audio" {
			continue
		}
		if !whepCanReceive(md) {
			continue
		}
		if kind == "video" && haveVideo || kind == "audio" && off.hasAudio {
			continue
		}
		_, ufrag := md.Attribute("ice-ufrag")
		_, pwd := md.Attribute("ice-pwd")
		_, fp := md.Attribute("fingerprint")
		if !(ufrag || sessUfrag) || !(pwd || sessPwd) {
			return nil, offerErrorf("the offer's %s section has no ICE credentials (ice-ufrag, ice-pwd)", kind)
		}
		if !fp && !sessFP {
			return nil, offerErrorf("the offer's %s section has no DTLS fingerprint", kind)
		}
		codecs, err := whepSectionCodecs(md)
		if err != nil {
			return nil, err
		}
		if len(codecs) == 0 {
			return nil, offerErrorf("the offer's %s section lists no formats", kind)
		}
		if kind == "video" {
			haveVideo, off.video = true, codecs
		} else {
			off.hasAudio, off.audio = true, codecs
		}
	}
	if !haveVideo {
		return nil, offerErrorf("the offer has no video section that can receive (recvonly or sendrecv)")
	}
	return off, nil
}

// whepCanReceive reports whether a section's direction lets the browser receive.
func whepCanReceive(md *sdp.MediaDescription) bool {
	for _, a := range md.Attributes {
		switch a.Key {
		case "sendonly", "inactive":
			return false
		case "recvonly", "sendrecv":
			return true
		}
	}
	return true // sendrecv by default
}

// whepSectionCodecs lists the payload types of a section with their rtpmap,
// fmtp and rtcp-fb attributes.
func whepSectionCodecs(md *sdp.MediaDescription) ([]whepCodec, error) {
	if len(md.MediaName.Formats) > whepMaxCodecs {
		return nil, offerErrorf("the offer's %s section lists %d formats; at most %d are accepted",
			md.MediaName.Media, len(md.MediaName.Formats), whepMaxCodecs)
	}
	var out []whepCodec
	index := map[uint8]int{}
	for _, f := range md.MediaName.Formats {
		pt, err := strconv.ParseUint(f, 10, 8)
		if err != nil || pt > 127 {
			return nil, offerErrorf("the offer's %s section has payload type %q, not 0..127", md.MediaName.Media, f)
		}
		if _, dup := index[uint8(pt)]; dup {
			continue
		}
		c := whepCodec{pt: uint8(pt)}
		// Static payload types need no rtpmap (RFC 3551).
		switch pt {
		case 0:
			c.name, c.clockRate, c.channels = "PCMU", 8000, 1
		case 8:
			c.name, c.clockRate, c.channels = "PCMA", 8000, 1
		}
		index[uint8(pt)] = len(out)
		out = append(out, c)
	}
	for _, a := range md.Attributes {
		pts, rest, ok := strings.Cut(a.Value, " ")
		if !ok {
			continue
		}
		pt, err := strconv.ParseUint(pts, 10, 8)
		if err != nil {
			continue
		}
		i, known := index[uint8(pt)]
		if !known {
			continue
		}
		rest = strings.TrimSpace(rest)
		switch a.Key {
		case "rtpmap":
			name, params, _ := strings.Cut(rest, "/")
			rate, chans, _ := strings.Cut(params, "/")
			r, err := strconv.ParseUint(rate, 10, 32)
			if err != nil || r == 0 {
				return nil, offerErrorf("the offer's rtpmap %q has no valid clock rate", a.Value)
			}
			out[i].name, out[i].clockRate = strings.ToUpper(name), uint32(r)
			out[i].channels = 0
			if chans != "" {
				if n, err := strconv.ParseUint(chans, 10, 16); err == nil {
					out[i].channels = uint16(n)
				}
			}
		case "fmtp":
			out[i].fmtp = rest
		case "rtcp-fb":
			if len(out[i].feedback) < 16 {
				out[i].feedback = append(out[i].feedback, rest)
			}
		}
	}
	return out, nil
}

// errWHEPNotPlayable is the camera's video codec missing from the offer.
var errWHEPNotPlayable = errors.New("this camera's codec is not playable in this browser")

// whepChoice is the answer's codecs for one camera and one offer.
type whepChoice struct {
	video webrtc.RTPCodecParameters
	// audio is nil when no audio is sent; audioNote then says why (empty
	// when the camera has no audio).
	audio     *webrtc.RTPCodecParameters
	audioNote string
}

// whepChooseCodecs picks what to send of tracks given an offer: the camera's
// video codec as the browser offered it (never transcoded), and its G.711
// audio when offered. A video codec the browser did not offer is
// errWHEPNotPlayable.
func whepChooseCodecs(off *whepOffer, tracks *ingest.Tracks) (whepChoice, error) {
	var ch whepChoice
	if tracks == nil || tracks.Video == nil {
		return ch, errors.New("the camera has no video")
	}
	v := tracks.Video
	var best *whepCodec
	switch v.Codec {
	case ingest.CodecH264:
		best = whepPickH264(off.video, v.SPS)
	case ingest.CodecH265:
		best = whepPickH265(off.video, v.SPS)
	}
	if best == nil {
		return ch, fmt.Errorf("%w: the camera sends %s and the browser offered %s", errWHEPNotPlayable, v.Codec, whepOfferedNames(off.video))
	}
	ch.video = whepCodecParams(*best, "video/"+string(v.Codec))
	a := tracks.Audio
	switch {
	case a == nil:
	case a.Codec == ingest.CodecAAC:
		ch.audioNote = "the camera's AAC audio cannot be sent over WebRTC; live view is silent"
	case a.Codec != ingest.CodecPCMU && a.Codec != ingest.CodecPCMA:
		ch.audioNote = fmt.Sprintf("the camera's %s audio is not sent in live view", a.Codec)
	case !off.hasAudio:
		ch.audioNote = "the browser did not ask for audio"
	case a.SampleRate != 0 && a.SampleRate != 8000 || a.Channels > 1:
		ch.audioNote = fmt.Sprintf("the camera's %s audio (%d Hz, %d channels) is not standard G.711; live view is silent", a.Codec, a.SampleRate, a.Channels)
	default:
		for _, c := range off.audio {
			if c.name == string(a.Codec) && c.clockRate == 8000 {
				p := whepCodecParams(c, "audio/"+string(a.Codec))
				ch.audio = &p
				break
			}
		}
		if ch.audio == nil {
			ch.audioNote = fmt.Sprintf("the browser did not offer %s audio; live view is silent", a.Codec)
		}
	}
	return ch, nil
}

func whepOfferedNames(cs []whepCodec) string {
	seen := map[string]bool{}
	var names []string
	for _, c := range cs {
		if c.name != "" && c.name != "RTX" && !seen[c.name] {
			seen[c.name] = true
			names = append(names, c.name)
		}
	}
	if len(names) == 0 {
		return "nothing usable"
	}
	return strings.Join(names, ", ")
}

// whepCodecParams turns an offered codec into the answer's codec, keeping its
// payload type and fmtp so that it matches exactly, with the feedback the
// sender acts on (NACK; PLI and FIR are read and ignored, as a camera
// cannot be asked for a keyframe).
func whepCodecParams(c whepCodec, mime string) webrtc.RTPCodecParameters {
	var fb []webrtc.RTCPFeedback
	for _, f := range c.feedback {
		typ, param, _ := strings.Cut(f, " ")
		switch {
		case typ == "nack" && (param == "" || param == "pli"), typ == "ccm" && param == "fir":
			fb = append(fb, webrtc.RTCPFeedback{Type: typ, Parameter: param})
		}
	}
	return webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: mime, ClockRate: c.clockRate, Channels: c.channels, SDPFmtpLine: c.fmtp, RTCPFeedback: fb,
		},
		PayloadType: webrtc.PayloadType(c.pt),
	}
}

// whepPickH264 chooses among the offered H.264 formats one with
// packetization-mode=1 (the camera's NAL units may be larger than a
// packet), preferring the camera's profile, then Constrained Baseline (which
// every browser offers and, in practice, decodes any profile under), then
// any.
func whepPickH264(cs []whepCodec, sps []byte) *whepCodec {
	var profile byte
	if len(sps) >= 4 {
		profile = sps[1]
	}
	var exact, baseline, any *whepCodec
	for i := range cs {
		c := &cs[i]
		if c.name != "H264" || c.clockRate != 90000 {
			continue
		}
		if pm, _ := c.param("packetization-mode"); pm != "1" {
			continue
		}
		plid, _ := c.param("profile-level-id")
		p, err := strconv.ParseUint(plid, 16, 32)
		if err != nil || len(plid) != 6 {
			continue
		}
		idc := byte(p >> 16)
		iop := byte(p >> 8)
		switch {
		case exact == nil && profile != 0 && idc == profile:
			exact = c
		case baseline == nil && idc == 0x42 && iop&0x40 != 0:
			baseline = c
		case any == nil:
			any = c
		}
	}
	for _, c := range []*whepCodec{exact, baseline, any} {
		if c != nil {
			return c
		}
	}
	return nil
}

// whepPickH265 chooses an offered H.265 format, preferring the camera's
// general_profile_idc.
func whepPickH265(cs []whepCodec, sps []byte) *whepCodec {
	profile := -1
	if len(sps) >= 4 {
		profile = int(sps[3] & 0x1f)
	}
	var first *whepCodec
	for i := range cs {
		c := &cs[i]
		if c.name != "H265" || c.clockRate != 90000 {
			continue
		}
		id, ok := c.param("profile-id")
		if !ok {
			id = "1"
		}
		if strconv.Itoa(profile) == id {
			return c
		}
		if first == nil {
			first = c
		}
	}
	return first
}
