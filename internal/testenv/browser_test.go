package testenv

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// fatalTB records the message of a Fatalf and ends the goroutine as
// testing.T does.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Fatalf(format string, a ...any) {
	f.msg = fmt.Sprintf(format, a...)
	runtime.Goexit()
}

func TestBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	dir := t.TempDir()
	t.Setenv("KUZET_TEST_ARTIFACTS", dir)
	b := NewBrowser(t, chromedp.WindowSize(800, 600))
	b.Run(t, chromedp.Navigate(`data:text/html,<title>t</title><p id="p">hello</p>`))
	if got := Eval[string](t, b, `document.getElementById("p").textContent`); got != "hello" {
		t.Fatalf("Eval = %q", got)
	}
	if got := Eval[int](t, b, `window.innerWidth`); got != 800 {
		t.Errorf("window width %d, want the 800 asked for", got)
	}
	Eval[bool](t, b, `setTimeout(() => { window.ready = true }, 300); true`)
	if d := b.WaitJS(t, 5*time.Second, "ready", `window.ready === true`); d < 200*time.Millisecond {
		t.Errorf("WaitJS returned after %v, before the condition could hold", d)
	}

	// A wait that times out fails with what it waited for and what
	// Diagnose says about the page.
	b.Diagnose = `"page: " + document.getElementById("p").textContent`
	f := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.WaitJS(f, 300*time.Millisecond, "never", `false`)
	}()
	<-done
	if !strings.Contains(f.msg, "waiting for never") || !strings.HasSuffix(f.msg, "; page: hello") {
		t.Errorf("timeout message %q", f.msg)
	}

	path := b.Screenshot(t, "browser.png")
	if filepath.Dir(path) != dir {
		t.Errorf("screenshot at %s, want it in %s", path, dir)
	}
	png, err := os.ReadFile(path)
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Errorf("screenshot: %d bytes, %v", len(png), err)
	}
}
