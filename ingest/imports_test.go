package ingest

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImports keeps ingest at the head of the data flow: it imports no other
// Kuzet package (recorder, viewer, alerts and registry import it, never the
// other way round). Test files may use internal/camsim and internal/testenv.
func TestImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, "github.com/kuzet/kuzet/") && pkg != "github.com/kuzet/kuzet/ingest" {
			t.Errorf("ingest imports %s", pkg)
		}
	}
}
