// Package browsertest drives Debian's chromium (TOCSIN_CHROMIUM, default
// /usr/bin/chromium) headless through chromedp for the browser tests of
// the status page and of `tocsin serve`. A test fails, never skips, when
// chromium is missing: `make test` and .ci/run install it.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// Chromium is the browser the tests drive.
func Chromium(t testing.TB) string {
	t.Helper()
	p := os.Getenv("TOCSIN_CHROMIUM")
	if p == "" {
		p = "/usr/bin/chromium"
	}
	if _, err := exec.LookPath(p); err != nil {
		t.Fatalf("chromium not found at %s (%v): install Debian's chromium ('apt-get install -y chromium'; make test does it) or set TOCSIN_CHROMIUM", p, err)
	}
	return p
}

// ArtifactDir is where screenshots go: $TOCSIN_ARTIFACTS, else def
// (relative to the test's package, e.g. "../../artifacts/screenshots").
func ArtifactDir(t testing.TB, def string) string {
	t.Helper()
	dir := os.Getenv("TOCSIN_ARTIFACTS")
	if dir == "" {
		dir = def
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// New starts chromium with a fresh profile and returns its first tab. The
// whole test is bounded by limit, so that a hung browser fails it instead
// of the package's timeout (not a timing assertion).
func New(t testing.TB, limit time.Duration) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(Chromium(t)),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	t.Cleanup(cancel)
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(acancel)
	bctx, bcancel := chromedp.NewContext(actx)
	t.Cleanup(bcancel)
	if err := chromedp.Do(bctx); err != nil { // starts the browser
		t.Fatalf("start chromium: %v", err)
	}
	return bctx
}

// Shot writes a full-page PNG screenshot of tab to file.
func Shot(t testing.TB, tab context.Context, file string) {
	t.Helper()
	png, err := chromedp.Run(tab, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(file, png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Log keeps every URL a tab asked for and the errors it logged (a
// Content-Security-Policy violation, a script's exception).
type Log struct {
	mu     sync.Mutex
	urls   []string
	errors []string
}

// Listen starts recording tab's requests and errors (enable the Log
// domain with cdplog.Enable to see console errors).
func (l *Log) Listen(t testing.TB, tab context.Context) {
	t.Helper()
	err := chromedp.Listen(tab, func(ev any) {
		l.mu.Lock()
		defer l.mu.Unlock()
		switch e := ev.(type) {
		case *network.EventRequestWillBeSent:
			l.urls = append(l.urls, e.Request.URL)
		case *cdplog.EventEntryAdded:
			// The browser's own ask for /favicon.ico is the page's
			// business only as far as the host goes.
			if e.Entry.Level == cdplog.EntryLevelError && !strings.HasSuffix(e.Entry.URL, "/favicon.ico") {
				l.errors = append(l.errors, string(e.Entry.Source)+": "+e.Entry.Text+" "+e.Entry.URL)
			}
		case *runtime.EventExceptionThrown:
			l.errors = append(l.errors, "exception: "+e.ExceptionDetails.Text)
		}
	})
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
}

// All returns the URLs and errors seen so far.
func (l *Log) All() (urls, errors []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.urls...), append([]string(nil), l.errors...)
}
