package camsim

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/conn"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/headers"
	"github.com/bluenviron/gortsplib/v4/pkg/sdp"
)

// BenchmarkFrameSend measures one camera's send path for one video frame of
// the 640x360 clip (SEI mark, header rewrites, the server stream's marshal)
// with nobody reading, as fast as it goes. Allocations per frame come from
// the server stream (one buffer per packet), none from the camera.
func BenchmarkFrameSend(b *testing.B) {
	for _, file := range []string{"h264_640x360.ts", "h264_1920x1080.ts"} {
		b.Run(file, func(b *testing.B) {
			s := startServer(b, Config{Cameras: 1, Clip: clipPath(b, file), newPacer: func(time.Time) pacer {
				return &idlePacer{}
			}})
			c := s.Camera(1)
			cl := c.clip
			st := loopState{start: time.Now(), vLoopTicks: cl.loopTicks}
			pkts := 0
			for _, f := range cl.frames {
				pkts += len(f.params) + 1 + len(f.vcl)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				c.sendFrame(&st, &cl.frames[st.vi], st.start, st.start)
			}
			b.ReportMetric(float64(pkts)/float64(len(cl.frames)), "packets/frame")
		})
	}
}

// idlePacer parks the camera goroutine so a benchmark can drive sendFrame.
type idlePacer struct{}

func (idlePacer) now() time.Time { return time.Now() }

func (idlePacer) waitUntil(ctx context.Context, _ time.Time) bool {
	<-ctx.Done()
	return false
}

// benchCameras and benchSeconds size one BenchmarkCameraCPU run.
const (
	benchCameras = 200
	benchSeconds = 5
)

// BenchmarkCameraCPU runs 200 cameras of the 640x360 clip in real time for
// 5 s, each read over RTSP/TCP by a reader in another process (or by none),
// and reports the simulator process's CPU time per camera-second of video
// (user+system, from getrusage) and the cameras one core can serve at that
// rate. Each iteration takes 5 s; run it with -benchtime=1x.
func BenchmarkCameraCPU(b *testing.B) {
	for _, tc := range []struct {
		name    string
		file    string
		readers bool
	}{
		{"360p/readers=0", "h264_640x360.ts", false},
		{"360p/readers=1", "h264_640x360.ts", true},
		{"1080p/readers=1", "h264_1920x1080.ts", true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var cpu time.Duration
			var camSeconds float64
			for b.Loop() {
				c, s := benchRun(b, tc.file, tc.readers)
				cpu += c
				camSeconds += s
			}
			perCamSec := float64(cpu.Nanoseconds()) / camSeconds
			b.ReportMetric(perCamSec, "ns/op")
			b.ReportMetric(perCamSec, "cpu-ns/camera-s")
			b.ReportMetric(1e9/perCamSec, "cameras/core")
		})
	}
}

// benchRun returns the CPU time the process spent while benchCameras
// cameras ran for benchSeconds, and the camera-seconds of video sent.
func benchRun(b *testing.B, file string, readers bool) (time.Duration, float64) {
	s := startServer(b, Config{Cameras: benchCameras, Clip: clipPath(b, file)})
	var helper *exec.Cmd
	var stdin io.WriteCloser
	if readers {
		urls := make([]string, benchCameras)
		for i := range urls {
			urls[i] = s.URL(i + 1)
		}
		helper = exec.Command(os.Args[0], "-test.run=^$")
		helper.Env = append(os.Environ(), benchReaderEnv+"="+strings.Join(urls, " "))
		helper.Stderr = os.Stderr
		var err error
		if stdin, err = helper.StdinPipe(); err != nil {
			b.Fatal(err)
		}
		out, err := helper.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := helper.Start(); err != nil {
			b.Fatal(err)
		}
		// The helper prints one line once every reader plays.
		line, err := bufio.NewReader(out).ReadString('\n')
		if err != nil || strings.TrimSpace(line) != "playing" {
			b.Fatalf("reader process: %q, %v", line, err)
		}
		defer func() {
			stdin.Close()
			helper.Wait() //nolint:errcheck
		}()
	}
	for n := 1; n <= benchCameras; n++ {
		if readers && s.Camera(n).Sessions() != 1 {
			b.Fatalf("camera %d has %d sessions", n, s.Camera(n).Sessions())
		}
	}
	frames0 := totalFrames(s)
	cpu0 := processCPU(b)
	time.Sleep(benchSeconds * time.Second)
	cpu := processCPU(b) - cpu0
	frames := totalFrames(s) - frames0
	camSeconds := float64(frames) / 25
	if want := float64(benchCameras * benchSeconds); camSeconds < 0.95*want {
		b.Errorf("cameras sent %.0f camera-seconds of video in %d s, want %.0f: overloaded", camSeconds, benchSeconds, want)
	}
	return cpu, camSeconds
}

