package evidence

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
)

// ZIP record signatures and sizes.
const (
	sigLocal       = 0x04034b50
	sigCentral     = 0x02014b50
	sigDataDesc    = 0x08074b50
	sigEnd         = 0x06054b50
	sigEnd64       = 0x06064b50
	sigEnd64Loc    = 0x07064b50
	localLen       = 30
	centralLen     = 46
	endLen         = 22
	end64Len       = 56
	end64LocLen    = 20
	dataDescLen    = 16
	dataDesc64Len  = 24
	zip64ExtraID   = 0x0001
	maxCentralSize = 16 << 20
)

// member is one member of a package as its ZIP structure describes it.
type member struct {
	name    string
	dataOff int64
	size    int64
	crc     uint32
}

// Error is a verification failure. File names the member that does not
// verify, or is empty when the package as a whole is wrong (not a ZIP,
// signature by another key, a structure that names no member).
type Error struct {
	File   string
	Reason string
}

func (e *Error) Error() string {
	if e.File == "" {
		return "package: " + e.Reason
	}
	return e.File + ": " + e.Reason
}

func fail(file, format string, a ...any) *Error {
	return &Error{File: file, Reason: fmt.Sprintf(format, a...)}
}

// le reads little-endian fields in order.
type le []byte

func (b *le) u16() uint16 {
	v := binary.LittleEndian.Uint16(*b)
	*b = (*b)[2:]
	return v
}

func (b *le) u32() uint32 {
	v := binary.LittleEndian.Uint32(*b)
	*b = (*b)[4:]
	return v
}

func (b *le) u64() uint64 {
	v := binary.LittleEndian.Uint64(*b)
	*b = (*b)[8:]
	return v
}

func readAt(r io.ReaderAt, off int64, n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := r.ReadAt(b, off); err != nil {
		return nil, err
	}
	return b, nil
}

// centralRecord is a parsed central directory record.
type centralRecord struct {
	name         string
	version      uint16 // version needed
	modTime      uint16
	modDate      uint16
	crc          uint32
	size         int64
	offset       int64
	zip64        bool
	extra        []byte // extra field without the ZIP64 block
	sizeFieldMax bool   // the 32-bit size fields hold 0xffffffff
}

