package testenv

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// MinIOVersion is the MinIO server version `make test` builds with go install
// into the test cache directory.
const MinIOVersion = "v0.0.0-20260212201848-7aac2a2c5b7c"

// MinIOBinary returns the path of the MinIO server: KUZET_TEST_MINIO, the one
// built into the cache directory by `make test`, or minio on PATH.
func MinIOBinary() (string, error) {
	if p := os.Getenv("KUZET_TEST_MINIO"); p != "" {
		return p, nil
	}
	p := filepath.Join(CacheDir(), "bin", "minio")
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	if p, err := exec.LookPath("minio"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("no minio binary in %s or on PATH (make test builds it with: GOBIN=%s go install github.com/minio/minio@%s)",
		filepath.Join(CacheDir(), "bin"), filepath.Join(CacheDir(), "bin"), MinIOVersion)
}

// MinIO is a MinIO server started for one test, with one bucket created
// with object lock enabled.
type MinIO struct {
	Endpoint  string // host:port, plain HTTP
	AccessKey string
	SecretKey string
	Bucket    string

	bin, dir string
	t        testing.TB
	mu       sync.Mutex
	cmd      *exec.Cmd
	exited   chan struct{}
}

// StartMinIO starts a MinIO server on a free loopback port with a temporary
// data directory; it is stopped when the test ends.
func StartMinIO(t testing.TB) *MinIO {
	t.Helper()
	bin, err := MinIOBinary()
	if err != nil {
		Missing(t, "MinIO server", err.Error())
	}
	m := &MinIO{
		Endpoint:  net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t))),
		AccessKey: "kuzettest",
		SecretKey: "kuzettest-secret",
		Bucket:    "kuzet-test",
		bin:       bin,
		dir:       t.TempDir(),
		t:         t,
	}
	if err := m.Start(); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() { _ = m.Stop() })
	c := m.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.MakeBucket(ctx, m.Bucket, minio.MakeBucketOptions{ObjectLocking: true}); err != nil {
		t.Fatalf("testenv: make bucket: %v", err)
	}
	return m
}

// Start starts (or restarts, on the same port and data) the server and
// waits until it answers its health check.
func (m *MinIO) Start() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd != nil {
		return nil
	}
	cmd := exec.Command(m.bin, "server", "--quiet", "--address", m.Endpoint, "--console-address", "127.0.0.1:0", m.dir)
	cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+m.AccessKey, "MINIO_ROOT_PASSWORD="+m.SecretKey,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off", "MINIO_CI_CD=1")
	log, err := os.Create(filepath.Join(m.dir, "..", "minio.log"))
	if err == nil {
		cmd.Stdout, cmd.Stderr = log, log
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start minio: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	m.cmd, m.exited = cmd, exited
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + m.Endpoint + "/minio/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-exited:
			m.cmd = nil
			return fmt.Errorf("minio exited at start (log in %s)", filepath.Join(m.dir, "..", "minio.log"))
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("minio did not become ready within 60s")
}

// Stop kills the server (as an outage would) and waits for it to exit.
func (m *MinIO) Stop() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return nil
	}
	_ = syscall.Kill(-m.cmd.Process.Pid, syscall.SIGKILL)
	<-m.exited
	m.cmd = nil
	return nil
}

// Client returns a minio-go client with the root credentials.
func (m *MinIO) Client(t testing.TB) *minio.Client {
	t.Helper()
	c, err := minio.New(m.Endpoint, &minio.Options{
		Creds:  credentials.NewStaticV4(m.AccessKey, m.SecretKey, ""),
		Secure: false,
	})
	if err != nil {
		t.Fatalf("testenv: minio client: %v", err)
	}
	return c
}