func totalFrames(s *Server) uint64 {
	var n uint64
	for i := 1; i <= s.Cameras(); i++ {
		n += s.Camera(i).FramesSent()
	}
	return n
}

func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchReaderEnv makes the test binary a reader process for
// BenchmarkCameraCPU (see TestMain): it plays every URL in the variable,
// prints "playing", discards what it receives, and exits when stdin closes.
const benchReaderEnv = "KUZET_CAMSIM_BENCH_READER"

func runBenchReader(urls []string) error {
	var conns []net.Conn
	for _, u := range urls {
		nc, err := playDiscard(u)
		if err != nil {
			return err
		}
		conns = append(conns, nc)
	}
	fmt.Println("playing")
	io.Copy(io.Discard, os.Stdin) //nolint:errcheck
	for _, nc := range conns {
		nc.Close()
	}
	return nil
}

// playDiscard plays url over TCP and discards the media in a goroutine
// that ends when the connection closes.
func playDiscard(url string) (net.Conn, error) {
	u, err := base.ParseURL(url)
	if err != nil {
		return nil, err
	}
	nc, err := net.Dial("tcp", u.Host)
	if err != nil {
		return nil, err
	}
	c := conn.NewConn(nc)
	cseq := 0
	do := func(req *base.Request) (*base.Response, error) {
		cseq++
		req.Header["CSeq"] = base.HeaderValue{strconv.Itoa(cseq)}
		if err := c.WriteRequest(req); err != nil {
			return nil, err
		}
		res, err := c.ReadResponse()
		if err == nil && res.StatusCode != base.StatusOK {
			err = fmt.Errorf("%s %s: status %d", req.Method, url, res.StatusCode)
		}
		return res, err
	}
	res, err := do(&base.Request{Method: base.Describe, URL: u, Header: base.Header{}})
	if err != nil {
		nc.Close()
		return nil, err
	}
	var sd sdp.SessionDescription
	var desc description.Session
	if err := sd.Unmarshal(res.Body); err != nil {
		nc.Close()
		return nil, err
	}
	if err := desc.Unmarshal(&sd); err != nil {
		nc.Close()
		return nil, err
	}
	session := ""
	for i, m := range desc.Medias {
		mu, err := m.URL(u)
		if err != nil {
			nc.Close()
			return nil, err
		}
		h := base.Header{"Transport": base.HeaderValue{fmt.Sprintf("RTP/AVP/TCP;unicast;interleaved=%d-%d", 2*i, 2*i+1)}}
		if session != "" {
			h["Session"] = base.HeaderValue{session}
		}
		res, err := do(&base.Request{Method: base.Setup, URL: mu, Header: h})
		if err != nil {
			nc.Close()
			return nil, err
		}
		var sh headers.Session
		if err := sh.Unmarshal(res.Header["Session"]); err != nil {
			nc.Close()
			return nil, err
		}
		session = sh.Session
	}
	if _, err := do(&base.Request{Method: base.Play, URL: u, Header: base.Header{"Session": base.HeaderValue{session}}}); err != nil {
		nc.Close()
		return nil, err
	}
	go func() {
		buf := make([]byte, 256<<10)
		for {
			if _, err := nc.Read(buf); err != nil {
				return
			}
		}
	}()
	return nc, nil
}
