package main

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/internal/clocktest"
	"github.com/tocsin-dev/tocsin/internal/redistest"
)

// TestMaintenanceEndToEnd schedules a maintenance with the CLI on a
// running server whose clock the test moves: the workers' loop moves it to
// in_progress and completed at its window's times, and its notices
// (scheduled, the 1-hour reminder, started, completed) reach recipients of
// two languages through the outbox, in their language and zone, with the
// catalog's names.
func TestMaintenanceEndToEnd(t *testing.T) {
	_, opts := redistest.New(t)
	start := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	clock := clocktest.New(start)
	key := "test-operator-key-0123456789"
	env := map[string]string{
		"TOCSIN_HTTP_ADDR":        "127.0.0.1:0",
		"TOCSIN_REDIS_ADDR":       opts.Addr,
		"TOCSIN_REDIS_DB":         strconv.Itoa(opts.DB),
		"TOCSIN_API_KEY":          key,
		"TOCSIN_LOG_LEVEL":        "warn",
		"TOCSIN_CATALOG_SERVICES": `{"cards": {"names": {"de": "Kartenzahlungen", "da": "Kortbetalinger"}}}`,
	}
	a := startAppWith(t, env, func(m *Main) { m.Clock = clock })
	for _, r := range []struct{ id, locale, tz, region string }{
		{"kunde-zuerich", "de-CH", "Europe/Zurich", "CH"},
		{"kunde-aarhus", "da-DK", "Europe/Copenhagen", "DK"},
		{"kunde-oslo", "da-DK", "Europe/Oslo", "NO"}, // not in the maintenance's regions
	} {
		a.mustDo("PUT", "/v1/recipients/"+r.id, map[string]any{
			"kind": "customer", "locale": r.locale, "timezone": r.tz, "phone": "+41791234567",
			"services": []string{"cards"}, "regions": []string{r.region}, "channels": []string{"sms"},
		}, nil, 200)
	}

	// Scheduled 3 hours ahead, for 2 hours: the 24-hour reminder does not
	// apply, the 1-hour one does.
	cli := map[string]string{"TOCSIN_SERVER": a.base, "TOCSIN_API_KEY": key}
	code, stdout, stderr := runMain(context.Background(), cli, "maintenance", "schedule", "--json",
		"--title", "Card network upgrade", "--service", "cards", "--region", "CH,DK",
		"--from", "2026-12-01T13:00:00+01:00", "--until", "2026-12-01T15:00:00+01:00", "--idempotency-key", "e2e-mnt-1")
	if code != 0 {
		t.Fatalf("maintenance schedule: exit %d\n%s%s", code, stdout, stderr)
	}
	var m dispatcher.Maintenance
	if err := json.Unmarshal([]byte(stdout), &m); err != nil {
		t.Fatalf("decode %q: %v", stdout, err)
	}
	if m.State != dispatcher.MaintenanceScheduled || !m.ScheduledFor.Equal(start.Add(3*time.Hour)) {
		t.Fatalf("scheduled: %+v", m)
	}

	get := func() *dispatcher.Maintenance {
		var got dispatcher.Maintenance
		a.mustDo("GET", "/v1/maintenances/"+m.ID, nil, &got, 200)
		return &got
	}
	// waitFor moves the clock on by d, then nudges it a tick at a time
	// until the maintenance is as wanted: the loop wakes when the clock
	// passes its next tick.
	waitFor := func(d time.Duration, what string, want func(*dispatcher.Maintenance) bool) *dispatcher.Maintenance {
		t.Helper()
		clock.Advance(d)
		deadline := time.Now().Add(20 * time.Second)
		for {
			got := get()
			if want(got) {
				return got
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not after 20s: %+v", what, got)
			}
			clock.Advance(dispatcher.MaintenanceTickInterval)
			time.Sleep(10 * time.Millisecond)
		}
	}
	sent := func(event string) func(*dispatcher.Maintenance) bool {
		return func(got *dispatcher.Maintenance) bool {
			return slices.ContainsFunc(got.Notices, func(n dispatcher.MaintenanceNotice) bool { return n.Event == event && n.Sent })
		}
	}
	waitFor(0, "the scheduling notice", sent("scheduled"))
	waitFor(2*time.Hour, "the 1-hour reminder", sent("reminder_1h0m0s"))
	got := waitFor(time.Hour, "the start", func(got *dispatcher.Maintenance) bool {
		return got.State == dispatcher.MaintenanceInProgress && sent("started")(got)
	})
	if got.StartedAt == nil || !got.StartedAt.Equal(m.ScheduledFor) {
		t.Errorf("started at %v, want the window's start %v", got.StartedAt, m.ScheduledFor)
	}
	// During the window, what an operator sends about the covered
	// services goes out as always: an incident they open, a notice.
	var opened dispatcher.UpdateResult
	a.mustDo("POST", "/v1/incidents", map[string]any{"title": "Card payments failing", "severity": "major",
		"services": []string{"cards"}, "regions": []string{"CH"}}, &opened, 201)
	if b := a.waitDone(opened.BroadcastID); b.Audience != 1 || b.Counts[dispatcher.ChannelSMS][dispatcher.StatusDelivered] != 1 {
		t.Errorf("an incident opened during the window: audience %d, counts %v; want it sent to the one recipient in CH", b.Audience, b.Counts)
	}
	var notice dispatcher.Broadcast
	a.mustDo("POST", "/v1/broadcasts", map[string]any{"title": "Terminals", "message": map[string]string{"en": "Restart your terminal."},
		"services": []string{"cards"}, "regions": []string{"DK"}}, &notice, 201)
	if b := a.waitDone(notice.ID); b.Counts[dispatcher.ChannelSMS][dispatcher.StatusDelivered] != 1 {
		t.Errorf("a notice during the window: counts %v, want it sent", b.Counts)
	}
	got = waitFor(2*time.Hour, "the end", func(got *dispatcher.Maintenance) bool {
		return got.State == dispatcher.MaintenanceCompleted && sent("completed")(got)
	})
	if len(got.Notices) != 4 || slices.ContainsFunc(got.Notices, func(n dispatcher.MaintenanceNotice) bool { return n.Event == "reminder_24h0m0s" }) {
		t.Errorf("notices %+v, want scheduled, the 1-hour reminder, started, completed", got.Notices)
	}
	for _, n := range got.Notices {
		if b := a.waitDone(n.BroadcastID); b.Audience != 2 {
			t.Errorf("notice %s reached %d recipients, want 2 (CH and DK)", n.Event, b.Audience)
		}
	}

	// Each in its own language and zone: 13:00 in Zurich, 13:00 in Aarhus
	// (both UTC+1 in December), and the catalog's names.
	wants := map[string][]string{
		"kunde-zuerich": {
			"Geplante Wartung von Kartenzahlungen in Schweiz und Dänemark von 13:00 bis 15:00.",
			"Erinnerung: Geplante Wartung von Kartenzahlungen",
			"Die geplante Wartung von Kartenzahlungen in Schweiz und Dänemark hat begonnen. Sie endet voraussichtlich 15:00.",
			"Die geplante Wartung von Kartenzahlungen in Schweiz und Dänemark ist abgeschlossen.",
		},
		"kunde-aarhus": {
			"Planlagt vedligeholdelse af Kortbetalinger i Schweiz og Danmark fra 13.00 til 15.00.",
			"Påmindelse: Planlagt vedligeholdelse af Kortbetalinger",
			"Den planlagte vedligeholdelse af Kortbetalinger i Schweiz og Danmark er gået i gang.",
			"Den planlagte vedligeholdelse af Kortbetalinger i Schweiz og Danmark er afsluttet.",
		},
	}
	for id, want := range wants {
		msgs := slices.DeleteFunc(a.outbox(id), func(e dispatcher.OutboxEntry) bool {
			return e.BroadcastID == opened.BroadcastID || e.BroadcastID == notice.ID
		})
		if len(msgs) != len(want) {
			t.Fatalf("%s got %d messages, want %d: %+v", id, len(msgs), len(want), msgs)
		}
		// The four broadcasts drain concurrently: their order in the
		// outbox is not the test's to fix. Each text starts one message.
		for _, w := range want {
			n := 0
			for _, msg := range msgs {
				if msg.State == string(dispatcher.StateNotice) && strings.HasPrefix(msg.Body, w) {
					n++
				}
			}
			if n != 1 {
				t.Errorf("%s: %d notices start %q, want 1: %+v", id, n, w, msgs)
			}
		}
	}
	if msgs := a.outbox("kunde-oslo"); len(msgs) != 0 {
		t.Errorf("a recipient outside the regions got %d messages", len(msgs))
	}

	// The CLI shows it as done; nothing follows completed.
	code, stdout, _ = runMain(context.Background(), cli, "maintenance", "show", m.ID)
	if code != 0 || !strings.Contains(stdout, "completed") || !strings.Contains(stdout, "reminder_1h0m0s") {
		t.Errorf("maintenance show: exit %d\n%s", code, stdout)
	}
	if code, _, stderr := runMain(context.Background(), cli, "maintenance", "cancel", m.ID); code != 1 || !strings.Contains(stderr, "completed") {
		t.Errorf("cancel after completed: exit %d, %s", code, stderr)
	}
}
