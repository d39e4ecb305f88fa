package viewer

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/pion/webrtc/v4"

	"github.com/kuzet/kuzet/ingest"
)

func chromeOffer(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile("testdata/chrome_offer.sdp")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParseWHEPOffer(t *testing.T) {
	chrome := chromeOffer(t)
	tests := []struct {
		name    string
		sdp     string
		err     string // substring of the error, "" for none
		video   int    // video codecs found
		h264pm1 int    // of which H264 with packetization-mode=1
		audio   bool
	}{
		{name: "chrome", sdp: chrome, video: 25, h264pm1: 4, audio: true},
		{name: "chrome video only", sdp: removeSection(chrome, "m=audio"), video: 25, h264pm1: 4},
		{name: "audio sendonly is ignored", sdp: strings.Replace(chrome, "a=mid:1\r\n", "a=mid:1\r\na=sendonly\r\n", 1), video: 25, h264pm1: 4},
		{name: "empty", sdp: "", err: "empty"},
		{name: "garbage", sdp: "\x00\x01\x02", err: "not valid SDP"},
		{name: "video sendonly", sdp: strings.ReplaceAll(chrome, "a=recvonly", "a=sendonly"), err: "no video section"},
		{name: "video rejected", sdp: strings.Replace(chrome, "m=video 9", "m=video 0", 1), err: "no video section"},
		{name: "no fingerprint", sdp: dropLines(chrome, "a=fingerprint"), err: "fingerprint"},
		{name: "no ufrag", sdp: dropLines(chrome, "a=ice-ufrag"), err: "ICE credentials"},
		{name: "bad payload type", sdp: strings.Replace(chrome, "SAVPF 96 97", "SAVPF 96 abc", 1), err: "payload type"},
		{name: "payload type out of range", sdp: strings.Replace(chrome, "SAVPF 96 97", "SAVPF 96 200", 1), err: "payload type"},
		{name: "bad clock rate", sdp: strings.Replace(chrome, "H264/90000", "H264/x", 1), err: "clock rate"},
		{name: "too many sections", sdp: chrome + strings.Repeat(sectionOf(chrome, "m=audio"), 20), err: "media sections"},
		{name: "too large", sdp: chrome + strings.Repeat("a=x\r\n", 20000), err: "larger than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			off, err := parseWHEPOffer([]byte(tc.sdp))
			if tc.err != "" {
				var oe *whepOfferError
				if err == nil || !errors.As(err, &oe) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want a whepOfferError with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			pm1 := 0
			for _, c := range off.video {
				if pm, _ := c.param("packetization-mode"); c.name == "H264" && pm == "1" {
					pm1++
				}
			}
			if len(off.video) != tc.video || pm1 != tc.h264pm1 || off.hasAudio != tc.audio {
				t.Fatalf("video %d (H264 pm1 %d), audio %v; want %d (%d), %v", len(off.video), pm1, off.hasAudio, tc.video, tc.h264pm1, tc.audio)
			}
		})
	}
}

func sectionOf(sdp, prefix string) string {
	i := strings.Index(sdp, prefix)
	if i < 0 {
		return ""
	}
	rest := sdp[i:]
	if j := strings.Index(rest[2:], "m="); j >= 0 {
		return rest[:j+2]
	}
	return rest
}

func TestChooseCodecs(t *testing.T) {
	chrome := chromeOffer(t)
	withH265 := strings.Replace(chrome, "SAVPF 96 97", "SAVPF 96 49 97", 1) +
		"" // the H265 rtpmap goes into the video section below
	withH265 = strings.Replace(withH265, "a=rtpmap:96 VP8/90000\r\n",
		"a=rtpmap:96 VP8/90000\r\na=rtpmap:49 H265/90000\r\na=fmtp:49 level-id=93;profile-id=1;tier-flag=0;tx-mode=SRST\r\n", 1)
	h264 := func(profile byte) *ingest.Track {
		return &ingest.Track{Codec: ingest.CodecH264, ClockRate: 90000, SPS: []byte{0x67, profile, 0, 0x1f}}
	}
	h265 := &ingest.Track{Codec: ingest.CodecH265, ClockRate: 90000, SPS: mustHex("42010101600000030090000003000003003fa0050201696592a4932bc05a020000030002000003003210")}
	audio := func(c ingest.Codec, rate int) *ingest.Track {
		return &ingest.Track{Codec: c, ClockRate: rate, SampleRate: rate, Channels: 1}
	}
	tests := []struct {
		name    string
		sdp     string
		tracks  ingest.Tracks
		err     error
		videoPT webrtc.PayloadType
		audioPT int // -1 for none
		note    string
	}{
		{"main profile camera gets a main profile PT", chrome, ingest.Tracks{Video: h264(0x4d)}, nil, 127, -1, ""},
		{"high profile camera", chrome, ingest.Tracks{Video: h264(0x64)}, nil, 112, -1, ""},
		{"baseline camera gets baseline", chrome, ingest.Tracks{Video: h264(0x42)}, nil, 102, -1, ""},
		{"unknown profile falls back to constrained baseline", chrome, ingest.Tracks{Video: h264(0x7a)}, nil, 106, -1, ""},
		{"H.265 not offered", chrome, ingest.Tracks{Video: h265}, errWHEPNotPlayable, 0, -1, ""},
		{"H.265 offered", withH265, ingest.Tracks{Video: h265}, nil, 49, -1, ""},
		{"PCMU passes through", chrome, ingest.Tracks{Video: h264(0x4d), Audio: audio(ingest.CodecPCMU, 8000)}, nil, 127, 0, ""},
		{"PCMA passes through", chrome, ingest.Tracks{Video: h264(0x4d), Audio: audio(ingest.CodecPCMA, 8000)}, nil, 127, 8, ""},
		{"AAC is skipped", chrome, ingest.Tracks{Video: h264(0x4d), Audio: audio(ingest.CodecAAC, 48000)}, nil, 127, -1, "AAC"},
		{"G.711 without an audio section", removeSection(chrome, "m=audio"), ingest.Tracks{Video: h264(0x4d), Audio: audio(ingest.CodecPCMU, 8000)}, nil, 127, -1, "did not ask for audio"},
		{"PCMA not offered", dropLines(strings.Replace(chrome, " 0 8 13", " 0 13", 1), "a=rtpmap:8 "), ingest.Tracks{Video: h264(0x4d), Audio: audio(ingest.CodecPCMA, 8000)}, nil, 127, -1, "did not offer PCMA"},
		{"16 kHz G.711 is not standard", chrome, ingest.Tracks{Video: h264(0x4d), Audio: audio(ingest.CodecPCMU, 16000)}, nil, 127, -1, "not standard"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			off, err := parseWHEPOffer([]byte(tc.sdp))
			if err != nil {
				t.Fatal(err)
			}
			ch, err := whepChooseCodecs(off, &tc.tracks)
			if tc.err != nil {
				if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), "not playable in this browser") {
					t.Fatalf("error %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ch.video.PayloadType != tc.videoPT {
				t.Errorf("video PT %d (%s), want %d", ch.video.PayloadType, ch.video.SDPFmtpLine, tc.videoPT)
			}
			gotAudio := -1
			if ch.audio != nil {
				gotAudio = int(ch.audio.PayloadType)
			}
			if gotAudio != tc.audioPT || !strings.Contains(ch.audioNote, tc.note) || (tc.note == "") != (ch.audioNote == "") {
				t.Errorf("audio PT %d note %q, want %d %q", gotAudio, ch.audioNote, tc.audioPT, tc.note)
			}
		})
	}
}

