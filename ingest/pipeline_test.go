package ingest

import (
	"testing"

	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/pion/rtp"
)

// pipeline is a session without a network: packets go straight into the
// source's RTP callbacks, units come out of the stream. Fuzz targets and
// benchmarks drive it.
type pipeline struct {
	sess   *session
	stream *Stream
}

func newPipeline(tb testing.TB, codec Codec, audio bool, maxAU int) *pipeline {
	tb.Helper()
	st := NewStream(StreamConfig{Camera: "p", GOPCacheBytes: 1 << 20}, nil, nil)
	src, err := NewSource(SourceConfig{Camera: "p", URL: "rtsp://127.0.0.1:1/p", MaxAccessUnit: maxAU}, st, nil, nil)
	if err != nil {
		tb.Fatal(err)
	}
	sess := &session{src: src, restart: make(chan struct{}, 1),
		pending: &Event{Reason: ReasonDiscontinuity, Detail: DetailSessionStarted}}
	var f format.Format = &format.H264{PayloadTyp: 96, PacketizationMode: 1}
	if codec == CodecH265 {
		f = &format.H265{PayloadTyp: 96}
	}
	var name string
	sess.video, name = newVideoTrack(&description.Media{Type: description.MediaTypeVideo, Formats: []format.Format{f}}, maxAU)
	if sess.video == nil {
		tb.Fatal(name)
	}
	if audio {
		af := &format.MPEG4Audio{PayloadTyp: 97, SizeLength: 13, IndexLength: 3, IndexDeltaLength: 3,
			Config: &mpeg4audio.AudioSpecificConfig{Type: mpeg4audio.ObjectTypeAACLC, SampleRate: 16000, ChannelCount: 1}}
		sess.audio, name = newAudioTrack(&description.Media{Type: description.MediaTypeAudio, Formats: []format.Format{af}}, maxAU)
		if sess.audio == nil {
			tb.Fatal(name)
		}
		sess.audio.track.ID = 1
	}
	return &pipeline{sess: sess, stream: st}
}

// packetize turns access units into RTP packets, 40 ms apart.
func packetize(tb testing.TB, codec Codec, aus [][][]byte) []*rtp.Packet {
	tb.Helper()
	var enc interface {
		Encode([][]byte) ([]*rtp.Packet, error)
	}
	var err error
	if codec == CodecH265 {
		f := &format.H265{PayloadTyp: 96}
		enc, err = f.CreateEncoder()
	} else {
		f := &format.H264{PayloadTyp: 96, PacketizationMode: 1}
		enc, err = f.CreateEncoder()
	}
	if err != nil {
		tb.Fatal(err)
	}
	var out []*rtp.Packet
	for i, au := range aus {
		pkts, err := enc.Encode(au)
		if err != nil {
			tb.Fatal(err)
		}
		for _, p := range pkts {
			p.Timestamp = uint32(i * 3600)
			out = append(out, p)
		}
	}
	return out
}

// TestPipelineOrder checks the pipeline the fuzz targets and benchmarks use:
// the clip's packets come out as its access units, keyframes first.
func TestPipelineOrder(t *testing.T) {
	for _, codec := range []Codec{CodecH264, CodecH265} {
		t.Run(string(codec), func(t *testing.T) {
			clip := "testdata/h264_320x240.h264"
			if codec == CodecH265 {
				clip = "testdata/h265_320x240.h265"
			}
			aus := loadAUs(t, clip, codec)
			p := newPipeline(t, codec, false, 1<<20)
			r, _ := p.stream.AddReader(ReaderConfig{Kind: ReaderRecorder, Capacity: 256})
			for _, pkt := range packetize(t, codec, aus) {
				p.sess.onVideoRTP(pkt)
			}
			items := drain(r)
			if items[0].Event == nil || items[0].Event.Tracks.Video.Width != 320 {
				t.Fatalf("first item %+v", items[0])
			}
			// The encoder sets marker bits, so every unit comes out.
			us := unitsOf(items)
			if len(us) != len(aus) {
				t.Fatalf("%d units from %d access units", len(us), len(aus))
			}
			for i, u := range us {
				if u.PTS != int64(i)*3600 {
					t.Fatalf("unit %d PTS %d", i, u.PTS)
				}
			}
		})
	}
}
