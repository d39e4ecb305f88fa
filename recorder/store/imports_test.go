package store

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImports keeps the store a leaf of the recorder: it may use the
// standard library, minio-go and the Prometheus client, and no other Kuzet
// package (internal/testenv is for tests only).
func TestImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, "github.com/kuzet/kuzet/") && pkg != "github.com/kuzet/kuzet/recorder/store" {
			t.Errorf("recorder/store imports %s", pkg)
		}
	}
}
