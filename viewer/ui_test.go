package viewer

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func TestUIServesEmbeddedAssets(t *testing.T) {
	u, err := NewUI()
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	u.Register(mux)
	get := func(path string) (int, http.Header, string) {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		b, _ := io.ReadAll(rec.Result().Body)
		return rec.Code, rec.Result().Header, string(b)
	}
	code, h, body := get("/")
	if code != 200 || !strings.Contains(body, `<script type="module" src="/ui/js/app.js">`) ||
		!strings.Contains(h.Get("Content-Security-Policy"), "script-src 'self'") {
		t.Fatalf("index: %d %v", code, h)
	}
	// Every module the page loads, and every module those import, is served
	// with a JavaScript type.
	seen := map[string]bool{}
	queue := []string{"/ui/js/app.js", "/ui/css/kuzet.css"}
	imp := regexp.MustCompile(`from "\./([a-z]+\.js)"`)
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if seen[p] {
			continue
		}
		seen[p] = true
		code, h, body := get(p)
		if code != 200 {
			t.Fatalf("%s: %d", p, code)
		}
		if strings.HasSuffix(p, ".js") && !strings.HasPrefix(h.Get("Content-Type"), "text/javascript") {
			t.Errorf("%s served as %q", p, h.Get("Content-Type"))
		}
		for _, m := range imp.FindAllStringSubmatch(body, -1) {
			queue = append(queue, "/ui/js/"+m[1])
		}
	}
	if len(seen) < 7 {
		t.Errorf("only %d assets reached from app.js: %v", len(seen), seen)
	}
	for _, p := range []string{"/ui/", "/ui/js/", "/ui/index.html", "/ui/nope.js"} {
		if code, _, _ := get(p); code != 404 {
			t.Errorf("%s: %d, want 404", p, code)
		}
	}
	if code, _, body := get("/ui/../go.mod"); code == 200 || strings.Contains(body, "module ") {
		t.Errorf("/ui/../go.mod: %d", code)
	}
}
