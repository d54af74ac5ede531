package dispatcher

import (
	"strings"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/locales"
)

// TestMaintenanceNoticeRendersTheWindow: a maintenance notice's
// {started} and {eta} are its window in the reader's zone and format.
func TestMaintenanceNoticeRendersTheWindow(t *testing.T) {
	t.Parallel()
	from := time.Date(2026, 12, 1, 21, 0, 0, 0, time.UTC)
	cat := locales.MustNew()
	m := &Maintainer{c: MaintainerConfig{Catalog: cat}}
	mt := &Maintenance{ID: "mnt_x", Title: PlainTitle("Upgrade"), Services: []string{"cards"}, Regions: []string{"DK"},
		ScheduledFor: from, ScheduledUntil: from.Add(2 * time.Hour)}
	n, err := m.notice(mt, MaintenanceNotice{Event: "reminder_1h0m0s", BroadcastID: MaintenanceBroadcastID(mt.ID, "reminder_1h0m0s")})
	if err != nil {
		t.Fatal(err)
	}
	b := &Broadcast{ID: MaintenanceBroadcastID(mt.ID, "reminder_1h0m0s"), Notice: n, CreatedAt: from.Add(-time.Hour)}
	inc, up := noticeContext(b)
	r := &CatalogRenderer{Catalog: cat, Clock: ClockFunc(func() time.Time { return from.Add(-time.Hour) })}
	for _, tt := range []struct{ locale, tz, want string }{
		{"en", "UTC", "Reminder: Planned maintenance of cards in Denmark from 9:00 PM to 11:00 PM."},
		{"de-CH", "Europe/Zurich", "Erinnerung: Geplante Wartung von cards in Dänemark von 22:00 bis 02.12.2026, 00:00."},
	} {
		out, err := r.Render(RenderRequest{Locale: tt.locale, Timezone: tt.tz, Kind: KindCustomer, Channel: ChannelEmail, Incident: inc, Update: up})
		if err != nil || !strings.Contains(out.Body, tt.want) || !strings.Contains(out.Title, "Upgrade") {
			t.Errorf("%s: %q / %q, %v; want %q", tt.locale, out.Title, out.Body, err, tt.want)
		}
	}
}