// readArchive checks the ZIP structure of a package strictly, as Writer
// makes it, and lists its members in archive order.
func readArchive(r io.ReaderAt, size int64) ([]member, error) {
	if size < endLen {
		return nil, fail("", "too short to be a ZIP file")
	}
	eb, err := readAt(r, size-endLen, endLen)
	if err != nil {
		return nil, fail("", "reading the end record: %v", err)
	}
	e := le(eb)
	if e.u32() != sigEnd {
		return nil, fail("", "no ZIP end record at the end of the file (not a ZIP file, or something was appended)")
	}
	disk, cdDisk, recDisk, recs := e.u16(), e.u16(), e.u16(), e.u16()
	cdSize32, cdOff32, commentLen := e.u32(), e.u32(), e.u16()
	if disk != 0 || cdDisk != 0 || recDisk != recs || commentLen != 0 {
		return nil, fail("", "unexpected values in the ZIP end record")
	}
	records, cdSize, cdOff := uint64(recs), uint64(cdSize32), uint64(cdOff32)
	cdEnd := size - endLen
	if recs == uint16max || uint64(cdSize32) == uint32max || uint64(cdOff32) == uint32max {
		if recs != uint16max || uint64(cdSize32) != uint32max || uint64(cdOff32) != uint32max {
			return nil, fail("", "ZIP end record half in ZIP64 form")
		}
		if size < endLen+end64LocLen+end64Len {
			return nil, fail("", "ZIP64 end records missing")
		}
		lb, err := readAt(r, size-endLen-end64LocLen, end64LocLen)
		if err != nil {
			return nil, fail("", "reading the ZIP64 locator: %v", err)
		}
		l := le(lb)
		if l.u32() != sigEnd64Loc || l.u32() != 0 {
			return nil, fail("", "bad ZIP64 end locator")
		}
		end64Off, disks := l.u64(), l.u32()
		cdEnd = size - endLen - end64LocLen - end64Len
		if disks != 1 || end64Off != uint64(cdEnd) {
			return nil, fail("", "bad ZIP64 end locator")
		}
		zb, err := readAt(r, cdEnd, end64Len)
		if err != nil {
			return nil, fail("", "reading the ZIP64 end record: %v", err)
		}
		z := le(zb)
		if z.u32() != sigEnd64 || z.u64() != end64Len-12 || z.u16() != zipVersion45 || z.u16() != zipVersion45 ||
			z.u32() != 0 || z.u32() != 0 {
			return nil, fail("", "bad ZIP64 end record")
		}
		rd, rt := z.u64(), z.u64()
		records, cdSize, cdOff = rt, z.u64(), z.u64()
		if rd != rt {
			return nil, fail("", "bad ZIP64 end record")
		}
	}
	if records > maxFiles+2 || cdSize > maxCentralSize || cdOff > uint64(cdEnd) || cdOff+cdSize != uint64(cdEnd) {
		return nil, fail("", "the central directory's size and place do not add up")
	}
	cd, err := readAt(r, int64(cdOff), int(cdSize))
	if err != nil {
		return nil, fail("", "reading the central directory: %v", err)
	}
	recsParsed := make([]centralRecord, 0, records)
	for i := uint64(0); i < records; i++ {
		cr, rest, err := parseCentral(cd, i)
		if err != nil {
			return nil, err
		}
		recsParsed = append(recsParsed, cr)
		cd = rest
	}
	if len(cd) != 0 {
		return nil, fail("", "%d stray bytes after the central directory", len(cd))
	}
	members := make([]member, 0, len(recsParsed))
	pos := int64(0)
	for _, cr := range recsParsed {
		m, next, err := walkLocal(r, pos, cr, int64(cdOff))
		if err != nil {
			return nil, err
		}
		members = append(members, m)
		pos = next
	}
	if pos != int64(cdOff) {
		return nil, fail("", "%d stray bytes before the central directory", int64(cdOff)-pos)
	}
	return members, nil
}

// parseCentral parses the central record at the start of b.
func parseCentral(b []byte, i uint64) (centralRecord, []byte, error) {
	var cr centralRecord
	if len(b) < centralLen {
		return cr, nil, fail("", "central directory record %d truncated", i+1)
	}
	h := le(b[:centralLen])
	if h.u32() != sigCentral {
		return cr, nil, fail("", "central directory record %d has no signature", i+1)
	}
	made, version, flags, method := h.u16(), h.u16(), h.u16(), h.u16()
	cr.modTime, cr.modDate = h.u16(), h.u16()
	cr.crc = h.u32()
	csize, usize := h.u32(), h.u32()
	nameLen, extraLen, commentLen := int(h.u16()), int(h.u16()), int(h.u16())
	diskStart, internal, external, off32 := h.u16(), h.u16(), h.u32(), h.u32()
	if len(b) < centralLen+nameLen+extraLen+commentLen {
		return cr, nil, fail("", "central directory record %d truncated", i+1)
	}
	cr.name = string(b[centralLen : centralLen+nameLen])
	who := cr.name
	if ValidName(who) != nil {
		who = ""
	}
	extra := b[centralLen+nameLen : centralLen+nameLen+extraLen]
	rest := b[centralLen+nameLen+extraLen+commentLen:]
	if err := ValidName(cr.name); err != nil {
		return cr, nil, fail("", "central directory record %d: %v", i+1, err)
	}
	if made != creatorVersion || flags != dataDescFlag || method != 0 || commentLen != 0 || diskStart != 0 ||
		internal != 0 || external != externalAttrs || csize != usize || (version != zipVersion20 && version != zipVersion45) {
		return cr, nil, fail(who, "central directory record has unexpected attributes")
	}
	cr.version = version
	cr.size, cr.offset = int64(usize), int64(off32)
	cr.sizeFieldMax = uint64(usize) == uint32max
	// A ZIP64 block, when there is one, is the last of the extra fields
	// and holds the three values.
	if cr.sizeFieldMax || uint64(off32) == uint32max {
		if len(extra) < 28 {
			return cr, nil, fail(who, "ZIP64 values missing")
		}
		z := le(extra[len(extra)-28:])
		if z.u16() != zip64ExtraID || z.u16() != 24 {
			return cr, nil, fail(who, "ZIP64 values missing")
		}
		u, c, o := z.u64(), z.u64(), z.u64()
		if u != c || !cr.sizeFieldMax || u > 1<<62 || o > 1<<62 {
			return cr, nil, fail(who, "bad ZIP64 values")
		}
		if uint64(off32) != uint32max && o != uint64(off32) || uint64(off32) == uint32max && o < uint32max {
			return cr, nil, fail(who, "bad ZIP64 offset")
		}
		cr.size, cr.offset, cr.zip64 = int64(u), int64(o), true
		extra = extra[:len(extra)-28]
	}
	if (version == zipVersion45) != (uint64(cr.size) >= uint32max) {
		return cr, nil, fail(who, "version needed does not fit the member's size")
	}
	cr.extra = extra
	return cr, rest, nil
}

