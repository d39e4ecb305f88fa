package ingest

import (
	"bufio"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"

	"github.com/kuzet/kuzet/internal/testenv"
)

// A third-party RTSP server as the camera: GStreamer's gst-rtsp-server (from
// Debian packages, see testenv.StartGstRTSPServer) serves a committed clip
// as a live, looping stream. The RTSP dialogue, the SDP, the RTP
// packetization (rtph264pay, rtph265pay, rtpmp4gpay) and the RTCP sender
// reports are all GStreamer's. The clips carry no simulator marks, so each
// received picture is identified by its slice data, byte for byte, in the
// clip: consecutive clip frames (wrapping at the loop point) prove that no
// frame was lost, duplicated or reordered.

// clipVideo indexes the video of an MPEG-TS clip: the key of each picture's
// VCL NAL units to its frame number, and which frames are keyframes.
type clipVideo struct {
	codec Codec
	frame map[string]int
	key   []bool
}

func loadClipVideo(t *testing.T, path string) *clipVideo {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := &mpegts.Reader{R: bufio.NewReader(f)}
	if err := r.Initialize(); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	cv := &clipVideo{frame: map[string]int{}}
	add := func(_, _ int64, au [][]byte) error {
		k, key := cv.pictureKey(au)
		if _, dup := cv.frame[k]; dup {
			t.Fatalf("%s: frame %d repeats an earlier picture; frames cannot be told apart", path, len(cv.key))
		}
		cv.frame[k] = len(cv.key)
		cv.key = append(cv.key, key)
		return nil
	}
	for _, tr := range r.Tracks() {
		switch tr.Codec.(type) {
		case *mpegts.CodecH264:
			cv.codec = CodecH264
			r.OnDataH264(tr, add)
		case *mpegts.CodecH265:
			cv.codec = CodecH265
			r.OnDataH265(tr, add)
		}
	}
	if cv.codec == "" {
		t.Fatalf("%s: no H.264 or H.265 track", path)
	}
	for {
		if err := r.Read(); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	if len(cv.key) < 50 {
		t.Fatalf("%s: %d frames", path, len(cv.key))
	}
	return cv
}

// pictureKey returns the VCL NAL units of an access unit joined (what
// identifies the picture whatever parameter sets, SEI or delimiters travel
// with it) and whether it is a keyframe.
func (cv *clipVideo) pictureKey(au [][]byte) (string, bool) {
	a := newVideoAssembler(cv.codec, nil, nil, nil)
	var k []byte
	key := false
	for _, n := range au {
		if len(n) == 0 {
			continue
		}
		vcl, isKey, _, _ := a.kind(a.nalType(n))
		if vcl {
			k = append(append(k, byte(len(n)>>16), byte(len(n)>>8), byte(len(n))), n...)
			key = key || isKey
		}
	}
	return string(k), key
}

func TestThirdPartyRTSPServer(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		clip      string
		codec     Codec
		audio     bool
		transport Transport
	}{
		{name: "H264 over TCP", clip: "h264_640x360.ts", codec: CodecH264, transport: TransportTCP},
		{name: "H264 and AAC over UDP", clip: "h264_aac_640x360.ts", codec: CodecH264, audio: true, transport: TransportUDP},
		{name: "H265 over TCP", clip: "h265_640x360.ts", codec: CodecH265, transport: TransportTCP},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clip := clipPath(t, tc.clip)
			cv := loadClipVideo(t, clip)
			srv := testenv.StartGstRTSPServer(t, clip)
			h := runSource(t, SourceConfig{URL: srv.URL, Transport: tc.transport})

			e := h.event(15 * time.Second)
			if e.Reason != ReasonDiscontinuity || e.Detail != DetailSessionStarted || e.Tracks == nil {
				t.Fatalf("first event %+v, want a session start with tracks", e)
			}
			tr := e.Tracks
			if v := tr.Video; v == nil || v.Codec != tc.codec || v.Width != 640 || v.Height != 360 ||
				v.ClockRate != 90000 || v.SPS == nil || v.PPS == nil || (tc.codec == CodecH265 && v.VPS == nil) {
				t.Fatalf("video track %+v", tr.Video)
			}
			if tc.audio {
				if a := tr.Audio; a == nil || a.Codec != CodecAAC || a.SampleRate != 48000 || a.Channels != 1 || a.ClockRate != 48000 {
					t.Fatalf("audio track %+v", tr.Audio)
				}
			} else if tr.Audio != nil {
				t.Fatalf("audio track %v from a clip without audio", tr.Audio)
			}

			// Read past the clip's loop point (10 s, or 9.6 s with audio).
			const window = 11 * time.Second
			var video, audio []*Unit
			var frames []int
			deadline := time.Now().Add(window)
			for time.Now().Before(deadline) {
				it, err := h.next(time.Until(deadline))
				if err != nil {
					break
				}
				if it.Event != nil {
					t.Fatalf("event %+v after %d frames", it.Event, len(video))
				}
				u := it.Unit
				if u.Track != tr.Video {
					audio = append(audio, u)
					continue
				}
				k, _ := cv.pictureKey(u.NALUs)
				n, ok := cv.frame[k]
				if !ok {
					t.Fatalf("unit %d is no picture of the clip", len(video))
				}
				video = append(video, u)
				frames = append(frames, n)
			}
			if min := int(window.Seconds()*25) - 25; len(video) < min {
				t.Fatalf("%d video units in %v, want at least %d at 25 fps", len(video), window, min)
			}
			if !video[0].Key || !paramsFirst(newVideoAssembler(tc.codec, nil, nil, nil), video[0].NALUs) {
				t.Fatal("first unit is not a keyframe with its parameter sets in front")
			}
			loops := 0
			for i, u := range video {
				if u.Key != cv.key[frames[i]] {
					t.Fatalf("unit %d (clip frame %d): key %v, the clip says %v", i, frames[i], u.Key, cv.key[frames[i]])
				}
				if i == 0 {
					continue
				}
				if want := (frames[i-1] + 1) % len(cv.key); frames[i] != want {
					t.Fatalf("unit %d is clip frame %d after frame %d: frames lost or out of order", i, frames[i], frames[i-1])
				}
				if frames[i] == 0 {
					loops++
				}
				if d := u.PTS - video[i-1].PTS; d != 3600 {
					t.Fatalf("unit %d (clip frame %d): PTS step %d, want 3600", i, frames[i], d)
				}
			}
			if loops == 0 {
				t.Fatalf("frames %d..%d never crossed the loop point", frames[0], frames[len(frames)-1])
			}
			if tc.audio {
				// 1024 samples per AAC frame; GStreamer's nanosecond
				// timestamps may round a tick either way.
				if len(audio) < int(window.Seconds()*46) {
					t.Fatalf("%d audio units in %v", len(audio), window)
				}
				for i := 1; i < len(audio); i++ {
					if d := audio[i].PTS - audio[i-1].PTS; d < 1023 || d > 1025 {
						t.Fatalf("audio unit %d: PTS step %d, want 1024", i, d)
					}
				}
			}

			hl := h.src.Health()
			t.Logf("%s: %d consecutive frames (clip frames %d..%d, loop point crossed %d times), %d audio units; fps %.1f, %.0f kbit/s, keyframe interval %v, clock offset %v (known %v), lost %d",
				tc.name, len(video), frames[0], frames[len(frames)-1], loops, len(audio), hl.FPS, hl.Bitrate/1000,
				hl.KeyframeInterval, hl.ClockOffset, hl.ClockOffsetKnown, hl.PacketsLost)
			if hl.FPS < 23 || hl.FPS > 27 {
				t.Fatalf("fps %.1f, want about 25", hl.FPS)
			}
			if hl.KeyframeInterval != 2*time.Second && hl.KeyframeInterval != 1600*time.Millisecond {
				t.Fatalf("keyframe interval %v, want 2s (1.6s across the 9.6 s clip's loop point)", hl.KeyframeInterval)
			}
			if hl.PacketsLost != 0 || hl.Reconnects != 0 || hl.Discontinuities != 0 || hl.DecodeErrors != 0 {
				t.Fatalf("health %+v", hl)
			}
			if hl.Transport != string(tc.transport) {
				t.Fatalf("transport %q, want %q", hl.Transport, tc.transport)
			}
			if !hl.ClockOffsetKnown || hl.ClockOffset > time.Second || hl.ClockOffset < -time.Second {
				t.Fatalf("clock offset %v (known %v) from GStreamer's sender reports", hl.ClockOffset, hl.ClockOffsetKnown)
			}
		})
	}
}

