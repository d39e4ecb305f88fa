package testenv

import (
	"bufio"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// GstRTSPPackages are the Debian/Ubuntu packages GStreamer's RTSP server
// needs here (scripts/deps.sh installs them for make test).
const GstRTSPPackages = "python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad"

// gstRTSPScript wires GStreamer's RTSP server to a looping clip; see its
// docstring.
//
//go:embed gst_rtsp_server.py
var gstRTSPScript []byte

var (
	gstPythonOnce sync.Once
	gstPythonPath string
	gstPythonErr  error
)

// GstPython returns a Python 3 interpreter that has GStreamer's RTSP server
// bindings and every element the camera script uses: KUZET_TEST_GST_PYTHON,
// Debian's /usr/bin/python3, or python3 on PATH, the first that passes the
// script's check.
func GstPython(t testing.TB) string {
	t.Helper()
	gstPythonOnce.Do(func() { gstPythonPath, gstPythonErr = findGstPython() })
	if gstPythonErr != nil {
		Missing(t, "GStreamer RTSP server", gstPythonErr.Error())
	}
	return gstPythonPath
}

func findGstPython() (string, error) {
	var candidates []string
	if p := os.Getenv("KUZET_TEST_GST_PYTHON"); p != "" {
		candidates = append(candidates, p)
	}
	candidates = append(candidates, "/usr/bin/python3")
	if p, err := exec.LookPath("python3"); err == nil {
		candidates = append(candidates, p)
	}
	var errs []string
	seen := map[string]bool{}
	for _, p := range candidates {
		if seen[p] {
			continue
		}
		seen[p] = true
		cmd := exec.Command(p, "-", "--check")
		cmd.Stdin = strings.NewReader(string(gstRTSPScript))
		out, err := cmd.CombinedOutput()
		if err == nil {
			return p, nil
		}
		errs = append(errs, fmt.Sprintf("%s: %v: %s", p, err, strings.TrimSpace(string(out))))
	}
	return "", fmt.Errorf("no Python with GStreamer's RTSP server (%s); install it with apt-get install %s",
		strings.Join(errs, "; "), GstRTSPPackages)
}

// GstRTSPServer is GStreamer's RTSP server (gst-rtsp-server, driven by the
// script internal/testenv/gst_rtsp_server.py) serving one clip in a loop, in
// real time, as a live camera: a third-party RTSP implementation with its own
// RTP packetization and RTCP sender reports.
type GstRTSPServer struct {
	// URL is rtsp://127.0.0.1:PORT/cam; it stays the same across Stop and
	// Start.
	URL string

	python, script, clip, log string
	port                      string
	mu                        sync.Mutex
	cmd                       *exec.Cmd
	stdin                     io.Closer
	exited                    chan struct{}
}

// StartGstRTSPServer serves clip (an MPEG-TS file with H.264 or H.265 video
// and optionally AAC audio) on a free loopback port; the server is stopped
// when the test ends.
func StartGstRTSPServer(t testing.TB, clip string) *GstRTSPServer {
	t.Helper()
	python := GstPython(t)
	dir := t.TempDir()
	script := filepath.Join(dir, "gst_rtsp_server.py")
	if err := os.WriteFile(script, gstRTSPScript, 0o644); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	s := &GstRTSPServer{python: python, script: script, clip: clip, log: filepath.Join(dir, "gst_rtsp_server.log"), port: "0"}
	t.Cleanup(func() { _ = s.Stop() })
	if err := s.Start(); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return s
}

// Start starts the server (again, on the same port, after Stop) and returns
// once it listens.
func (s *GstRTSPServer) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return nil
	}
	log, err := os.Create(s.log)
	if err != nil {
		return err
	}
	defer log.Close()
	out, outW, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd := exec.Command(s.python, s.script, s.clip, "/cam", s.port)
	cmd.Stdout, cmd.Stderr = outW, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// The server exits when its standard input closes: at Stop, or when this
	// process dies.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		out.Close()
		outW.Close()
		return err
	}
	if err := cmd.Start(); err != nil {
		out.Close()
		outW.Close()
		return fmt.Errorf("start GStreamer RTSP server: %w", err)
	}
	outW.Close()
	exited := make(chan struct{})
	line := make(chan string, 1)
	go func() {
		// The first line is the URL; the rest (nothing, normally) is drained
		// until the process exits.
		r := bufio.NewReader(out)
		l, _ := r.ReadString('\n')
		line <- strings.TrimSpace(l)
		_, _ = io.Copy(io.Discard, r)
		out.Close()
		_ = cmd.Wait()
		close(exited)
	}()
	kill := func() {
		_ = stdin.Close()
		_ = cmd.Process.Kill()
		<-exited
	}
	select {
	case l := <-line:
		if !strings.HasPrefix(l, "rtsp://") {
			kill()
			return fmt.Errorf("GStreamer RTSP server did not start: %q; log: %s", l, readTail(s.log))
		}
		if s.URL != "" && l != s.URL {
			kill()
			return fmt.Errorf("GStreamer RTSP server restarted at %s, not %s", l, s.URL)
		}
		u, err := url.Parse(l)
		if err != nil || u.Port() == "" {
			kill()
			return fmt.Errorf("GStreamer RTSP server URL %q: %v", l, err)
		}
		s.URL, s.port = l, u.Port()
	case <-time.After(60 * time.Second):
		kill()
		return fmt.Errorf("GStreamer RTSP server did not listen within 60s; log: %s", readTail(s.log))
	}
	s.cmd, s.stdin, s.exited = cmd, stdin, exited
	return nil
}

// Stop ends the server (closing its sessions) and waits for it to exit: it
// is asked to by closing its standard input, and killed after 5 s.
func (s *GstRTSPServer) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return nil
	}
	_ = s.stdin.Close()
	var err error
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
		err = errors.New("GStreamer RTSP server did not exit within 5s of its input closing; killed")
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	s.cmd = nil
	return err
}

func readTail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}
