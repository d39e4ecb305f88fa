package testenv

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// browserTimeout bounds each Run, Eval and Screenshot of a Browser.
const browserTimeout = 30 * time.Second

// Browser is one headless Chromium with a fresh profile, driven over the
// DevTools protocol. The page's console errors and warnings and its
// uncaught exceptions are collected and logged when the test ends. The
// browser is closed at cleanup.
type Browser struct {
	// Diagnose, when set, is a JavaScript expression giving a string that
	// WaitJS adds to its failure when it times out: what the page shows.
	Diagnose string

	ctx  context.Context
	mu   sync.Mutex
	logs []string
}

// NewBrowser starts Chromium (see [Chromium]) headless, without the sandbox
// (tests run as root in containers), with a user data directory of its own,
// autoplay allowed and a 1600×1200 window. opts are added after these and
// override them (chromedp.WindowSize(1400, 900), say).
func NewBrowser(t testing.TB, opts ...chromedp.ExecAllocatorOption) *Browser {
	t.Helper()
	exe := Chromium(t)
	all := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1600, 1200),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(all, opts...)...)
	b := &Browser{}
	ctx, cancelCtx := chromedp.NewContext(actx, chromedp.WithListener(b.listen))
	b.ctx = ctx
	// The first action starts the browser, which lives as long as ctx: no
	// timeout on it.
	if err := chromedp.Do(ctx); err != nil {
		cancelCtx()
		cancelAlloc()
		t.Fatalf("start chromium: %v", err)
	}
	t.Cleanup(func() {
		cancelCtx()
		cancelAlloc()
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, l := range b.logs {
			t.Logf("browser %s", l)
		}
	})
	return b
}

// listen keeps the page's console errors and warnings and its exceptions.
func (b *Browser) listen(ev any) {
	var line string
	switch e := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if e.Type != runtime.ConsoleAPICalledTypeError && e.Type != runtime.ConsoleAPICalledTypeWarning {
			return
		}
		var parts []string
		for _, a := range e.Args {
			parts = append(parts, strings.Trim(string(a.Value), `"`)+a.Description)
		}
		line = string(e.Type) + ": " + strings.Join(parts, " ")
	case *runtime.EventExceptionThrown:
		line = "exception: " + e.ExceptionDetails.Text
		if e.ExceptionDetails.Exception != nil {
			line += " " + e.ExceptionDetails.Exception.Description
		}
	default:
		return
	}
	b.mu.Lock()
	b.logs = append(b.logs, line)
	b.mu.Unlock()
}

// Run performs actions in the page, within 30 s, and fails t if one fails.
func (b *Browser) Run(t testing.TB, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("browser: %v", err)
	}
}

// Eval evaluates the JavaScript expression js in the page and returns its
// value as T; it fails t if the evaluation fails or takes over 30 s.
func Eval[T any](t testing.TB, b *Browser, js string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("browser: evaluate %q: %v", js, err)
	}
	return v
}

// WaitJS polls the JavaScript condition js every 100 ms until it is true
// and returns how long that took. After timeout it fails t, naming what
// it waited for and, with b.Diagnose set, what the page shows.
func (b *Browser) WaitJS(t testing.TB, timeout time.Duration, what, js string) time.Duration {
	t.Helper()
	start := time.Now()
	for !Eval[bool](t, b, js) {
		if time.Since(start) > timeout {
			if b.Diagnose != "" {
				t.Fatalf("timed out after %v waiting for %s; %s", timeout, what, Eval[string](t, b, b.Diagnose))
			}
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return time.Since(start)
}

// Screenshot saves a PNG of the whole page as name in the artifact
// directory ($KUZET_TEST_ARTIFACTS, or test-artifacts at the repository
// root) and returns its path.
func (b *Browser) Screenshot(t testing.TB, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	dir := os.Getenv("KUZET_TEST_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(RepoRoot(t), "test-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
	return path
}
