package statuspage

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/locales"
)

// pageFixtureNow is when the fixture snapshot was built: Sunday 6 December
// 2026, 11:30 in Zurich (CET, UTC+1).
var pageFixtureNow = time.Date(2026, 12, 6, 10, 30, 0, 0, time.UTC)

// pageFixture is a hand-built snapshot: two services in two regions,
// an open incident with three public updates, one resolved two days ago,
// one from October, and a maintenance tomorrow night.
func pageFixture() *Snapshot {
	zurich, _ := time.LoadLocation("Europe/Zurich")
	ch := map[string]string{"en": "Switzerland", "de": "Schweiz", "fr": "Suisse", "da": "Schweiz", "it": "Svizzera", "es": "Suiza"}
	li := map[string]string{"en": "Liechtenstein", "de": "Liechtenstein", "fr": "Liechtenstein", "da": "Liechtenstein"}
	days := func(down map[int]time.Duration, degraded map[int]time.Duration) []Day {
		today := time.Date(2026, 12, 6, 0, 0, 0, 0, zurich)
		out := make([]Day, 90)
		for i := range out {
			out[i] = Day{Date: today.AddDate(0, 0, i-89), Down: down[i], Degraded: degraded[i]}
		}
		return out
	}
	at := func(day, hour, min int) time.Time { return time.Date(2026, 12, day, hour, min, 0, 0, time.UTC) }
	resolvedAt := at(4, 9, 45)
	octResolved := time.Date(2026, 10, 14, 15, 0, 0, 0, time.UTC)
	started := at(6, 9, 4)
	return &Snapshot{
		Version: 42,
		BuiltAt: pageFixtureNow,
		Page:    Page{ID: "acme", Name: "Acme status", URL: "https://status.acme.test", TimeZone: "Europe/Zurich", DefaultLocale: "en"},
		Services: []*Service{
			{
				ID: "payments", Names: map[string]string{"en": "Payments", "de": "Zahlungen", "fr": "Paiements", "da": "Betalinger"},
				Position: 1, Status: StatusMajorOutage,
				Components: []*Component{
					{ID: "payments-ch", Service: "payments", Region: "CH", Names: ch, Position: 1, Status: StatusMajorOutage, UpdatedAt: started},
					{ID: "payments-li", Service: "payments", Region: "LI", Names: li, Position: 2, Status: StatusOperational},
				},
				Uptime: days(map[int]time.Duration{89: 86 * time.Minute, 87: 0, 40: 3 * time.Hour}, map[int]time.Duration{60: 45 * time.Minute}),
			},
			{
				ID: "cards", Names: map[string]string{"en": "Card payments", "de": "Kartenzahlungen", "fr": "Paiements par carte", "da": "Kortbetalinger"},
				Position: 2, Status: StatusDegraded,
				Components: []*Component{
					{ID: "cards-ch", Service: "cards", Region: "CH", Names: ch, Position: 1, Status: StatusDegraded},
					{ID: "cards-li", Service: "cards", Region: "LI", Names: li, Position: 2, Status: StatusUnderMaintenance},
				},
				Uptime: days(nil, map[int]time.Duration{87: 45 * time.Minute}),
			},
		},
		Incidents: []*Incident{
			{
				ID: "inc-open",
				Title: dispatcher.LocaleTitles(map[string]string{
					"en": "Payments fail in Switzerland", "de": "Zahlungen in der Schweiz schlagen fehl",
					"fr": "Les paiements échouent en Suisse", "da": "Betalinger fejler i Schweiz",
				}),
				Severity: dispatcher.SeverityMajor, State: dispatcher.StateIdentified,
				Services: []string{"payments"}, Regions: []string{"CH"}, ComponentIDs: []string{"payments-ch"},
				StartedAt: started, CreatedAt: started, UpdatedAt: at(6, 10, 12),
				Updates: []*Update{
					{Seq: 3, State: "identified", CreatedAt: at(6, 10, 12), Body: map[string]string{
						"en": "An expired certificate at our card processor is the cause. We are replacing it.",
						"de": "Ursache ist ein abgelaufenes Zertifikat bei unserem Kartenverarbeiter. Wir ersetzen es.",
						"fr": "La cause est un certificat expiré chez notre processeur de cartes. Nous le remplaçons.",
						"da": "Årsagen er et udløbet certifikat hos vores kortindløser. Vi udskifter det.",
					}},
					{Seq: 2, State: "investigating", CreatedAt: at(6, 9, 40), Body: map[string]string{
						"en": "Payments in shops fail too.",
						"de": "Auch Zahlungen in Geschäften schlagen fehl.",
						"fr": "Les paiements en magasin échouent aussi.",
						"da": "Betalinger i butikker fejler også.",
					}},
					{Seq: 1, State: "investigating", CreatedAt: started, Body: map[string]string{
						"en": "We are looking into failing payments in the app.",
						"de": "Wir untersuchen fehlschlagende Zahlungen in der App.",
						"fr": "Nous analysons des paiements qui échouent dans l’application.",
						"da": "Vi undersøger fejlende betalinger i appen.",
					}},
				},
			},
			{
				ID: "inc-resolved", Title: dispatcher.PlainTitle("Slow card payments"),
				Severity: dispatcher.SeverityMinor, State: dispatcher.StateResolved,
				Services: []string{"cards"}, Regions: []string{"CH", "LI"},
				StartedAt: at(4, 9, 0), CreatedAt: at(4, 9, 0), UpdatedAt: resolvedAt, ResolvedAt: &resolvedAt,
				Updates: []*Update{
					{Seq: 2, State: "resolved", CreatedAt: resolvedAt, Body: map[string]string{"en": "Card payments are fast again.", "de": "Kartenzahlungen sind wieder schnell."}},
					{Seq: 1, State: "investigating", CreatedAt: at(4, 9, 0), Body: map[string]string{"en": "Card payments are slow."}},
				},
			},
			{
				ID: "inc-october", Title: dispatcher.PlainTitle("October outage"),
				Severity: dispatcher.SeverityCritical, State: dispatcher.StateResolved,
				Services: []string{"payments"}, StartedAt: octResolved.Add(-3 * time.Hour), ResolvedAt: &octResolved,
				Updates: []*Update{{Seq: 1, State: "resolved", CreatedAt: octResolved, Body: map[string]string{"en": "Resolved."}}},
			},
		},
		Maintenances: []*Maintenance{
			{
				ID: "mnt-1", Title: dispatcher.LocaleTitles(map[string]string{"en": "Card network upgrade", "de": "Erneuerung des Kartennetzes", "fr": "Mise à niveau du réseau de cartes", "da": "Opgradering af kortnettet"}),
				State: dispatcher.MaintenanceScheduled, Services: []string{"cards"}, Regions: []string{"LI"},
				ScheduledFor: at(7, 1, 0), ScheduledUntil: at(7, 3, 0), CreatedAt: at(1, 8, 0), UpdatedAt: at(1, 8, 0),
				Updates: []*Update{{Seq: 1, State: "scheduled", CreatedAt: at(1, 8, 0), Body: map[string]string{
					"en": "Card payments in Liechtenstein may fail for a few minutes.",
					"de": "Kartenzahlungen in Liechtenstein können für einige Minuten fehlschlagen.",
					"fr": "Les paiements par carte au Liechtenstein peuvent échouer quelques minutes.",
					"da": "Kortbetalinger i Liechtenstein kan fejle i nogle minutter.",
				}}},
			},
		},
	}
}

