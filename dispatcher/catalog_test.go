package dispatcher_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/text/language"
	"golang.org/x/text/language/display"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/locales"
)

func TestCanonicalLabels(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"TWINT": "twint", "Cards": "cards", "mobile-app": "mobile-app", "A_B.c:D": "a_b.c:d"} {
		if got := dispatcher.CanonicalService(in); got != want {
			t.Errorf("CanonicalService(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{
		"ch": "CH", "Ch": "CH", "CH": "CH", "dk": "DK", "ch-zh": "CH-ZH", "us-ca": "US-CA", "US-001": "US-001",
		"Zurich": "zurich", "EU-West": "eu-west", "us-east-1": "us-east-1", "c": "c", "che": "che", "756": "756",
	} {
		if got := dispatcher.CanonicalRegion(in); got != want {
			t.Errorf("CanonicalRegion(%q) = %q, want %q", in, got, want)
		}
	}
	if got := dispatcher.CanonicalRegions([]string{"ch", "CH", "Zurich", "zurich"}); !slices.Equal(got, []string{"CH", "zurich"}) {
		t.Errorf("CanonicalRegions = %v", got)
	}
}

// countingCatalog counts the catalog reads of the fan-out.
type countingCatalog struct {
	dispatcher.CatalogStore
	versions, loads atomic.Int32
}

func (c *countingCatalog) CatalogVersion(ctx context.Context) (int64, error) {
	c.versions.Add(1)
	return c.CatalogStore.CatalogVersion(ctx)
}

func (c *countingCatalog) LoadCatalog(ctx context.Context) (*dispatcher.StoredCatalog, error) {
	c.loads.Add(1)
	return c.CatalogStore.LoadCatalog(ctx)
}

// TestLabelsAndNamesOnRedis: an incident for "ch" and "CARDS" reaches the
// recipients stored with "CH" and "Cards" (and no one in DK), on a real
// Redis, and each reads the catalog's names in its language; a name the
// API changes is read from the next update on; the catalog is read once
// per batch, never per delivery.
func TestLabelsAndNamesOnRedis(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sender := &scriptedSender{}
	f := newRedisFlow(t, time.Date(2101, 3, 4, 10, 0, 0, 0, time.UTC), map[dispatcher.Channel]dispatcher.Sender{dispatcher.ChannelEmail: sender})
	counted := &countingCatalog{CatalogStore: f.store}
	names := dispatcher.MustNameCatalog(counted, map[string]map[string]string{"cards": {"de": "Kartenzahlungen", "fr": "paiements par carte"}}, nil)
	f.with(func(c *dispatcher.FanoutConfig) {
		c.Renderer = &dispatcher.CatalogRenderer{Catalog: locales.MustNew(), Clock: f.clock, Names: names}
		c.BatchSize = 2
	})
	f.svc = dispatcher.MustService(dispatcher.ServiceConfig{
		Recipients: f.store, Incidents: f.store, Deliveries: f.store, Webhooks: f.store,
		Queue: f.queue, Fanout: f.fan, Catalog: names, Clock: f.clock, Logger: quiet,
	})
	for _, r := range []*dispatcher.Recipient{
		{ID: "anna", Locale: "de-CH", Email: "anna@example.ch", Services: []string{"Cards"}, Regions: []string{"CH"}},
		{ID: "luc", Locale: "fr-CH", Email: "luc@example.ch", Services: []string{"cards"}, Regions: []string{"ch"}},
		{ID: "gina", Locale: "it-CH", Email: "gina@example.ch", Regions: []string{"CH"}},
		{ID: "dane", Locale: "da", Email: "dane@example.dk", Services: []string{"CARDS"}, Regions: []string{"dk"}},
	} {
		if _, err := f.svc.PutRecipient(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	opened, err := f.svc.OpenIncident(ctx, dispatcher.IncidentInput{Title: dispatcher.PlainTitle("Karten"), Severity: dispatcher.SeverityMajor,
		Services: []string{"CARDS"}, Regions: []string{"ch"}}, "")
	if err != nil {
		t.Fatal(err)
	}
	if inc := opened.Incident; !slices.Equal(inc.Services, []string{"cards"}) || !slices.Equal(inc.Regions, []string{"CH"}) {
		t.Errorf("incident stored with %v %v, want [cards] [CH]", inc.Services, inc.Regions)
	}
	f.run(t, opened.BroadcastID)
	batches := int32(len(f.queue.batches))
	ch := func(lang string) string {
		return display.Regions(language.MustParse(lang)).Name(language.MustParseRegion("CH"))
	}
	bodies := func() map[string]string {
		sender.mu.Lock()
		defer sender.mu.Unlock()
		out := map[string]string{}
		for _, c := range sender.calls {
			for _, m := range c {
				out[m.Recipient.ID] = m.Body
			}
		}
		sender.calls = nil
		return out
	}
	got := bodies()
	want := map[string]string{
		"anna": "bei Kartenzahlungen (" + ch("de") + ")",
		"luc":  "paiements par carte (" + ch("fr") + ")",
		"gina": "cards (" + ch("it") + ")", // no Italian name: the label
	}
	if len(got) != len(want) {
		t.Errorf("sent to %v, want anna, luc and gina", slices.Sorted(maps.Keys(got)))
	}
	for id, w := range want {
		if !strings.Contains(got[id], w) {
			t.Errorf("%s read %q, want it to contain %q", id, got[id], w)
		}
	}
	if v, l := counted.versions.Load(), counted.loads.Load(); v != batches || l != 1 {
		t.Errorf("%d batches read the catalog version %d times and loaded it %d times; want once per batch, one load", batches, v, l)
	}

	// An operator renames the service; the next update reads it.
	if _, err := f.svc.PutCatalogEntry(ctx, dispatcher.CatalogServices, "Cards", map[string]string{"it": "pagamenti con carta"}); err != nil {
		t.Fatal(err)
	}
	res, err := f.svc.PostUpdate(ctx, opened.Incident.ID, dispatcher.UpdateInput{State: dispatcher.StateIdentified}, "")
	if err != nil {
		t.Fatal(err)
	}
	f.run(t, res.BroadcastID)
	if b := bodies()["gina"]; !strings.Contains(b, "pagamenti con carta") {
		t.Errorf("after the rename gina read %q", b)
	}
	if _, err := f.svc.PutCatalogEntry(ctx, dispatcher.CatalogKind("things"), "x", map[string]string{"it": "x"}); !errors.Is(err, dispatcher.ErrNotFound) {
		t.Errorf("put into an unknown list: %v, want ErrNotFound", err)
	}
}

// TestNameCatalogConfig: configured names are checked, named by their
// option path, and ids canonical.
func TestNameCatalogConfig(t *testing.T) {
	t.Parallel()
	_, err := dispatcher.NewNameCatalog(nil,
		map[string]map[string]string{"Cards": {"de": "Karten"}, "cards": {"fr": "cartes"}, "bad id": {"de": "x"}},
		map[string]map[string]string{"ch": {"xx": "Schweiz", "de": ""}})
	var ve *dispatcher.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("NewNameCatalog: %v, want a ValidationError", err)
	}
	var fields []string
	for _, f := range ve.Fields {
		fields = append(fields, f.Field)
	}
	want := []string{"catalog.services.bad id", "catalog.services.cards", "catalog.regions.ch.names.de", "catalog.regions.ch.names.xx"}
	if !slices.Equal(fields, want) {
		t.Errorf("fields %v, want %v (%v)", fields, want, err)
	}
	c := dispatcher.MustNameCatalog(nil, map[string]map[string]string{"TWINT": {"de": "TWINT"}}, nil)
	if got := c.Names().Service("twint", "de", []string{"de", "en"}); got != "TWINT" {
		t.Errorf("configured TWINT reads %q", got)
	}
}
