// Package segment turns one camera's access units into fragmented-MP4
// segment files, and reads such files back.
//
// It sits between the recorder's reader of an ingest.Stream and the spool:
// the recorder pushes units into a Segmenter, which calls its Sink to open a
// file per segment, to reserve spool space before each fragment, to flush
// after each fragment and to close the segment.
//
// # Format
//
// A segment is a self-contained fMP4 file: an init section (ftyp+moov,
// written with mediacommon's fmp4.Init), then fragments (moof+mdat), each at
// most Config.FragmentDuration long. Every video keyframe starts a new
// fragment, so a player can start at any fragment whose Key flag is set
// after fetching the init section and that fragment with ranged reads; the
// compact fragment index (EncodeIndex) lists each fragment's time and byte
// offset. Video is track 1 (90 kHz timescale), audio track 2: AAC as
// mp4a, G.711 expanded to 16-bit big-endian LPCM (ipcm), since ISO BMFF has
// no G.711 sample entry. Each segment's decode times start at 0.
//
// Fragments are written directly (moof built in a reused buffer, then the
// NAL units with 4-byte length prefixes straight from the shared units)
// rather than with fmp4.Part.Marshal, which copies every sample into a
// freshly allocated mdat: no per-unit allocation, no copy of media bytes
// besides the write into the spool's buffer. The tests read every file back
// with mediacommon's fmp4 parser and ffprobe.
//
// # Segmenting
//
// Video samples are held back by one unit: a sample's duration is the
// decode-time difference to the next one. Segments are cut only on
// keyframes, at the first keyframe after the camera's next rotation
// boundary: boundaries lie on a wall-clock grid of Config.SegmentDuration
// shifted by Config.Phase, which the recorder derives from the camera id so
// that cameras rotate (and upload) at different instants. A segment is at
// least half a SegmentDuration long unless the run ends. Media time (90 kHz
// decode times) and wall time (Unit.Wall) are kept apart: a segment's start
// is the wall time of its first sample (never before the previous segment's
// end), its end the wall time of the keyframe that starts the next segment,
// or, for the last segment of a run, of its last sample plus that sample's
// duration.
//
// Audio decode times are mapped onto the video clock by assuming both
// tracks' PTS count from the same instant (ingest's contract: "counted from
// the start of the run"); audio before the first video sample of a run is
// dropped.
//
// # Concurrency
//
// A Segmenter is used by one goroutine (the camera's recorder pipeline). It
// never blocks except in its Sink. Scan and DecodeIndex are pure functions
// that are safe on untrusted bytes: they never panic and bound what they
// allocate by the input size.
package segment
