package camsim

import (
	"encoding/binary"
	"time"
)

// Codec names accepted by FindMark, ParseMarkSEI and AppendMarkSEI.
const (
	CodecH264 = "H264"
	CodecH265 = "H265"
)

// markUUID identifies the simulator's SEI user_data_unregistered message
// (payload type 5). It is fixed: receivers match on it.
var markUUID = [16]byte{
	0xec, 0x10, 0xb1, 0xd5, 0x5a, 0x8d, 0x43, 0x09,
	0x83, 0xb7, 0x08, 0x6c, 0xbe, 0xf6, 0xf8, 0x58,
}

const (
	seiTypeUserDataUnregistered = 5
	// markDataLen is camera (4) + frame (8) + capture Unix nanoseconds (8),
	// all big-endian, after the UUID.
	markDataLen    = 20
	markPayloadLen = len(markUUID) + markDataLen

	naluTypeH264SEI       = 6
	naluTypeH265PrefixSEI = 39

	// markSEIMaxLen bounds an encoded mark NAL unit: a two-byte header,
	// payload type and size, the payload, the trailing bits, and one
	// emulation-prevention byte per two payload bytes in the worst case.
	markSEIMaxLen = 2 + 2 + markPayloadLen + 1 + (markPayloadLen+3)/2
)

// Mark is what the simulator writes into every video access unit.
type Mark struct {
	// Camera is the camera number N of rtsp://ADDR/cam/N.
	Camera uint32
	// Frame is the frame sequence number, consecutive per camera from 0
	// across clip loops. A gap means frames were lost after they were sent.
	Frame uint64
	// Capture is the wall time the frame was sent.
	Capture time.Time
}

// AppendMarkSEI appends m encoded as one SEI NAL unit (without start code)
// of codec ("H264" or "H265") to dst and returns the extended slice. It
// returns dst unchanged for an unknown codec. It does not allocate when dst
// has room for markSEIMaxLen more bytes.
func AppendMarkSEI(dst []byte, codec string, m Mark) []byte {
	switch codec {
	case CodecH264:
		dst = append(dst, naluTypeH264SEI)
	case CodecH265:
		// forbidden_zero_bit 0, nal_unit_type 39, nuh_layer_id 0,
		// nuh_temporal_id_plus1 1.
		dst = append(dst, naluTypeH265PrefixSEI<<1, 0x01)
	default:
		return dst
	}

	var rbsp [2 + markPayloadLen + 1]byte
	rbsp[0] = seiTypeUserDataUnregistered
	rbsp[1] = byte(markPayloadLen)
	copy(rbsp[2:], markUUID[:])
	d := rbsp[2+len(markUUID):]
	binary.BigEndian.PutUint32(d[0:4], m.Camera)
	binary.BigEndian.PutUint64(d[4:12], m.Frame)
	binary.BigEndian.PutUint64(d[12:20], uint64(m.Capture.UnixNano()))
	rbsp[len(rbsp)-1] = 0x80 // rbsp_trailing_bits

	// Emulation prevention: no 0x000000..0x000003 inside the NAL unit.
	zeros := 0
	for _, b := range rbsp {
		if zeros >= 2 && b <= 3 {
			dst = append(dst, 3)
			zeros = 0
		}
		dst = append(dst, b)
		if b == 0 {
			zeros++
		} else {
			zeros = 0
		}
	}
	return dst
}

// FindMark returns the mark carried by one of nalus (NAL units of one access
// unit, without start codes), if any.
func FindMark(codec string, nalus [][]byte) (Mark, bool) {
	for _, nalu := range nalus {
		if m, ok := ParseMarkSEI(codec, nalu); ok {
			return m, true
		}
	}
	return Mark{}, false
}

// ParseMarkSEI decodes a mark from one NAL unit (without start code) of
// codec ("H264" or "H265"). It reports false for any other NAL unit,
// including SEI NAL units without a mark and malformed ones. It never panics
// and does not allocate.
func ParseMarkSEI(codec string, nalu []byte) (Mark, bool) {
	var hdr int
	switch codec {
	case CodecH264:
		if len(nalu) < 1 || nalu[0]&0x1f != naluTypeH264SEI {
			return Mark{}, false
		}
		hdr = 1
	case CodecH265:
		if len(nalu) < 2 || (nalu[0]>>1)&0x3f != naluTypeH265PrefixSEI {
			return Mark{}, false
		}
		hdr = 2
	default:
		return Mark{}, false
	}

	r := rbspReader{b: nalu[hdr:]}
	// sei_message() until the trailing bits.
	for r.more() {
		typ, ok := r.ffCoded()
		if !ok {
			return Mark{}, false
		}
		size, ok := r.ffCoded()
		if !ok {
			return Mark{}, false
		}
		if typ != seiTypeUserDataUnregistered || size < markPayloadLen {
			if !r.skip(size) {
				return Mark{}, false
			}
			continue
		}
		var p [markPayloadLen]byte
		if !r.read(p[:]) {
			return Mark{}, false
		}
		if [16]byte(p[:16]) != markUUID {
			if !r.skip(size - markPayloadLen) {
				return Mark{}, false
			}
			continue
		}
		d := p[16:]
		return Mark{
			Camera:  binary.BigEndian.Uint32(d[0:4]),
			Frame:   binary.BigEndian.Uint64(d[4:12]),
			Capture: time.Unix(0, int64(binary.BigEndian.Uint64(d[12:20]))),
		}, true
	}
	return Mark{}, false
}

// rbspReader reads the RBSP bytes of a NAL unit payload, dropping
// emulation-prevention bytes (the 0x03 of 0x000003).
type rbspReader struct {
	b     []byte
	i     int
	zeros int
}

func (r *rbspReader) next() (byte, bool) {
	if r.i >= len(r.b) {
		return 0, false
	}
	c := r.b[r.i]
	if r.zeros >= 2 && c == 3 {
		r.i++
		r.zeros = 0
		if r.i >= len(r.b) {
			return 0, false
		}
		c = r.b[r.i]
	}
	r.i++
	if c == 0 {
		r.zeros++
	} else {
		r.zeros = 0
	}
	return c, true
}

// more reports whether another sei_message follows: anything but the final
// rbsp_trailing_bits byte (0x80) remains.
func (r *rbspReader) more() bool {
	rest := len(r.b) - r.i
	return rest > 1 || (rest == 1 && r.b[r.i] != 0x80)
}

// ffCoded reads a payload type or size: a run of 0xFF bytes, each adding
// 255, ended by the last byte.
func (r *rbspReader) ffCoded() (int, bool) {
	v := 0
	for {
		c, ok := r.next()
		if !ok {
			return 0, false
		}
		v += int(c)
		if c != 0xff {
			return v, true
		}
		if v > len(r.b)*255 {
			return 0, false
		}
	}
}

func (r *rbspReader) read(p []byte) bool {
	for i := range p {
		c, ok := r.next()
		if !ok {
			return false
		}
		p[i] = c
	}
	return true
}

func (r *rbspReader) skip(n int) bool {
	if n > len(r.b)-r.i {
		return false
	}
	for range n {
		if _, ok := r.next(); !ok {
			return false
		}
	}
	return true
}
