package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Promtool returns the path of Prometheus's promtool: KUZET_TEST_PROMTOOL,
// one in the test cache directory's bin, or promtool on PATH (Debian and
// Ubuntu ship it in the prometheus package).
func Promtool(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("KUZET_TEST_PROMTOOL"); p != "" {
		return p
	}
	if p := filepath.Join(CacheDir(), "bin", "promtool"); fileExists(p) {
		return p
	}
	if p, err := exec.LookPath("promtool"); err == nil {
		return p
	}
	Missing(t, "promtool", "apt-get install prometheus (it ships promtool)")
	return ""
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}
