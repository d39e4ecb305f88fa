package segment

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/g711"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"

	"github.com/kuzet/kuzet/ingest"
)

// Track ids in the files.
const (
	VideoTrackID = 1
	AudioTrackID = 2
)

// VideoTimescale is the timescale of the video track: RTP's 90 kHz clock.
const VideoTimescale = 90000

// sample is one media sample of a fragment being built: a reference to the
// shared unit, never a copy of its bytes.
type sample struct {
	u   *ingest.Unit
	dur uint32
	cto int32 // PTS - DTS (video)
	at  int64 // audio: decode time on the video clock (90 kHz, run time)
}

// sampleSize returns the bytes the sample takes in the mdat.
func (w *fileWriter) sampleSize(s *sample, video bool) int64 {
	if video {
		n := int64(0)
		for _, nalu := range s.u.NALUs {
			n += 4 + int64(len(nalu))
		}
		return n
	}
	if w.audioPCM {
		return 2 * int64(len(s.u.Payload))
	}
	return int64(len(s.u.Payload))
}

// InitSection builds the fMP4 init section (ftyp+moov) of tracks.
func InitSection(tracks *ingest.Tracks) ([]byte, error) {
	if tracks == nil || tracks.Video == nil {
		return nil, errors.New("segment: no video track")
	}
	v := tracks.Video
	init := fmp4.Init{}
	switch v.Codec {
	case ingest.CodecH264:
		init.Tracks = append(init.Tracks, &fmp4.InitTrack{ID: VideoTrackID, TimeScale: VideoTimescale,
			Codec: &mp4.CodecH264{SPS: v.SPS, PPS: v.PPS}})
	case ingest.CodecH265:
		init.Tracks = append(init.Tracks, &fmp4.InitTrack{ID: VideoTrackID, TimeScale: VideoTimescale,
			Codec: &mp4.CodecH265{VPS: v.VPS, SPS: v.SPS, PPS: v.PPS}})
	default:
		return nil, fmt.Errorf("segment: video codec %q cannot be recorded", v.Codec)
	}
	if a := audioCodec(tracks.Audio); a != nil {
		init.Tracks = append(init.Tracks, &fmp4.InitTrack{ID: AudioTrackID, TimeScale: uint32(tracks.Audio.ClockRate), Codec: a})
	}
	var buf seekablebuffer.Buffer
	if err := marshalInit(&init, &buf); err != nil {
		return nil, fmt.Errorf("segment: init section for %s: %w", v, err)
	}
	return buf.Bytes(), nil
}

// marshalInit guards the muxer against parameter sets it cannot digest:
// they come from cameras.
func marshalInit(init *fmp4.Init, w io.WriteSeeker) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("invalid parameter sets: %v", r)
		}
	}()
	return init.Marshal(w)
}

// audioCodec returns the fMP4 codec of an audio track, or nil when the
// track is absent or cannot be stored (it is then left out).
func audioCodec(a *ingest.Track) mp4.Codec {
	if a == nil || a.ClockRate <= 0 {
		return nil
	}
	switch a.Codec {
	case ingest.CodecAAC:
		var conf mpeg4audio.AudioSpecificConfig
		if err := conf.Unmarshal(a.AudioConfig); err != nil {
			return nil
		}
		return &mp4.CodecMPEG4Audio{Config: conf}
	case ingest.CodecPCMU, ingest.CodecPCMA:
		ch := a.Channels
		if ch <= 0 {
			ch = 1
		}
		return &mp4.CodecLPCM{BitDepth: 16, SampleRate: a.ClockRate, ChannelCount: ch}
	}
	return nil
}

// AudioCodecName is the name stored in the index for a track's audio ("" if
// it is not recorded).
func AudioCodecName(tracks *ingest.Tracks) string {
	if tracks == nil || audioCodec(tracks.Audio) == nil {
		return ""
	}
	return string(tracks.Audio.Codec)
}

// hashWriter counts and hashes what goes to w.
type hashWriter struct {
	w io.Writer
	h hash.Hash
	n int64
}

func (hw *hashWriter) Write(p []byte) (int, error) {
	n, err := hw.w.Write(p)
	hw.h.Write(p[:n])
	hw.n += int64(n)
	return n, err
}

// fileWriter writes one segment file.
type fileWriter struct {
	hw       hashWriter
	seq      uint32
	audioPCM bool
	pcmTable *[256]uint16
	moof     []byte
	scratch  []byte
}

func newFileWriter(w io.Writer, init []byte, tracks *ingest.Tracks) (*fileWriter, error) {
	fw := &fileWriter{hw: hashWriter{w: w, h: sha256.New()}, moof: make([]byte, 0, 4096)}
	if a := tracks.Audio; a != nil && (a.Codec == ingest.CodecPCMU || a.Codec == ingest.CodecPCMA) && audioCodec(a) != nil {
		fw.audioPCM = true
		fw.pcmTable = pcmTable(a.Codec)
	}
	if _, err := fw.hw.Write(init); err != nil {
		return nil, err
	}
	return fw, nil
}

