package ingest

import (
	"encoding/binary"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/sdp"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/pion/rtp"
)

// Fuzz targets for everything that handles bytes from a camera. Their seeds
// are in testdata/fuzz/<target>/ (generated from the clips in testdata and
// hand-made edge cases); plain `go test` runs them.

// splitNALUs turns fuzz input into NAL units: each is a 1-byte length and
// that many bytes (a length of 255 takes the rest).
func splitNALUs(b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		n := int(b[0])
		b = b[1:]
		if n == 255 || n > len(b) {
			n = len(b)
		}
		out = append(out, b[:n])
		b = b[n:]
	}
	return out
}

// joinNALUs is the inverse of splitNALUs for NAL units under 255 bytes
// (longer ones are cut).
func joinNALUs(nalus [][]byte) []byte {
	var b []byte
	for _, n := range nalus {
		if len(n) >= 255 {
			n = n[:254]
		}
		b = append(b, byte(len(n)))
		b = append(b, n...)
	}
	return b
}

// FuzzAssemble feeds access units of depacketized NAL units to the
// assembler (parameter sets, AUD removal, keyframe detection), the DTS
// extractor and the SPS parser, for both codecs.
func FuzzAssemble(f *testing.F) {
	for _, c := range []struct {
		codec Codec
		clip  string
	}{{CodecH264, "testdata/h264_320x240.h264"}, {CodecH265, "testdata/h265_320x240.h265"}, {CodecH264, "testdata/h264_bframes_320x240.h264"}} {
		for i, au := range loadAUs(f, c.clip, c.codec) {
			if i < 3 {
				f.Add(c.codec == CodecH265, joinNALUs(au))
			}
		}
	}
	f.Fuzz(func(t *testing.T, hevc bool, data []byte) {
		codec := CodecH264
		if hevc {
			codec = CodecH265
		}
		a := newVideoAssembler(codec, nil, nil, nil)
		d := dtsExtractor{codec: codec}
		const maxSize = 4096
		// Twice: the second time with the parameter sets learnt.
		for pass := 0; pass < 2; pass++ {
			out, key, size, err := a.assemble(splitNALUs(data), maxSize)
			if err != nil {
				continue
			}
			total := 0
			for _, n := range out {
				total += len(n)
				if len(n) < a.headerLen() {
					t.Fatal("empty NAL unit out")
				}
				if _, _, aud, _ := a.kind(a.nalType(n)); aud {
					t.Fatal("AUD out")
				}
			}
			if total != size || size > maxSize {
				t.Fatalf("size %d, counted %d", size, total)
			}
			if key {
				if a.track == nil || !paramsFirst(a, out) {
					t.Fatal("key unit without its parameter sets in front")
				}
				if _, err := d.extract(out, 0); err != nil {
					d.reset()
				}
			}
		}
		if a.sps != nil {
			parseSPSSize(codec, a.sps)
		}
	})
}

// FuzzParseSPS feeds raw bytes to the SPS parsers behind Track.Width and
// Height.
func FuzzParseSPS(f *testing.F) {
	f.Add(false, findParam(loadAUs(f, "testdata/h264_320x240.h264", CodecH264), CodecH264, h264NALSPS))
	f.Add(true, findParam(loadAUs(f, "testdata/h265_320x240.h265", CodecH265), CodecH265, h265NALSPS))
	f.Fuzz(func(t *testing.T, hevc bool, sps []byte) {
		codec := CodecH264
		if hevc {
			codec = CodecH265
		}
		w, h, err := parseSPSSize(codec, sps)
		if err == nil && (w < 0 || h < 0) {
			t.Fatalf("size %dx%d", w, h)
		}
	})
}

// encodePackets turns RTP packets into fuzz input: per packet a 2-byte
// payload length, a flags byte (bit 0 marker, bit 1 audio), a sequence
// step, a timestamp step (in 3600ths), then the payload.
func encodePackets(pkts []*rtp.Packet) []byte {
	var b []byte
	var seq uint16
	var ts uint32
	for i, p := range pkts {
		flags := byte(0)
		if p.Marker {
			flags |= 1
		}
		step := byte(1)
		tstep := byte(0)
		if i > 0 {
			step = byte(p.SequenceNumber - seq)
			tstep = byte((p.Timestamp - ts) / 3600)
		}
		seq, ts = p.SequenceNumber, p.Timestamp
		b = binary.BigEndian.AppendUint16(b, uint16(len(p.Payload)))
		b = append(b, flags, step, tstep)
		b = append(b, p.Payload...)
	}
	return b
}

// FuzzPacketsToUnits runs RTP packets through the whole receive path of a
// session: sequence tracking, the size guard, the depacketizers (H.264 or
// H.265 video, AAC audio), the assembler, the clocks and the stream.
func FuzzPacketsToUnits(f *testing.F) {
	for _, c := range []struct {
		hevc bool
		clip string
	}{{false, "testdata/h264_320x240.h264"}, {true, "testdata/h265_320x240.h265"}} {
		codec := CodecH264
		if c.hevc {
			codec = CodecH265
		}
		pkts := packetize(f, codec, loadAUs(f, c.clip, codec)[:4])
		f.Add(c.hevc, encodePackets(pkts))
	}
	f.Fuzz(runFuzzPackets)
}

