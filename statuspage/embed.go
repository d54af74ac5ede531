package statuspage

import (
	"encoding/json"
)

// The embed document (/embed/status.json): what a widget on another site
// needs to show the page's state in the reader's language (?lang=,
// Accept-Language), served with CORS like the Statuspage JSON.

type embedPage struct {
	Name string `json:"name"`
	URL  string `json:"url"`
}

type embedStatus struct {
	// Indicator is Statuspage's: none, minor, major, critical,
	// maintenance.
	Indicator   string `json:"indicator"`
	Description string `json:"description"`
}

type embedIncident struct {
	ID        string `json:"id"`
	Title     string `json:"title"`
	Impact    string `json:"impact"`
	Status    string `json:"status"`
	URL       string `json:"url"`
	UpdatedAt string `json:"updated_at"`
}

type embedMaintenance struct {
	ID             string `json:"id"`
	Title          string `json:"title"`
	Status         string `json:"status"`
	URL            string `json:"url"`
	ScheduledFor   string `json:"scheduled_for"`
	ScheduledUntil string `json:"scheduled_until"`
}

type embedService struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Status string `json:"status"`
	// StatusText is Status in the reader's language.
	StatusText string `json:"status_text"`
	Badge      string `json:"badge"`
}

type embedDoc struct {
	Locale       string             `json:"locale"`
	Page         embedPage          `json:"page"`
	Status       embedStatus        `json:"status"`
	Incidents    []embedIncident    `json:"incidents"`
	Maintenances []embedMaintenance `json:"maintenances"`
	Services     []embedService     `json:"services"`
	UpdatedAt    string             `json:"updated_at"`
}

func embedRoute(c *Config) Route {
	return Route{
		Pattern: "GET /embed/status.json", ContentType: "application/json; charset=utf-8", CORS: true, Localized: true,
		Render: func(r *Request) ([]byte, error) { return json.Marshal(newEmbed(r, c)) },
	}
}

func newEmbed(r *Request, c *Config) embedDoc {
	s := r.Snap
	v := newV2(r)
	loc := readerLocale(r)
	roll := pageRollup(s)
	name := s.Page.Name
	if name == "" && c != nil {
		name = c.Name
	}
	d := embedDoc{
		Locale: loc, Page: embedPage{Name: name, URL: withLang(v.base+"/", r)},
		Status:    embedStatus{Indicator: roll.Indicator, Description: phrase("rollup."+roll.Key, loc)},
		Incidents: []embedIncident{}, Maintenances: []embedMaintenance{}, Services: []embedService{},
		UpdatedAt: v.time(lastChange(s)),
	}
	for _, in := range s.Incidents {
		if unresolved(in) {
			d.Incidents = append(d.Incidents, embedIncident{
				ID: in.ID, Title: titleText(in.Title, loc, s.Page.DefaultLocale), Impact: impact(in.Severity), Status: string(in.State),
				URL: withLang(incidentURL(v.base, in.ID), r), UpdatedAt: v.time(in.UpdatedAt),
			})
		}
	}
	for _, m := range s.Maintenances {
		if active(m) {
			d.Maintenances = append(d.Maintenances, embedMaintenance{
				ID: m.ID, Title: titleText(m.Title, loc, s.Page.DefaultLocale), Status: string(m.State),
				URL: withLang(maintenanceURL(v.base, m.ID), r), ScheduledFor: v.time(m.ScheduledFor), ScheduledUntil: v.time(m.ScheduledUntil),
			})
		}
	}
	for _, svc := range s.Services {
		d.Services = append(d.Services, embedService{
			ID: svc.ID, Name: pickTextOr(svc.Names, loc, s.Page.DefaultLocale, svc.ID), Status: string(svc.Status),
			StatusText: phrase(string(svc.Status), loc), Badge: withLang(v.base+"/badge/"+svc.ID+".svg", r),
		})
	}
	return d
}

// readerLocale is the locale a localized route renders in.
func readerLocale(r *Request) string {
	for _, l := range []string{r.Locale, r.Snap.Page.DefaultLocale} {
		if l != "" {
			return l
		}
	}
	return "en"
}
