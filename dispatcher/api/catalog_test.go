package api

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/text/language"
	"golang.org/x/text/language/display"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// cldr is x/text's CLDR name of an ISO region code in a language.
func cldr(code, lang string) string {
	return display.Regions(language.MustParse(lang)).Name(language.MustParseRegion(code))
}

func decodeEntry(t *testing.T, r *response) *dispatcher.CatalogEntry {
	t.Helper()
	var e dispatcher.CatalogEntry
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
	return &e
}

// TestCatalogRoutes: the catalog is read by viewers and written by
// operators; ids match case-insensitively; stored names override the
// configured ones locale by locale and DELETE brings those back; ISO
// region codes have CLDR's names.
func TestCatalogRoutes(t *testing.T) {
	t.Parallel()
	a := mustRealAPIWithNames(t,
		map[string]map[string]string{"Cards": {"de": "Kartenzahlungen", "en": "card payments"}},
		map[string]map[string]string{"zurich": {"de": "Zürich"}})

	r := a.do(t, "GET", "/v1/catalog", viewerToken, nil)
	wantStatus(t, r, http.StatusOK)
	var view dispatcher.CatalogView
	if err := json.Unmarshal(r.body, &view); err != nil {
		t.Fatal(err)
	}
	if len(view.Services) != 1 || view.Services[0].ID != "cards" || view.Services[0].Sources["de"] != "config" ||
		len(view.Regions) != 1 || view.Regions[0].ID != "zurich" {
		t.Fatalf("GET /v1/catalog = %s", r.body)
	}

	// A viewer may not write.
	wantStatus(t, a.do(t, "PUT", "/v1/catalog/services/cards", viewerToken, strings.NewReader(`{"names":{"fr":"x"}}`)), http.StatusForbidden)

	r = a.send(t, "PUT", "/v1/catalog/services/CARDS", `{"names":{"fr":"paiements par carte","de-ch":"Kartenzahlung","en":" card payments (API) "}}`)
	wantStatus(t, r, http.StatusOK)
	e := decodeEntry(t, r)
	want := &dispatcher.CatalogEntry{ID: "cards",
		Names:   map[string]string{"de": "Kartenzahlungen", "de-CH": "Kartenzahlung", "fr": "paiements par carte", "en": "card payments (API)"},
		Sources: map[string]string{"de": "config", "de-CH": "api", "fr": "api", "en": "api"}}
	if !reflect.DeepEqual(e, want) {
		t.Errorf("PUT answered %+v, want %+v", e, want)
	}
	r = a.do(t, "GET", "/v1/catalog/services/Cards", viewerToken, nil)
	wantStatus(t, r, http.StatusOK)
	if got := decodeEntry(t, r); !reflect.DeepEqual(got, want) {
		t.Errorf("GET answered %+v, want %+v", got, want)
	}

	// Regions: an ISO code has CLDR's names in every language, under the
	// stored ones.
	r = a.send(t, "PUT", "/v1/catalog/regions/dk", `{"names":{"da":"hele Danmark"}}`)
	wantStatus(t, r, http.StatusOK)
	e = decodeEntry(t, r)
	if e.ID != "DK" || e.Names["da"] != "hele Danmark" || e.Sources["da"] != "api" ||
		e.Names["de"] != cldr("DK", "de") || e.Sources["de"] != "cldr" || e.Names["it"] != cldr("DK", "it") {
		t.Errorf("PUT region dk answered %s", r.body)
	}
	r = a.do(t, "GET", "/v1/catalog/regions/ch", viewerToken, nil)
	wantStatus(t, r, http.StatusOK)
	e = decodeEntry(t, r)
	for _, lang := range []string{"en", "da", "de", "es", "fr", "it"} {
		if e.Names[lang] != cldr("CH", lang) || e.Sources[lang] != "cldr" {
			t.Errorf("region CH in %s: %q (%s), want CLDR's %q", lang, e.Names[lang], e.Sources[lang], cldr("CH", lang))
		}
	}

	// 404s: no name anywhere; nothing stored to delete.
	for _, path := range []string{"/v1/catalog/services/twint", "/v1/catalog/regions/eu-west", "/v1/catalog/regions/ZZ"} {
		r := a.do(t, "GET", path, viewerToken, nil)
		wantStatus(t, r, http.StatusNotFound)
		if p := r.problem(t); p.Code != CodeNotFound {
			t.Errorf("GET %s: code %q", path, p.Code)
		}
	}
	wantStatus(t, a.send(t, "DELETE", "/v1/catalog/services/twint", ""), http.StatusNotFound)
	wantStatus(t, a.send(t, "DELETE", "/v1/catalog/regions/zurich", ""), http.StatusNotFound) // configured only

	// DELETE removes what the API stored; the configuration's names stay.
	wantStatus(t, a.send(t, "DELETE", "/v1/catalog/services/Cards", ""), http.StatusNoContent)
	wantStatus(t, a.send(t, "DELETE", "/v1/catalog/services/cards", ""), http.StatusNotFound)
	r = a.do(t, "GET", "/v1/catalog/services/cards", viewerToken, nil)
	wantStatus(t, r, http.StatusOK)
	want = &dispatcher.CatalogEntry{ID: "cards", Names: map[string]string{"de": "Kartenzahlungen", "en": "card payments"},
		Sources: map[string]string{"de": "config", "en": "config"}}
	if got := decodeEntry(t, r); !reflect.DeepEqual(got, want) {
		t.Errorf("after DELETE: %+v, want %+v", got, want)
	}
}