func runFuzzPackets(t *testing.T, hevc bool, data []byte) {
	codec := CodecH264
	if hevc {
		codec = CodecH265
	}
	const maxAU = 64 << 10
	p := newPipeline(t, codec, true, maxAU)
	r, _ := p.stream.AddReader(ReaderConfig{Kind: ReaderRecorder, Capacity: 64})
	var seq, aseq uint16 = 100, 500
	var ts uint32
	for len(data) >= 5 {
		n := int(binary.BigEndian.Uint16(data))
		flags, step, tstep := data[2], data[3], data[4]
		data = data[5:]
		n = min(n, len(data))
		payload := data[:n]
		data = data[n:]
		ts += uint32(tstep) * 3600
		pkt := &rtp.Packet{Header: rtp.Header{Version: 2, Marker: flags&1 != 0, Timestamp: ts}, Payload: payload}
		if flags&2 != 0 {
			aseq += uint16(step)
			pkt.PayloadType, pkt.SequenceNumber = 97, aseq
			p.sess.onAudioRTP(pkt)
		} else {
			seq += uint16(step)
			pkt.PayloadType, pkt.SequenceNumber = 96, seq
			p.sess.onVideoRTP(pkt)
		}
		for _, it := range drain(r) {
			if u := it.Unit; u != nil && u.Size > maxAU {
				t.Fatalf("unit of %d bytes, max %d", u.Size, maxAU)
			}
		}
	}
}

// FuzzWrongSSRC parses the client's error text, which quotes the SSRCs the
// camera sent.
func FuzzWrongSSRC(f *testing.F) {
	f.Add("received packet with wrong SSRC 456, expected 123")
	f.Add("wrong SSRC ")
	f.Fuzz(func(t *testing.T, msg string) {
		got, expected, ok := wrongSSRC(msg)
		if ok && !strings.Contains(msg, strconv.FormatUint(uint64(got), 10)) {
			t.Fatalf("%q: got %d, expected %d", msg, got, expected)
		}
	})
}

// FuzzNTP converts sender-report timestamps.
func FuzzNTP(f *testing.F) {
	f.Add(uint64(0xe363887a17ced916), uint32(1234))
	f.Fuzz(func(t *testing.T, ntp uint64, ts uint32) {
		var c senderClock
		c.ok, c.ntp, c.rtp = true, ntpToTime(ntp), ts
		c.wall(ts+90000, 90000, c.ntp)
	})
}

// sdpOf returns the SDP of a camera offering the given formats.
func sdpOf(tb testing.TB, medias ...*description.Media) []byte {
	tb.Helper()
	b, err := description.Session{Medias: medias}.Marshal(false)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// FuzzSessionSetup feeds a camera's SDP through the client's parser to the
// source's track selection and the parameter sets it carries (sprop-
// parameter-sets, sprop-vps/sps/pps, AAC config).
func FuzzSessionSetup(f *testing.F) {
	h264 := loadAUs(f, "testdata/h264_320x240.h264", CodecH264)
	h265 := loadAUs(f, "testdata/h265_320x240.h265", CodecH265)
	video := func(ff format.Format) *description.Media {
		return &description.Media{Type: description.MediaTypeVideo, Formats: []format.Format{ff}}
	}
	audio := func(ff format.Format) *description.Media {
		return &description.Media{Type: description.MediaTypeAudio, Formats: []format.Format{ff}}
	}
	f.Add(sdpOf(f, video(&format.H264{PayloadTyp: 96, PacketizationMode: 1,
		SPS: findParam(h264, CodecH264, h264NALSPS), PPS: findParam(h264, CodecH264, h264NALPPS)})))
	f.Add(sdpOf(f, video(&format.H265{PayloadTyp: 96, VPS: findParam(h265, CodecH265, h265NALVPS),
		SPS: findParam(h265, CodecH265, h265NALSPS), PPS: findParam(h265, CodecH265, h265NALPPS)}),
		audio(&format.MPEG4Audio{PayloadTyp: 97, SizeLength: 13, IndexLength: 3, IndexDeltaLength: 3,
			Config: &mpeg4audio.AudioSpecificConfig{Type: mpeg4audio.ObjectTypeAACLC, SampleRate: 48000, ChannelCount: 2}})))
	f.Add(sdpOf(f, video(&format.MJPEG{}), audio(&format.G711{PayloadTyp: 8, SampleRate: 8000, ChannelCount: 1})))
	f.Fuzz(func(t *testing.T, b []byte) {
		var ssd sdp.SessionDescription
		if err := ssd.Unmarshal(b); err != nil {
			return
		}
		var desc description.Session
		if err := desc.Unmarshal(&ssd); err != nil {
			return
		}
		p := newPipeline(t, CodecH264, false, 1<<20)
		sess := &session{src: p.sess.src, restart: make(chan struct{}, 1)}
		if err := sess.setup(&desc); err != nil {
			var uc errUnsupportedCodec
			if !errors.As(err, &uc) || classify(err) != OfflineUnsupportedCodec {
				t.Fatalf("setup: %v", err)
			}
			return
		}
		if sess.video == nil && sess.audio == nil {
			t.Fatal("setup accepted a session without tracks")
		}
		if v := sess.video; v != nil && v.asm.complete() {
			v.asm.buildTrack()
		}
	})
}
