package ingest

import (
	"fmt"
	"testing"

	"github.com/pion/rtp"
)

// BenchmarkPacketToFanout measures the hot path per access unit: RTP
// packets of a real 320x240 H.264 clip through sequence tracking, the size
// guard, the depacketizer, the assembler, the clocks and Publish into a
// stream with 1, 4 and 16 readers, which take every unit out. One op is
// one access unit (the clip averages packets/AU packets per unit).
func BenchmarkPacketToFanout(b *testing.B) {
	clip := loadAUs(b, "testdata/h264_320x240.h264", CodecH264)
	b.Run("clip=320x240", func(b *testing.B) { benchFanout(b, clip) })
	// Pictures the size of a 1080p camera at 4 Mbit/s, 25 fps, 2 s GOP:
	// a 200 KB IDR and 49 P-frames of 16 KB (slice bytes are filler; the
	// clip's parameter sets keep the decode-time path real).
	sps, pps := findParam(clip, CodecH264, h264NALSPS), findParam(clip, CodecH264, h264NALPPS)
	var big [][][]byte
	for i := 0; i < 50; i++ {
		if i == 0 {
			big = append(big, [][]byte{sps, pps, filler(0x65, 200<<10)})
		} else {
			big = append(big, [][]byte{filler(0x41, 16<<10)})
		}
	}
	b.Run("clip=1080p-4Mbps", func(b *testing.B) { benchFanout(b, big) })
}

func filler(header byte, n int) []byte {
	p := make([]byte, n)
	p[0] = header
	for i := 1; i < n; i++ {
		p[i] = byte(i%250) + 1
	}
	return p
}

func benchFanout(b *testing.B, aus [][][]byte) {
	pkts := packetize(b, CodecH264, aus)
	// Group the packets by access unit.
	var groups [][]*rtp.Packet
	for _, p := range pkts {
		if len(groups) == 0 || groups[len(groups)-1][0].Timestamp != p.Timestamp {
			groups = append(groups, nil)
		}
		groups[len(groups)-1] = append(groups[len(groups)-1], p)
	}
	loopTicks := uint32(len(groups) * 3600)
	for _, n := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("readers=%d", n), func(b *testing.B) {
			p := newPipeline(b, CodecH264, false, 4<<20)
			readers := make([]*Reader, n)
			for i := range readers {
				readers[i], _ = p.stream.AddReader(ReaderConfig{Kind: ReaderLive, Capacity: 256})
			}
			var seq uint16
			b.ReportAllocs()
			b.ResetTimer()
			got := 0
			for i := 0; i < b.N; i++ {
				g := groups[i%len(groups)]
				loop := uint32(i / len(groups))
				for _, pkt := range g {
					// The same packets, later in the stream.
					pkt.SequenceNumber = seq
					seq++
					pkt.Timestamp = pkt.Timestamp%loopTicks + loop*loopTicks
					p.sess.onVideoRTP(pkt)
				}
				for _, r := range readers {
					for {
						it, ok := r.TryRead()
						if !ok {
							break
						}
						if it.Unit != nil {
							got++
						}
					}
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(len(pkts))/float64(len(groups)), "packets/AU")
			if b.N > len(groups) && got < (b.N-len(groups))*n {
				b.Fatalf("readers got %d units of %d", got, b.N*n)
			}
			for _, r := range readers {
				if r.Dropped() != 0 {
					b.Fatalf("reader dropped %d", r.Dropped())
				}
			}
		})
	}
}