// TestCatalogRefusesBadInput: every bad id or name is a 422 naming it, and
// nothing is stored.
func TestCatalogRefusesBadInput(t *testing.T) {
	t.Parallel()
	a := mustRealAPI(t)
	tests := []struct {
		name, path, body, location, msg string
	}{
		{"unknown language", "/v1/catalog/services/cards", `{"names":{"pt":"pagamentos"}}`, "body.names.pt", "no messages are written in this language"},
		{"not a tag", "/v1/catalog/services/cards", `{"names":{"german":"Karten"}}`, "body.names.german", "BCP 47"},
		{"no language", "/v1/catalog/services/cards", `{"names":{"und-CH":"Karten"}}`, "body.names.und-CH", "BCP 47"},
		{"empty name", "/v1/catalog/services/cards", `{"names":{"de":"  "}}`, "body.names.de", "1-100 characters"},
		{"too long", "/v1/catalog/services/cards", `{"names":{"de":"` + strings.Repeat("ä", 101) + `"}}`, "body.names.de", "1-100 characters"},
		{"two lines", "/v1/catalog/services/cards", `{"names":{"de":"Karten\nzahlungen"}}`, "body.names.de", "one line"},
		{"a line separator", "/v1/catalog/services/cards", `{"names":{"de":"Karten\u2028zahlungen"}}`, "body.names.de", "one line"},
		{"a paragraph separator", "/v1/catalog/regions/ch", `{"names":{"de":"Schwei\u2029z"}}`, "body.names.de", "one line"},
		{"same locale twice", "/v1/catalog/services/cards", `{"names":{"de-CH":"a","de-ch":"b"}}`, "body.names.de-ch", "same locale"},
		{"no names", "/v1/catalog/services/cards", `{"names":{}}`, "body.names", "at least one name"},
		{"bad id", "/v1/catalog/services/card%20payments", `{"names":{"de":"Karten"}}`, "path.id", "1-64 characters"},
		{"id too long", "/v1/catalog/regions/" + strings.Repeat("r", 65), `{"names":{"de":"Region"}}`, "path.id", "1-64 characters"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantProblem(t, a.send(t, "PUT", tc.path, tc.body), http.StatusUnprocessableEntity, CodeInvalidInput, tc.location, tc.msg)
		})
	}
	wantProblem(t, a.do(t, "GET", "/v1/catalog/services/a%20b", viewerToken, nil), http.StatusUnprocessableEntity, CodeInvalidInput, "path.id", "1-64 characters")
	wantProblem(t, a.send(t, "DELETE", "/v1/catalog/regions/a%20b", ""), http.StatusUnprocessableEntity, CodeInvalidInput, "path.id", "1-64 characters")
	r := a.do(t, "GET", "/v1/catalog", viewerToken, nil)
	wantStatus(t, r, http.StatusOK)
	if got := strings.TrimSpace(string(r.body)); got != `{"services":[],"regions":[]}` {
		t.Errorf("after refused writes the catalog is %s", got)
	}
}

