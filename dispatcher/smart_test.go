package dispatcher_test

import (
	"strings"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/locales"
)

// The case: a Spanish operator SMS with á, í and ó went out as
// UCS-2 in 5 segments where GSM-7 takes 2. Smart encoding (opt-in) drops
// the accents; off, the text goes as written. Both counts are reported.
func TestCatalogRendererSmartEncoding(t *testing.T) {
	t.Parallel()
	now := time.Date(2101, 3, 4, 15, 0, 0, 0, time.UTC)
	inc := &dispatcher.Incident{ID: "inc_es", Title: dispatcher.PlainTitle("Pagos"), Severity: dispatcher.SeverityMajor,
		State: dispatcher.StateInvestigating, CreatedAt: now.Add(-time.Hour)}
	text := "Estamos investigando una interrupción de los pagos con tarjeta en todo el país. " +
		"Nuestro equipo técnico está trabajando para solucionarla lo antes posible; " +
		"mientras tanto, utilice otro método de pago. Le informaremos en cuanto esté resuelta. " +
		"Disculpe las molestias."
	up := &dispatcher.Update{IncidentID: inc.ID, Seq: 1, State: dispatcher.StateInvestigating,
		Message: dispatcher.PlainTexts(map[string]string{"es": text})}
	req := dispatcher.RenderRequest{Incident: inc, Update: up, Locale: "es-US", Kind: dispatcher.KindCustomer, Channel: dispatcher.ChannelSMS}
	clock := dispatcher.ClockFunc(func() time.Time { return now })

	off, err := (&dispatcher.CatalogRenderer{Catalog: locales.MustNew(), Clock: clock}).Render(req)
	if err != nil {
		t.Fatal(err)
	}
	on, err := (&dispatcher.CatalogRenderer{Catalog: locales.MustNew(), Clock: clock, SmartEncoding: true}).Render(req)
	if err != nil {
		t.Fatal(err)
	}
	if off.Encoding != "UCS-2" || off.Body != text || off.Segments != off.AsWritten {
		t.Errorf("off: %s, %d segments (as written %d), body changed %v; want the text as written, UCS-2",
			off.Encoding, off.Segments, off.AsWritten, off.Body != text)
	}
	if on.Encoding != "GSM-7" || on.Segments != on.Smart || strings.ContainsAny(on.Body, "áíó") {
		t.Errorf("on: %s, %d segments (smart %d), body %q; want GSM-7 without accents", on.Encoding, on.Segments, on.Smart, on.Body)
	}
	if on.Segments >= off.Segments {
		t.Errorf("smart encoding gives %d segments, as written %d: want fewer", on.Segments, off.Segments)
	}
	// Both report both counts, so a preview can show what the option changes.
	if off.Smart != on.Segments || on.AsWritten != off.Segments {
		t.Errorf("counts disagree: off reports smart=%d, on reports as-written=%d; want %d and %d",
			off.Smart, on.AsWritten, on.Segments, off.Segments)
	}
	t.Logf("as written: %d segments (%s); smart encoding: %d (%s)", off.Segments, off.Encoding, on.Segments, on.Encoding)
}
