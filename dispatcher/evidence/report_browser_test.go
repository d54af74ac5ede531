package evidence_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/tocsin-dev/tocsin/dispatcher/evidence"
	"github.com/tocsin-dev/tocsin/internal/browsertest"
)

// pdfPage matches a page object of a PDF ("/Type /Pages" is the tree).
var pdfPage = regexp.MustCompile(`/Type\s*/Page\b[^s]`)

// pdfCount is the page tree's /Count.
var pdfCount = regexp.MustCompile(`/Type\s*/Pages\b[^>]*?/Count\s+(\d+)|/Count\s+(\d+)[^>]*?/Type\s*/Pages\b`)

// TestBrowserReportPrintsOnOnePage loads the HTML report of a realistic
// incident (three updates and a compensation notice, five channels, nine
// locales, 15 reasons of which the page lists 12) in headless chromium in
// each of the report's languages, prints it to PDF as an operator's
// browser would (A4, default margins, backgrounds) and checks that it is
// one page. The PDFs, and screenshots of the page as printed, go to
// $TOCSIN_ARTIFACTS (default artifacts/screenshots/).
func TestBrowserReportPrintsOnOnePage(t *testing.T) {
	ctx := browsertest.New(t, 2*time.Minute)
	dir := browsertest.ArtifactDir(t, filepath.Join("..", "..", "artifacts", "screenshots"))
	rep := fullReport()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if err := evidence.WriteHTML(w, rep, r.URL.Query().Get("lang")); err != nil {
			t.Error(err)
		}
	}))
	t.Cleanup(srv.Close)

	for _, lang := range reportLanguages {
		var pdf []byte
		err := chromedp.Do(ctx,
			// A4's width less the page's 12 mm margins, for the log below.
			chromedp.EmulateViewport(703, 1000),
			chromedp.Navigate(srv.URL+"/report?lang="+lang),
			chromedp.WaitVisible(chromedp.CSS(`footer`)),
			chromedp.Action[chromedp.Void](func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
				yes := true
				res, err := cdp.Call(ctx, tg, page.PrintToPDF, page.PrintToPDFParams{
					PaperWidth: 8.27, PaperHeight: 11.69, // A4, in inches
					PrintBackground: &yes,
				})
				pdf = res.Data
				return chromedp.Void{}, err
			}),
		)
		if err != nil {
			t.Fatalf("%s: %v", lang, err)
		}
		// The page's height as printed, for the log (96 px = 25.4 mm).
		if _, err := chromedp.Run(ctx, chromedp.Action[chromedp.Void](func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			_, err := cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Media: "print"})
			return chromedp.Void{}, err
		})); err != nil {
			t.Fatal(err)
		}
		h, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`document.documentElement.getBoundingClientRect().height`))
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %.0f mm high as printed", lang, h*25.4/96)
		browsertest.Shot(t, ctx, filepath.Join(dir, "evidence-report-"+lang+".png"))
		file := filepath.Join(dir, "evidence-report-"+lang+".pdf")
		if err := os.WriteFile(file, pdf, 0o644); err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(pdf, []byte("%PDF-")) {
			t.Fatalf("%s: not a PDF: %.20q", lang, pdf)
		}
		pages := len(pdfPage.FindAll(pdf, -1))
		count := -1
		if m := pdfCount.FindSubmatch(pdf); m != nil {
			count, _ = strconv.Atoi(string(append(m[1], m[2]...)))
		}
		if pages != 1 || count != 1 {
			t.Errorf("%s: the report prints on %d pages (page tree /Count %d), want 1: %s", lang, pages, count, file)
		}
	}
}
