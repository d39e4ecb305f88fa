package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kuzet/kuzet/internal/testenv"
)

// kuzetBin is the kuzet binary built once for tests that need a real process
// (signals, exit codes, no stack traces).
var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func kuzetBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "kuzet-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "kuzet")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

func TestHelpExplainsEveryCommand(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"--help"}, &out, &errb); code != 0 {
		t.Fatalf("--help exit %d: %s", code, errb.String())
	}
	for _, c := range commands() {
		if !strings.Contains(out.String(), c.name) {
			t.Errorf("kuzet --help does not list %s", c.name)
		}
		var cout, cerr bytes.Buffer
		if code := run(context.Background(), []string{c.name, "--help"}, &cout, &cerr); code != 0 {
			t.Errorf("kuzet %s --help exit %d: %s", c.name, code, cerr.String())
		}
		if n := strings.Count(cout.String(), "Usage: kuzet "+c.name); n != 1 {
			t.Errorf("kuzet %s --help prints %d usage lines, want 1:\n%s", c.name, n, cout.String())
		}
		if cerr.Len() != 0 {
			t.Errorf("kuzet %s --help wrote to stderr: %s", c.name, cerr.String())
		}
	}
	var ferr bytes.Buffer
	if code := run(context.Background(), []string{"serve", "--no-such-flag"}, io.Discard, &ferr); code != 2 ||
		!strings.Contains(ferr.String(), "flag provided but not defined: -no-such-flag") || strings.Count(ferr.String(), "Usage:") != 1 {
		t.Errorf("bad flag: exit %d, stderr %q", code, ferr.String())
	}
	var eout bytes.Buffer
	if code := run(context.Background(), []string{"frobnicate"}, io.Discard, &eout); code != 2 || !strings.Contains(eout.String(), `unknown command "frobnicate"`) {
		t.Errorf("unknown command: exit %d, %q", code, eout.String())
	}
}

// TestServeRefusesBadStart runs the real binary: each bad start exits
// non-zero with a message naming the problem and no stack trace.
func TestServeRefusesBadStart(t *testing.T) {
	bin := kuzetBinary(t)
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	closedPort := testenv.FreePort(t)
	tests := []struct {
		name string
		args []string
		env  []string
		want []string
	}{
		{"bad key", []string{"--config", write("badkey.yaml", "http:\n  listen: 127.0.0.1:0\n  listne: x\n")}, nil,
			[]string{`"http.listne"`, "line 3", "unknown key"}},
		{"bad duration", []string{"--config", write("baddur.yaml", "ingest:\n  read_timeout: 10 sec\n")}, nil,
			[]string{`"ingest.read_timeout"`, "line 2", "invalid duration"}},
		{"unreachable database", []string{"--config", write("db.yaml", "http:\n  listen: 127.0.0.1:0\ndatabase:\n  connect_timeout: 2s\n")},
			[]string{fmt.Sprintf("KUZET_DATABASE_URL=postgres://kuzet:hunter2@127.0.0.1:%d/kuzet", closedPort)},
			[]string{"unreachable", fmt.Sprintf("127.0.0.1:%d", closedPort)}},
		{"no database", []string{"--config", write("nodb.yaml", "http:\n  listen: 127.0.0.1:0\n")}, nil,
			[]string{`"database.url" is required`}},
		{"missing file", []string{"--config", filepath.Join(dir, "nope.yaml")}, nil, []string{"nope.yaml", "no such file"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(bin, append([]string{"serve"}, tc.args...)...)
			cmd.Env = append(cleanEnv(), tc.env...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			ee, ok := err.(*exec.ExitError)
			if !ok || ee.ExitCode() == 0 {
				t.Fatalf("want non-zero exit, got %v; stderr:\n%s", err, stderr.String())
			}
			msg := stderr.String()
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("stderr lacks %q:\n%s", w, msg)
				}
			}
			for _, bad := range []string{"goroutine ", "panic:", ".go:", "hunter2"} {
				if strings.Contains(msg, bad) {
					t.Errorf("stderr contains %q (stack trace or secret):\n%s", bad, msg)
				}
			}
		})
	}
}

// cleanEnv is the environment without KUZET_ variables of the caller.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KUZET_") {
			env = append(env, kv)
		}
	}
	return env
}

// TestServeShutsDownOnSignal starts serve against a real database, checks
// the operational endpoints, sends SIGTERM and expects a clean exit within
// 10 s.
func TestServeShutsDownOnSignal(t *testing.T) {
	dbURL := testenv.PostgresURL(t)
	bin := kuzetBinary(t)
	port := testenv.FreePort(t)
	dir := t.TempDir()
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(cleanEnv(),
		"KUZET_DATABASE_URL="+dbURL,
		fmt.Sprintf("KUZET_HTTP_LISTEN=127.0.0.1:%d", port),
		"KUZET_STORE_FS_DIR="+filepath.Join(dir, "store"),
		"KUZET_RECORDER_SPOOL_DIR="+filepath.Join(dir, "spool"),
		"KUZET_LOG_FORMAT=json",
		"KUZET_WEBRTC_UDP_LISTEN=127.0.0.1:0",
		"KUZET_WEBRTC_TCP_LISTEN=127.0.0.1:0",
	)
	var logs bytes.Buffer
	cmd.Stderr = &logs
	cmd.Stdout = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready within 60s; logs:\n%s", logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	for path, want := range map[string]string{"/healthz": "ok", "/metrics": "kuzet_up 1"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), want) {
			t.Errorf("%s = %d, lacks %q", path, resp.StatusCode, want)
		}
		if path == "/metrics" && !strings.Contains(string(b), "go_goroutines") {
			t.Errorf("/metrics lacks Go runtime metrics")
		}
	}
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v; logs:\n%s", err, logs.String())
		}
		t.Logf("clean shutdown %v after SIGTERM", time.Since(start).Round(time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Fatalf("still running 10s after SIGTERM; logs:\n%s", logs.String())
	}
}