// walkLocal checks the local header, data and data descriptor of the member
// that cr describes, which must start at pos, and returns where the next
// member starts.
func walkLocal(r io.ReaderAt, pos int64, cr centralRecord, limit int64) (member, int64, error) {
	if cr.offset != pos {
		return member{}, 0, fail(cr.name, "the member is not where the central directory says (%d, expected %d)", cr.offset, pos)
	}
	if pos+localLen > limit {
		return member{}, 0, fail(cr.name, "local header truncated")
	}
	hb, err := readAt(r, pos, localLen)
	if err != nil {
		return member{}, 0, fail(cr.name, "reading the local header: %v", err)
	}
	h := le(hb)
	sig, version, flags, method := h.u32(), h.u16(), h.u16(), h.u16()
	mt, md, crc, csize, usize := h.u16(), h.u16(), h.u32(), h.u32(), h.u32()
	nameLen, extraLen := int64(h.u16()), int64(h.u16())
	if sig != sigLocal || version != zipVersion20 || flags != dataDescFlag || method != 0 || mt != cr.modTime ||
		md != cr.modDate || crc != 0 || csize != 0 || usize != 0 || nameLen != int64(len(cr.name)) || extraLen != int64(len(cr.extra)) {
		return member{}, 0, fail(cr.name, "local header does not match the central directory")
	}
	dataOff := pos + localLen + nameLen + extraLen
	if dataOff > limit {
		return member{}, 0, fail(cr.name, "local header truncated")
	}
	ne, err := readAt(r, pos+localLen, int(nameLen+extraLen))
	if err != nil {
		return member{}, 0, fail(cr.name, "reading the local header: %v", err)
	}
	if string(ne[:nameLen]) != cr.name || !bytes.Equal(ne[nameLen:], cr.extra) {
		return member{}, 0, fail(cr.name, "local header does not match the central directory")
	}
	ddLen := int64(dataDescLen)
	if uint64(cr.size) >= uint32max {
		ddLen = dataDesc64Len
	}
	if cr.size > limit-dataOff-ddLen {
		return member{}, 0, fail(cr.name, "member runs past the central directory")
	}
	db, err := readAt(r, dataOff+cr.size, int(ddLen))
	if err != nil {
		return member{}, 0, fail(cr.name, "reading the data descriptor: %v", err)
	}
	d := le(db)
	okDesc := d.u32() == sigDataDesc && d.u32() == cr.crc
	if ddLen == dataDesc64Len {
		okDesc = okDesc && d.u64() == uint64(cr.size) && d.u64() == uint64(cr.size)
	} else {
		okDesc = okDesc && uint64(d.u32()) == uint64(cr.size) && uint64(d.u32()) == uint64(cr.size)
	}
	if !okDesc {
		return member{}, 0, fail(cr.name, "data descriptor does not match the central directory")
	}
	return member{name: cr.name, dataOff: dataOff, size: cr.size, crc: cr.crc}, dataOff + cr.size + ddLen, nil
}
