// Package testenv gives tests the real services and tools Kuzet runs
// against or is checked with: a PostgreSQL database, a MinIO server,
// ffprobe/ffmpeg, Chromium (and a chromedp harness for it), GStreamer's RTSP
// server as a third-party camera, and promtool.
//
// Each helper finds or starts the service and returns it, or reports it
// missing. Under `make test` (KUZET_TEST_REQUIRE=1) a missing service fails
// the test with a message naming what is missing and how to install it;
// under plain `go test` it skips the test, saying why. Nothing here is used
// outside tests.
package testenv

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Required reports whether missing services fail tests (make test sets
// KUZET_TEST_REQUIRE=1) rather than skip them.
func Required() bool { return os.Getenv("KUZET_TEST_REQUIRE") == "1" }

// Missing fails (under make test) or skips (under plain go test) t because
// what is not available; how says how to get it.
func Missing(t testing.TB, what, how string) {
	t.Helper()
	if Required() {
		t.Fatalf("%s is missing (required under make test): %s", what, how)
	}
	t.Skipf("skipping: %s is not available (%s); make test requires it", what, how)
}

// CacheDir is where built test tools (the MinIO server) are kept between runs.
func CacheDir() string {
	if d := os.Getenv("KUZET_TEST_CACHE"); d != "" {
		return d
	}
	d, err := os.UserCacheDir()
	if err != nil {
		d = os.TempDir()
	}
	return filepath.Join(d, "kuzet-test")
}

// FFprobe returns the path of ffprobe.
func FFprobe(t testing.TB) string {
	t.Helper()
	return tool(t, "ffprobe", "apt-get install ffmpeg")
}

// FFmpeg returns the path of ffmpeg.
func FFmpeg(t testing.TB) string {
	t.Helper()
	return tool(t, "ffmpeg", "apt-get install ffmpeg")
}

// Chromium returns the path of a Chromium binary.
func Chromium(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("KUZET_TEST_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	Missing(t, "Chromium", "apt-get install chromium")
	return ""
}

func tool(t testing.TB, name, how string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(t, name, how)
	}
	return p
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// RepoRoot returns the repository root (the directory holding go.mod).
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("testenv: go.mod not found above the test directory")
		}
		dir = parent
	}
}
