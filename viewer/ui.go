package viewer

import (
	"embed"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

// uiFiles are the web UI's static files: plain HTML, CSS and JavaScript
// modules, embedded in the binary; no build step.
//
//go:embed ui
var uiFiles embed.FS

// UI serves the web UI: the page at / and its assets under /ui/.
type UI struct {
	files fs.FS
}

// NewUI returns the web UI handler.
func NewUI() (*UI, error) {
	sub, err := fs.Sub(uiFiles, "ui")
	if err != nil {
		return nil, fmt.Errorf("ui: %w", err)
	}
	if _, err := fs.Stat(sub, "index.html"); err != nil {
		return nil, fmt.Errorf("ui: %w", err)
	}
	return &UI{files: sub}, nil
}

// Register mounts GET / (the page) and GET /ui/ (its assets).
func (u *UI) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", u.index)
	mux.Handle("GET /ui/", http.StripPrefix("/ui/", http.HandlerFunc(u.asset)))
}

// uiCSP allows the page its own scripts, styles, connections (the API,
// WHEP and the fallback WebSocket) and media from blob: URLs (Media Source
// Extensions); nothing else, and no framing.
const uiCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; media-src 'self' blob:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

func uiHeaders(h http.Header) {
	h.Set("Content-Security-Policy", uiCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
}

func (u *UI) index(w http.ResponseWriter, r *http.Request) {
	b, err := fs.ReadFile(u.files, "index.html")
	if err != nil {
		http.Error(w, "ui missing", http.StatusInternalServerError)
		return
	}
	uiHeaders(w.Header())
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(b)
}

func (u *UI) asset(w http.ResponseWriter, r *http.Request) {
	name := path.Clean(strings.TrimPrefix(r.URL.Path, "/"))
	if name == "." || name == "index.html" || strings.HasPrefix(name, "..") {
		http.NotFound(w, r)
		return
	}
	if st, err := fs.Stat(u.files, name); err != nil || st.IsDir() {
		http.NotFound(w, r)
		return
	}
	uiHeaders(w.Header())
	// Assets change with the binary; revalidate rather than cache blindly.
	w.Header().Set("Cache-Control", "no-cache")
	http.ServeFileFS(w, r, u.files, name)
}