// TestThirdPartyRTSPServerRestart stops GStreamer's server under a running
// source and starts it again on the same port: the source reports the
// camera offline, reconnects, and frames flow again.
func TestThirdPartyRTSPServerRestart(t *testing.T) {
	t.Parallel()
	clip := clipPath(t, "h264_640x360.ts")
	cv := loadClipVideo(t, clip)
	srv := testenv.StartGstRTSPServer(t, clip)
	h := runSource(t, SourceConfig{URL: srv.URL, BackoffMin: 200 * time.Millisecond, BackoffMax: time.Second})
	checkSessionStartSize(t, h, CodecH264, 640, 360)
	h.units(10, 10*time.Second)
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	e := h.eventReason(ReasonCameraOffline, 10*time.Second)
	t.Logf("offline: %s", e.Detail)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	checkSessionStartSize(t, h, CodecH264, 640, 360)
	us := h.units(25, 10*time.Second)
	if !us[0].Key {
		t.Fatal("first unit after the restart is not a keyframe")
	}
	for i, u := range us {
		k, _ := cv.pictureKey(u.NALUs)
		if _, ok := cv.frame[k]; !ok {
			t.Fatalf("unit %d after the restart is no picture of the clip", i)
		}
	}
	// At least one reconnect; attempts made while the server was still
	// down (backoff 200 ms) count too, so more is timing, not a fault.
	hl := h.src.Health()
	if hl.Reconnects < 1 || hl.State != StateOnline {
		t.Fatalf("health after the restart %+v", hl)
	}
}
