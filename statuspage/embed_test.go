package statuspage

import (
	"encoding/json"
	"testing"
)

func TestEmbedIsLocalizedAndSmall(t *testing.T) {
	t.Parallel()
	s := feedServer(t, richSnapshot())
	for _, c := range []struct {
		opts                                 []getOpt
		path, locale, status, svc, svcStatus string
	}{
		{nil, "/embed/status.json", "de-CH", "Schwerer Systemausfall", "Kartenzahlungen", "schwerer Ausfall"},
		{nil, "/embed/status.json?lang=da", "da", "Større systemnedbrud", "Kortbetalinger", "større nedbrud"},
		{[]getOpt{acceptLanguage("fr-CH, en;q=0.5")}, "/embed/status.json", "fr", "Panne majeure du système", "Card payments", "panne majeure"},
	} {
		w := mustGet(t, s, c.path, "application/json", c.opts...)
		if w.Header().Get("Vary") != "Accept-Language" {
			t.Errorf("%s Vary = %q, want Accept-Language", c.path, w.Header().Get("Vary"))
		}
		var d embedDoc
		if err := json.Unmarshal(w.Body.Bytes(), &d); err != nil {
			t.Fatal(err)
		}
		if d.Locale != c.locale || d.Page.Name != "Acme status" || d.Status.Indicator != "critical" || d.Status.Description != c.status {
			t.Errorf("%s %s: locale %q page %+v status %+v", c.path, c.locale, d.Locale, d.Page, d.Status)
		}
		if len(d.Incidents) != 2 || d.Incidents[0].ID != "inc_open" || d.Incidents[0].Impact != "critical" ||
			d.Incidents[0].URL != "https://status.example.com/incidents/inc_open?lang="+c.locale || d.Incidents[0].UpdatedAt != "2026-12-06T09:50:00.000+01:00" {
			t.Errorf("%s incidents %+v, want the two open ones", c.locale, d.Incidents)
		}
		if len(d.Maintenances) != 1 || d.Maintenances[0].ID != "mnt_now" {
			t.Errorf("%s maintenances %+v, want the active one", c.locale, d.Maintenances)
		}
		if len(d.Services) != 3 || d.Services[0].Name != c.svc || d.Services[0].Status != "major_outage" || d.Services[0].StatusText != c.svcStatus {
			t.Errorf("%s services %+v", c.locale, d.Services)
		}
	}
	var d embedDoc
	if err := json.Unmarshal(mustGet(t, feedServer(t, emptySnapshot()), "/embed/status.json", "application/json").Body.Bytes(), &d); err != nil {
		t.Fatal(err)
	}
	if d.Status.Description != "All Systems Operational" || d.Incidents == nil || len(d.Incidents) != 0 || d.Services == nil {
		t.Errorf("empty page embed %+v, want operational and empty lists (not null)", d)
	}
}