// TestPreviewShowsNames: labels given in any case select the same
// recipients, and the preview reads the catalog's names in each
// recipient's language.
func TestPreviewShowsNames(t *testing.T) {
	t.Parallel()
	a := mustRealAPI(t)
	wantStatus(t, a.send(t, "PUT", "/v1/catalog/services/cards", `{"names":{"de":"Kartenzahlungen","fr":"paiements par carte"}}`), http.StatusOK)
	wantStatus(t, a.send(t, "PUT", "/v1/recipients/anna", `{"locale":"de-CH","email":"anna@example.ch","services":["Cards"],"regions":["CH"]}`), http.StatusOK)
	wantStatus(t, a.send(t, "PUT", "/v1/recipients/luc", `{"locale":"fr-CH","email":"luc@example.ch","services":["cards"],"regions":["ch"]}`), http.StatusOK)
	wantStatus(t, a.send(t, "PUT", "/v1/recipients/dane", `{"locale":"da","email":"d@example.dk","services":["cards"],"regions":["DK"]}`), http.StatusOK)

	r := a.do(t, "POST", "/v1/recipients/import", operatorToken, strings.NewReader(`{"id":"ida","locale":"it-CH","email":"i@example.ch","services":["CaRdS"],"regions":["cH"]}`+"\n"),
		"Content-Type", "application/x-ndjson")
	wantStatus(t, r, http.StatusOK)
	r = a.do(t, "GET", "/v1/recipients/ida", viewerToken, nil)
	if !strings.Contains(string(r.body), `"services":["cards"],"regions":["CH"]`) {
		t.Errorf("imported ida is stored as %s", r.body)
	}
	r = a.do(t, "GET", "/v1/recipients/anna", viewerToken, nil)
	var rec dispatcher.Recipient
	if err := json.Unmarshal(r.body, &rec); err != nil || rec.Services[0] != "cards" || rec.Regions[0] != "CH" {
		t.Fatalf("anna is stored as %s", r.body)
	}
	r = a.send(t, "POST", "/v1/broadcasts/preview", `{"title":"Karten","severity":"major","services":["CARDS"],"regions":["ch"]}`)
	wantStatus(t, r, http.StatusOK)
	var p dispatcher.BroadcastPreview
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatal(err)
	}
	if p.Audience != 3 {
		t.Errorf("audience = %d, want 3 (anna, luc, ida): %s", p.Audience, r.body)
	}
	wants := map[string]string{"de-CH": "Störung bei Kartenzahlungen (" + cldr("CH", "de") + ")", "fr-CH": "paiements par carte (" + cldr("CH", "fr") + ")",
		"it-CH": "cards (" + cldr("CH", "it") + ")"}
	for _, s := range p.Samples {
		if !strings.Contains(s.Body, wants[s.Locale]) {
			t.Errorf("%s sample lacks %q:\n%s", s.Locale, wants[s.Locale], s.Body)
		}
		delete(wants, s.Locale)
	}
	if len(wants) > 0 {
		t.Errorf("no samples for %v", wants)
	}
	// The recipient list's filters match case-insensitively too.
	r = a.do(t, "GET", "/v1/recipients?region=ch&service=CARDS", viewerToken, nil)
	wantStatus(t, r, http.StatusOK)
	var page dispatcher.RecipientPage
	if err := json.Unmarshal(r.body, &page); err != nil || len(page.Recipients) != 3 {
		t.Errorf("GET /v1/recipients?region=ch: %s", r.body)
	}
}
