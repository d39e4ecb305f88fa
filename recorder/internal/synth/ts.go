package synth

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"

	"github.com/kuzet/kuzet/ingest"
)

// LoadTS reads the H.264 video of an MPEG-TS clip at 25 fps (such as the
// camera simulator's testdata/clips/h264_1920x1080.ts) into a Clip without
// audio.
func LoadTS(path string) (*Clip, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("synth: %w", err)
	}
	defer f.Close()
	r := &mpegts.Reader{R: bufio.NewReaderSize(io.LimitReader(f, 64<<20), 64<<10)}
	if err := r.Initialize(); err != nil {
		return nil, fmt.Errorf("synth: %s: %w", path, err)
	}
	c := &Clip{}
	var sps, pps []byte
	for _, t := range r.Tracks() {
		if _, ok := t.Codec.(*mpegts.CodecH264); !ok {
			continue
		}
		r.OnDataH264(t, func(_, _ int64, au [][]byte) error {
			var out [][]byte
			for _, n := range au {
				if len(n) == 0 {
					continue
				}
				switch h264.NALUType(n[0] & 0x1f) {
				case h264.NALUTypeAccessUnitDelimiter:
					continue
				case h264.NALUTypeSPS:
					sps = append([]byte(nil), n...)
				case h264.NALUTypePPS:
					pps = append([]byte(nil), n...)
				}
				out = append(out, append([]byte(nil), n...))
			}
			c.AUs = append(c.AUs, out)
			return nil
		})
		break
	}
	for {
		if err := r.Read(); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, fmt.Errorf("synth: %s: %w", path, err)
		}
	}
	if len(c.AUs) == 0 || sps == nil || pps == nil {
		return nil, fmt.Errorf("synth: %s: no H.264 video with parameter sets", path)
	}
	var s h264.SPS
	if err := s.Unmarshal(sps); err != nil {
		return nil, fmt.Errorf("synth: %s: sps: %w", path, err)
	}
	c.Video = &ingest.Track{Codec: ingest.CodecH264, ClockRate: 90000, SPS: sps, PPS: pps, Width: s.Width(), Height: s.Height()}
	return c, nil
}
