package alerts

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImports keeps alerts at the end of the data flow: it may import
// ingest, registry and internal plumbing, never recorder or viewer (their
// state comes through interfaces wired in cmd/kuzet).
func TestImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	allowed := []string{"github.com/kuzet/kuzet/alerts", "github.com/kuzet/kuzet/ingest", "github.com/kuzet/kuzet/registry",
		"github.com/kuzet/kuzet/internal/"}
	for _, pkg := range strings.Fields(string(out)) {
		if !strings.HasPrefix(pkg, "github.com/kuzet/kuzet/") {
			continue
		}
		ok := false
		for _, a := range allowed {
			if pkg == a || strings.HasPrefix(pkg, a+"/") || strings.HasSuffix(a, "/") && strings.HasPrefix(pkg, a) {
				ok = true
			}
		}
		if !ok {
			t.Errorf("alerts imports %s", pkg)
		}
	}
}