// FuzzWHEPOffer feeds arbitrary offers through the signalling's parsing,
// codec choice and pion's own offer handling: none may panic, and whatever
// is accepted yields an answer.
func FuzzWHEPOffer(f *testing.F) {
	f.Add([]byte(chromeOffer(f)))
	x, err := newLiveICE(&LiveConfig{ICEUDPListen: "127.0.0.1:0", DisableICETCP: true, DisconnectedTimeout: 5e9, FailedTimeout: 5e9,
		NACKBufferPackets: 64}, testLogger(f))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(x.close)
	h264 := &ingest.Tracks{Video: &ingest.Track{Codec: ingest.CodecH264, ClockRate: 90000, SPS: testSPS, PPS: testPPS},
		Audio: &ingest.Track{Codec: ingest.CodecPCMU, ClockRate: 8000, SampleRate: 8000, Channels: 1}}
	h265 := &ingest.Tracks{Video: &ingest.Track{Codec: ingest.CodecH265, ClockRate: 90000, SPS: []byte{0x42, 1, 1, 1}}}
	f.Fuzz(func(t *testing.T, b []byte) {
		off, err := parseWHEPOffer(b)
		if err != nil {
			var oe *whepOfferError
			if !errors.As(err, &oe) {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		_, _ = whepChooseCodecs(off, h265)
		ch, err := whepChooseCodecs(off, h264)
		if err != nil {
			return
		}
		pc, err := x.newPeerConnection(ch)
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		tr, err := webrtc.NewTrackLocalStaticRTP(ch.video.RTPCodecCapability, "video", "s")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pc.AddTrack(tr); err != nil {
			t.Fatal(err)
		}
		if err := setRemoteOffer(pc, string(b)); err != nil {
			var oe *whepOfferError
			if !errors.As(err, &oe) {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		if _, err := pc.CreateAnswer(nil); err != nil {
			t.Logf("no answer: %v", err) // refused with 400 by the handler
		}
	})
}

// fuzzSeedBytes decodes a corpus file of the go fuzz format holding one
// []byte.
func fuzzSeedBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	lines := strings.SplitN(string(b), "\n", 2)
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "go test fuzz v1") {
		t.Fatalf("not a fuzz corpus file")
	}
	v := strings.TrimSpace(lines[1])
	v = strings.TrimSuffix(strings.TrimPrefix(v, "[]byte("), ")")
	s, err := strconv.Unquote(v)
	if err != nil {
		t.Fatalf("corpus value: %v", err)
	}
	return []byte(s)
}