// pcmTable returns the G.711 expansion table of codec.
func pcmTable(codec ingest.Codec) *[256]uint16 {
	var in [256]byte
	for i := range in {
		in[i] = byte(i)
	}
	var out []byte
	if codec == ingest.CodecPCMU {
		var m g711.Mulaw
		m.Unmarshal(in[:])
		out = m
	} else {
		var a g711.Alaw
		a.Unmarshal(in[:])
		out = a
	}
	t := new([256]uint16)
	for i := range t {
		t[i] = binary.BigEndian.Uint16(out[2*i:])
	}
	return t
}

// Sample flags (ISO/IEC 14496-12 8.8.3.1).
const (
	flagsSync    = 0x02000000 // sample_depends_on = 2 (I picture)
	flagsNonSync = 0x01010000 // sample_depends_on = 1, sample_is_non_sync_sample
)

// fragmentSize returns the size of the fragment (moof + mdat) that
// writeFragment would write.
func (w *fileWriter) fragmentSize(video, audio []sample) (moof, mdat int64) {
	moof = 8 + 16
	if len(video) > 0 {
		moof += 8 + 16 + 20 + 8 + 12 + int64(len(video))*16
	}
	if len(audio) > 0 {
		moof += 8 + 16 + 20 + 8 + 12 + int64(len(audio))*8
	}
	mdat = 8
	for i := range video {
		mdat += w.sampleSize(&video[i], true)
	}
	for i := range audio {
		mdat += w.sampleSize(&audio[i], false)
	}
	return moof, mdat
}

// writeFragment writes one moof+mdat: video samples of track 1 starting at
// decode time vBase, audio samples of track 2 at aBase.
func (w *fileWriter) writeFragment(video, audio []sample, vBase, aBase uint64) error {
	moofSize, mdatSize := w.fragmentSize(video, audio)
	if mdatSize > 1<<32-1 {
		return errors.New("segment: fragment larger than 4 GiB")
	}
	w.seq++
	b := w.moof[:0]
	b = box(b, "moof", uint32(moofSize))
	b = fullBox(b, "mfhd", 16, 0, 0)
	b = binary.BigEndian.AppendUint32(b, w.seq)
	dataOffset := moofSize + 8
	if len(video) > 0 {
		b = w.appendTraf(b, VideoTrackID, video, vBase, uint32(dataOffset), true)
		for i := range video {
			dataOffset += w.sampleSize(&video[i], true)
		}
	}
	if len(audio) > 0 {
		b = w.appendTraf(b, AudioTrackID, audio, aBase, uint32(dataOffset), false)
	}
	b = box(b, "mdat", uint32(mdatSize))
	w.moof = b
	if int64(len(b)) != moofSize+8 {
		return fmt.Errorf("segment: internal error: moof is %d bytes, computed %d", len(b)-8, moofSize)
	}
	if _, err := w.hw.Write(b); err != nil {
		return err
	}
	var lp [4]byte
	for i := range video {
		for _, nalu := range video[i].u.NALUs {
			binary.BigEndian.PutUint32(lp[:], uint32(len(nalu)))
			if _, err := w.hw.Write(lp[:]); err != nil {
				return err
			}
			if _, err := w.hw.Write(nalu); err != nil {
				return err
			}
		}
	}
	for i := range audio {
		p := audio[i].u.Payload
		if w.audioPCM {
			w.scratch = w.scratch[:0]
			for _, c := range p {
				w.scratch = binary.BigEndian.AppendUint16(w.scratch, w.pcmTable[c])
			}
			p = w.scratch
		}
		if _, err := w.hw.Write(p); err != nil {
			return err
		}
	}
	return nil
}

func (w *fileWriter) appendTraf(b []byte, trackID uint32, samples []sample, base uint64, dataOffset uint32, video bool) []byte {
	entry := 8
	trunFlags := uint32(0x000001 | 0x000100 | 0x000200) // data offset, duration, size
	if video {
		trunFlags |= 0x000400 | 0x000800 // flags, composition time offset
		entry = 16
	}
	trunSize := 8 + 12 + len(samples)*entry
	b = box(b, "traf", uint32(8+16+20+trunSize))
	b = fullBox(b, "tfhd", 16, 0, 0x020000) // default-base-is-moof
	b = binary.BigEndian.AppendUint32(b, trackID)
	b = fullBox(b, "tfdt", 20, 1, 0)
	b = binary.BigEndian.AppendUint64(b, base)
	b = fullBox(b, "trun", uint32(trunSize), 1, trunFlags)
	b = binary.BigEndian.AppendUint32(b, uint32(len(samples)))
	b = binary.BigEndian.AppendUint32(b, dataOffset)
	for i := range samples {
		s := &samples[i]
		b = binary.BigEndian.AppendUint32(b, s.dur)
		b = binary.BigEndian.AppendUint32(b, uint32(w.sampleSize(s, video)))
		if video {
			f := uint32(flagsNonSync)
			if s.u.Key {
				f = flagsSync
			}
			b = binary.BigEndian.AppendUint32(b, f)
			b = binary.BigEndian.AppendUint32(b, uint32(s.cto))
		}
	}
	return b
}

func box(b []byte, typ string, size uint32) []byte {
	b = binary.BigEndian.AppendUint32(b, size)
	return append(b, typ...)
}

func fullBox(b []byte, typ string, size uint32, version byte, flags uint32) []byte {
	b = box(b, typ, size)
	return binary.BigEndian.AppendUint32(b, uint32(version)<<24|flags&0xffffff)
}
