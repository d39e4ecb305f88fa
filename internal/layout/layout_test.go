package layout

import (
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/kuzet/kuzet"

// forbidden maps a top-level area to the areas it must never depend on,
// directly or through another package.
var forbidden = map[string][]string{
	"ingest":   {"recorder", "viewer", "alerts", "registry", "cmd"},
	"recorder": {"viewer", "alerts", "cmd"},
	"viewer":   {"recorder", "alerts", "cmd"},
	"alerts":   {"recorder", "viewer", "cmd"},
	"registry": {"ingest", "recorder", "viewer", "alerts", "cmd"},
	"internal": {"cmd"},
}

// only lists packages that may depend on nothing of this module but the
// given prefixes (and their own subpackages): the head of the data flow and
// the leaves that stand alone.
var only = map[string][]string{
	module + "/ingest":         {module + "/internal/"},
	module + "/recorder/store": {module + "/internal/"},
	module + "/registry":       {module + "/internal/"},
}

// area returns the top-level folder of a package of this module.
func area(pkg string) string {
	rel := strings.TrimPrefix(strings.TrimPrefix(pkg, module), "/")
	a, _, _ := strings.Cut(rel, "/")
	return a
}

// touchSources stats every Go file of the module, so that go test's result
// cache (which does not see what the go list child process reads) is
// invalidated by any change to any source file.
func touchSources(t *testing.T) {
	t.Helper()
	root := filepath.Join("..", "..")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "var" || d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".")) && p != root {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(p, ".go") {
			_, err = os.Stat(p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestImportsFollowTheDataFlow(t *testing.T) {
	touchSources(t)
	out, err := exec.Command("go", "list", "-e", "-f", `{{.ImportPath}}{{range .Deps}} {{.}}{{end}}`, module+"/...").Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg, deps := fields[0], fields[1:]
		from := area(pkg)
		if strings.HasSuffix(pkg, "_test") || strings.Contains(pkg, "/internal/testenv") {
			continue
		}
		checked++
		for _, d := range deps {
			if !strings.HasPrefix(d, module+"/") {
				continue
			}
			to := area(d)
			for _, f := range forbidden[from] {
				if to == f {
					t.Errorf("%s depends on %s: %s must not depend on %s (DESIGN.md: imports point upstream only)", pkg, d, from, f)
				}
			}
			for owner, allowed := range only {
				if pkg != owner && !strings.HasPrefix(pkg, owner+"/") || d == owner || strings.HasPrefix(d, owner+"/") {
					continue
				}
				ok := false
				for _, a := range allowed {
					ok = ok || strings.HasPrefix(d, a)
				}
				if !ok {
					t.Errorf("%s depends on %s: %s may depend only on %v", pkg, d, owner, allowed)
				}
			}
			if to == "internal" && strings.Contains(d, "/internal/testenv") {
				t.Errorf("%s (non-test code) depends on internal/testenv", pkg)
			}
		}
	}
	if checked < 5 {
		t.Fatalf("only %d packages checked; go list output:\n%s", checked, out)
	}
}

func TestPackageNames(t *testing.T) {
	touchSources(t)
	out, err := exec.Command("go", "list", "-e", module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		switch path.Base(pkg) {
		case "util", "utils", "common", "helpers", "models", "types", "misc":
			t.Errorf("package %s: name it for what it holds", pkg)
		}
	}
}