// pageFixtureConfig is the public section the fixture is served with.
func pageFixtureConfig() Config {
	return Config{
		Enabled: true, PathPrefix: "/status", Name: "Acme status", Colors: Colors{Accent: "#0b5cad"},
		SupportURL: "https://acme.test/support", ImprintURL: "https://acme.test/imprint", PrivacyURL: "https://acme.test/privacy",
		DefaultLocale: "en", TimeZone: "Europe/Zurich", MaxAge: 10 * time.Second,
	}
}

// pageFixtureLogo is a small SVG logo.
var pageFixtureLogo = []byte(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32" width="32" height="32"><circle cx="16" cy="16" r="14" fill="#0b5cad"/><path d="M9 17l5 5 9-11" stroke="#fff" stroke-width="3" fill="none"/></svg>`)

// newPageFixtureServer serves the fixture's HTML routes the way the integrator
// mounts them.
func newPageFixtureServer(tb testing.TB) http.Handler {
	tb.Helper()
	cfg := pageFixtureConfig()
	routes, err := htmlRoutes(&cfg, HTMLOptions{SubscribeURL: "/status/subscribe", Logo: pageFixtureLogo, LogoType: "image/svg+xml"})
	if err != nil {
		tb.Fatalf("htmlRoutes: %v", err)
	}
	return NewServer(cfg, staticSnapshot(pageFixture()), locales.MustNew().Supported(), routes)
}

func staticSnapshot(s *Snapshot) SnapshotFunc {
	return func(context.Context) (*Snapshot, error) { return s, nil }
}
