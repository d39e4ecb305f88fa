package camsim

import (
	"encoding/binary"
	"math/rand/v2"
	"net"
	"sync/atomic"
)

// The server writes every RTP and RTCP packet of a TCP session as one
// interleaved frame ('$', channel, 16-bit length, packet) in one Write call
// on the connection. wireConn sits under the server and applies the faults
// that the server's API cannot express: a changed SSRC (it XORs the SSRC
// field) and malformed packets (it writes extra frames).

// wireListener wraps accepted connections in wireConn.
type wireListener struct {
	net.Listener
}

func (l wireListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &wireConn{Conn: c}, nil
}

// wireConn is one RTSP connection; bind tells it which camera it serves.
type wireConn struct {
	net.Conn
	cam atomic.Pointer[Camera]
	// garbageDone is the camera's garbageTotal already served on this
	// connection.
	garbageDone atomic.Uint64
	// garbage is scratch space for malformed frames; only the session's
	// writer goroutine writes RTP, so only it uses this.
	garbage [4 + 64]byte
}

const (
	interleavedMagic = '$'
	rtcpTypeSR       = 200
)

// bind makes the connection carry camera c's packets from now on. Garbage
// requested before the bind is not sent.
func (w *wireConn) bind(c *Camera) {
	if w.cam.Swap(c) != c {
		w.garbageDone.Store(c.garbageTotal.Load())
	}
}

func (w *wireConn) Write(b []byte) (int, error) {
	c := w.cam.Load()
	if c == nil || len(b) < 4+8 || b[0] != interleavedMagic {
		return w.Conn.Write(b)
	}
	pkt := b[4:]
	if pkt[1] == rtcpTypeSR {
		if x := c.ssrcXor.Load(); x != 0 {
			xor32(pkt[4:8], x)
		}
		return w.Conn.Write(b)
	}
	if len(pkt) < 12 {
		return w.Conn.Write(b)
	}
	pt := pkt[1] & 0x7f
	if pt != videoPayloadType && pt != audioPayloadType {
		return w.Conn.Write(b)
	}
	if pt == videoPayloadType {
		if total := c.garbageTotal.Load(); total > w.garbageDone.Load() {
			n := total - w.garbageDone.Swap(total)
			for i := range n {
				if err := w.writeGarbage(b[1], int(i), pkt); err != nil {
					return 0, err
				}
			}
		}
	}
	if x := c.ssrcXor.Load(); x != 0 {
		xor32(pkt[8:12], x)
	}
	return w.Conn.Write(b)
}

func xor32(b []byte, x uint32) {
	binary.BigEndian.PutUint32(b, binary.BigEndian.Uint32(b)^x)
}

// writeGarbage writes one malformed RTP packet on channel ch. Kinds rotate
// with i; each fails RTP parsing or names a payload type absent from the
// SDP. like is a well-formed packet of the stream, whose header it borrows.
func (w *wireConn) writeGarbage(ch byte, i int, like []byte) error {
	buf := w.garbage[:]
	p := buf[4:]
	for j := range p {
		p[j] = byte(rand.Uint32())
	}
	copy(p[:12], like[:12])
	var n int
	switch i % 5 {
	case 0: // runt: shorter than an RTP header
		n = 7
	case 1: // 15 CSRCs announced, 2 present
		p[0] = 0x80 | 0x0f
		n = 12 + 8
	case 2: // header extension longer than the packet
		p[0] = 0x90
		binary.BigEndian.PutUint16(p[12:14], 0xbede)
		binary.BigEndian.PutUint16(p[14:16], 0xffff)
		n = 24
	case 3: // padding longer than the payload
		p[0] = 0xa0
		n = 20
		p[n-1] = 0xff
	default: // payload type the SDP does not declare
		p[0] = 0x80
		p[1] = 127
		n = len(p)
	}
	buf[0] = interleavedMagic
	buf[1] = ch
	binary.BigEndian.PutUint16(buf[2:4], uint16(n))
	_, err := w.Conn.Write(buf[:4+n])
	return err
}
