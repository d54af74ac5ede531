package redisstore

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// listAll follows the cursors of a listing to its end and returns the ids
// in the order shown and the number of pages. It fails the test when a
// page is longer than the limit.
func listAll(t *testing.T, s *Store, f dispatcher.RecipientFilter) (ids []string, pages int) {
	t.Helper()
	ctx := context.Background()
	if err := f.Normalize(); err != nil {
		t.Fatalf("filter %+v: %v", f, err)
	}
	for {
		page, err := s.ListRecipients(ctx, f)
		if err != nil {
			t.Fatalf("ListRecipients(%+v): %v", f, err)
		}
		pages++
		if len(page.Recipients) > f.Limit {
			t.Fatalf("page %d holds %d recipients, limit %d", pages, len(page.Recipients), f.Limit)
		}
		for _, r := range page.Recipients {
			ids = append(ids, r.ID)
		}
		if page.NextCursor == "" {
			return ids, pages
		}
		if pages > 10000 {
			t.Fatalf("still paging after %d pages", pages)
		}
		f.Cursor = page.NextCursor
	}
}

// onceEach fails unless ids holds each of want exactly once, and nothing
// else.
func onceEach(t *testing.T, what string, ids, want []string) {
	t.Helper()
	seen := map[string]int{}
	for _, id := range ids {
		seen[id]++
	}
	var twice []string
	for id, n := range seen {
		if n > 1 {
			twice = append(twice, id)
		}
	}
	if len(twice) > 0 {
		slices.Sort(twice)
		t.Errorf("%s: shown more than once: %v", what, twice)
	}
	got := slices.Sorted(func(yield func(string) bool) {
		for id := range seen {
			if !yield(id) {
				return
			}
		}
	})
	want = slices.Sorted(slices.Values(want))
	if !slices.Equal(got, want) {
		t.Errorf("%s:\ngot  %v\nwant %v", what, got, want)
	}
}

func TestListRecipientsFilters(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		rec := func(id string, kind dispatcher.Kind, locale string, services, regions []string, mod func(*dispatcher.Recipient)) *dispatcher.Recipient {
			r := &dispatcher.Recipient{ID: id, Kind: kind, Locale: locale, Services: services, Regions: regions}
			if mod != nil {
				mod(r)
			}
			if err := r.Normalize(""); err != nil {
				t.Fatal(err)
			}
			return r
		}
		phone := func(r *dispatcher.Recipient) { r.Phone = "+41791234567" }
		email := func(r *dispatcher.Recipient) { r.Email = "ops@example.com" }
		push := func(r *dispatcher.Recipient) {
			r.Push = []dispatcher.PushToken{{Platform: dispatcher.PlatformFCM, Token: "tok"}}
		}
		mustPutRecipients(t, s,
			rec("c-pay-ch", dispatcher.KindCustomer, "de-CH", []string{"pay"}, []string{"CH"}, phone),
			rec("c-pay-atm", dispatcher.KindCustomer, "fr-CH", []string{"pay", "atm"}, nil, email),
			rec("c-atm-dk", dispatcher.KindCustomer, "da", []string{"atm"}, []string{"DK"}, push),
			rec("c-all", dispatcher.KindCustomer, "de-ch", nil, nil, phone), // no services, no regions: everywhere
			rec("m-pay-ch", dispatcher.KindMerchant, "de-CH", []string{"pay"}, []string{"CH", "LI"}, nil),
			rec("m-all-dk", dispatcher.KindMerchant, "en", nil, []string{"DK"}, email),
		)
		if err := s.PutWebhookEndpoint(ctx, &dispatcher.WebhookEndpoint{ID: "main", RecipientID: "m-pay-ch", URL: "https://shop.example/hooks"}); err != nil {
			t.Fatal(err)
		}
		everyone := []string{"c-pay-ch", "c-pay-atm", "c-atm-dk", "c-all", "m-pay-ch", "m-all-dk"}
		for _, tc := range []struct {
			name string
			f    dispatcher.RecipientFilter
			want []string
		}{
			{"none", dispatcher.RecipientFilter{}, everyone},
			{"service, with those that listed none", dispatcher.RecipientFilter{Service: "pay"}, []string{"c-pay-ch", "c-pay-atm", "c-all", "m-pay-ch", "m-all-dk"}},
			{"service nobody named", dispatcher.RecipientFilter{Service: "cards"}, []string{"c-all", "m-all-dk"}},
			{"region, with those that listed none", dispatcher.RecipientFilter{Region: "DK"}, []string{"c-pay-atm", "c-atm-dk", "c-all", "m-all-dk"}},
			{"service and region", dispatcher.RecipientFilter{Service: "pay", Region: "CH"}, []string{"c-pay-ch", "c-pay-atm", "c-all", "m-pay-ch"}},
			{"service and region, none listed", dispatcher.RecipientFilter{Service: "cards", Region: "SE"}, []string{"c-all"}},
			{"kind", dispatcher.RecipientFilter{Kind: dispatcher.KindMerchant}, []string{"m-pay-ch", "m-all-dk"}},
			{"locale, canonicalized", dispatcher.RecipientFilter{Locale: "DE-ch"}, []string{"c-pay-ch", "c-all", "m-pay-ch"}},
			{"locale, exact", dispatcher.RecipientFilter{Locale: "de"}, nil},
			{"sms", dispatcher.RecipientFilter{Channel: dispatcher.ChannelSMS}, []string{"c-pay-ch", "c-all"}},
			{"email", dispatcher.RecipientFilter{Channel: dispatcher.ChannelEmail}, []string{"c-pay-atm", "m-all-dk"}},
			{"push", dispatcher.RecipientFilter{Channel: dispatcher.ChannelPush}, []string{"c-atm-dk"}},
			{"webhook", dispatcher.RecipientFilter{Channel: dispatcher.ChannelWebhook}, []string{"m-pay-ch"}},
			{"all at once", dispatcher.RecipientFilter{Service: "atm", Region: "CH", Kind: dispatcher.KindCustomer, Locale: "de-CH", Channel: dispatcher.ChannelSMS}, []string{"c-all"}},
		} {
			for _, limit := range []int{1, 2, 100} {
				f := tc.f
				f.Limit = limit
				ids, _ := listAll(t, s, f)
				onceEach(t, fmt.Sprintf("%s, limit %d", tc.name, limit), ids, tc.want)
			}
		}

		// Shown as stored: the whole record.
		page, err := s.ListRecipients(ctx, dispatcher.RecipientFilter{Channel: dispatcher.ChannelPush, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		want, err := s.GetRecipient(ctx, "c-atm-dk")
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Recipients) != 1 {
			t.Fatalf("push page = %d recipients, want 1", len(page.Recipients))
		}
		sameJSON(t, page.Recipients[0], want)

		// Deleted recipients are gone from every listing.
		if err := s.DeleteRecipient(ctx, "c-all"); err != nil {
			t.Fatal(err)
		}
		ids, _ := listAll(t, s, dispatcher.RecipientFilter{Service: "cards", Region: "SE", Limit: 10})
		onceEach(t, "after a delete", ids, nil)
	})
}

// TestListRecipientsPages pages through more recipients than one SSCAN
// step returns, with pages smaller and larger than a step: on a set that
// does not change, every recipient is shown exactly once.
func TestListRecipientsPages(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		const n = 700
		rs := make([]*dispatcher.Recipient, n)
		var all, pay, dk, payDK []string
		for i := range rs {
			var svcs, regs []string
			if i%4 != 0 { // a quarter listed no service: they use "pay" too
				svcs = []string{fmt.Sprintf("s%d", i%3)}
				if i%3 == 0 {
					svcs = append(svcs, "pay")
				}
			}
			if i%5 != 0 {
				regs = []string{[]string{"CH", "DK"}[i%2]}
			}
			rs[i] = testRecipient(fmt.Sprintf("r-%04d", i), svcs, regs)
			all = append(all, rs[i].ID)
			usesPay := len(svcs) == 0 || slices.Contains(svcs, "pay")
			inDK := len(regs) == 0 || regs[0] == "DK"
			if usesPay {
				pay = append(pay, rs[i].ID)
			}
			if inDK {
				dk = append(dk, rs[i].ID)
			}
			if usesPay && inDK {
				payDK = append(payDK, rs[i].ID)
			}
		}
		mustPutRecipients(t, s, rs...)
		for _, tc := range []struct {
			name string
			f    dispatcher.RecipientFilter
			want []string
		}{
			{"all", dispatcher.RecipientFilter{}, all},
			{"service", dispatcher.RecipientFilter{Service: "pay"}, pay},
			{"region", dispatcher.RecipientFilter{Region: "DK"}, dk},
			{"both", dispatcher.RecipientFilter{Service: "pay", Region: "DK"}, payDK},
		} {
			for _, limit := range []int{7, 40, 250, 1000} {
				f := tc.f
				f.Limit = limit
				ids, pages := listAll(t, s, f)
				what := fmt.Sprintf("%s, limit %d", tc.name, limit)
				onceEach(t, what, ids, tc.want)
				if min := (len(tc.want) + limit - 1) / limit; pages < min {
					t.Errorf("%s: %d pages, want at least %d", what, pages, min)
				}
			}
		}
	})
}

// TestListRecipientsStaleIndex: an index entry that points at no record,
// or at a record that belongs in another set, and a record that is not
// JSON, show nobody twice and break nothing.
func TestListRecipientsStaleIndex(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		mustPutRecipients(t, s, testRecipient("a", []string{"pay"}, nil), testRecipient("b", nil, nil))
		rdb.SAdd(ctx, rkey("a", "ix", "svc", "*"), "a")   // a lists pay: it belongs in ix:svc:pay only
		rdb.SAdd(ctx, rkey("b", "ix", "svc", "pay"), "b") // b lists none
		for _, id := range []string{"ghost", "x"} {       // no record, and one that is not JSON
			rdb.SAdd(ctx, rkey(id, "ix", "svc", "pay"), id)
		}
		rdb.HSet(ctx, recordKey("x"), "x", "{not json")
		for _, f := range []dispatcher.RecipientFilter{{Limit: 1}, {Limit: 10}, {Service: "pay", Limit: 1}, {Service: "pay", Limit: 10}} {
			ids, _ := listAll(t, s, f)
			onceEach(t, fmt.Sprintf("%+v", f), ids, []string{"a", "b"})
		}
	})
}

// TestListRecipientsPicksTheSmallerIndex: with a service and a region,
// the first page walks whichever pair of sets is smaller, and the cursor
// keeps walking it.
func TestListRecipientsPicksTheSmallerIndex(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		var rs []*dispatcher.Recipient
		for i := range 30 {
			svcs, regs := []string{"pay"}, []string{"CH"}
			if i < 3 {
				regs = []string{"LI"}
			}
			if i >= 3 && i < 6 {
				svcs = []string{"atm"}
			}
			rs = append(rs, testRecipient(fmt.Sprintf("r-%02d", i), svcs, regs))
		}
		mustPutRecipients(t, s, rs...)
		setOf := func(f dispatcher.RecipientFilter) byte {
			t.Helper()
			page, err := s.ListRecipients(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			if page.NextCursor == "" {
				t.Fatalf("%+v: no next cursor", f)
			}
			raw, err := base64.RawURLEncoding.DecodeString(page.NextCursor)
			if err != nil {
				t.Fatal(err)
			}
			return raw[0]
		}
		if got := setOf(dispatcher.RecipientFilter{Service: "pay", Region: "LI", Limit: 1}); got != 'r' && got != 'R' {
			t.Errorf("pay in LI walks %q, want the region's sets", got)
		}
		if got := setOf(dispatcher.RecipientFilter{Service: "atm", Region: "CH", Limit: 1}); got != 's' && got != 'S' {
			t.Errorf("atm in CH walks %q, want the service's sets", got)
		}
		ids, _ := listAll(t, s, dispatcher.RecipientFilter{Service: "pay", Region: "LI", Limit: 1})
		onceEach(t, "pay in LI", ids, []string{"r-00", "r-01", "r-02"})
		ids, _ = listAll(t, s, dispatcher.RecipientFilter{Service: "atm", Region: "CH", Limit: 1})
		onceEach(t, "atm in CH", ids, []string{"r-03", "r-04", "r-05"})
	})
}

func TestListRecipientsBadCursors(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		var rs []*dispatcher.Recipient
		for i := range 20 {
			rs = append(rs, testRecipient(fmt.Sprintf("r-%02d", i), []string{"pay"}, []string{"CH"}))
		}
		mustPutRecipients(t, s, rs...)
		first, err := s.ListRecipients(ctx, dispatcher.RecipientFilter{Service: "pay", Limit: 3})
		if err != nil || first.NextCursor == "" {
			t.Fatalf("first page: %v, cursor %q", err, first.NextCursor)
		}
		enc := func(raw string) string { return base64.RawURLEncoding.EncodeToString([]byte(raw)) }
		for _, tc := range []struct {
			name, cursor, msg string
			f                 dispatcher.RecipientFilter
		}{
			{"not base64", "!!", "next_cursor", dispatcher.RecipientFilter{}},
			{"padded", first.NextCursor + "=", "next_cursor", dispatcher.RecipientFilter{Service: "pay"}},
			{"no fields", enc("a"), "next_cursor", dispatcher.RecipientFilter{}},
			{"unknown set", enc("x.0."), "next_cursor", dispatcher.RecipientFilter{}},
			{"set without hash", enc("s.0."), "next_cursor", dispatcher.RecipientFilter{Service: "pay"}},
			{"position not a number", enc("a.x."), "next_cursor", dispatcher.RecipientFilter{}},
			{"no shard", enc("a.0."), "next_cursor", dispatcher.RecipientFilter{}},
			{"shard out of range", enc("a.16-0."), "next_cursor", dispatcher.RecipientFilter{}},
			{"shard negative", enc("a.-1-0."), "next_cursor", dispatcher.RecipientFilter{}},
			{"shard not a number", enc("a.x-0."), "next_cursor", dispatcher.RecipientFilter{}},
			{"negative position", enc("a.-1."), "next_cursor", dispatcher.RecipientFilter{}},
			{"position over int64", enc("a.9223372036854775808."), "next_cursor", dispatcher.RecipientFilter{}},
			{"position over uint64", enc("a.99999999999999999999."), "next_cursor", dispatcher.RecipientFilter{}},
			{"after not an id", enc("a.0.*"), "next_cursor", dispatcher.RecipientFilter{}},
			{"pending not an id", enc("a.0.,r-01,*"), "next_cursor", dispatcher.RecipientFilter{}},
			{"pending empty", enc("a.0.,"), "next_cursor", dispatcher.RecipientFilter{}},
			{"pending too long", enc("a.0.," + strings.Repeat("r-01,", 1000) + "r-01"), "next_cursor", dispatcher.RecipientFilter{}},
			{"done without pending", enc("a.x."), "next_cursor", dispatcher.RecipientFilter{}},
			{"another service", first.NextCursor, "another service", dispatcher.RecipientFilter{Service: "atm"}},
			{"no service", first.NextCursor, "another service", dispatcher.RecipientFilter{Region: "CH"}},
		} {
			f := tc.f
			f.Cursor, f.Limit = tc.cursor, 3
			_, err := s.ListRecipients(ctx, f)
			var ve *dispatcher.ValidationError
			if !errors.As(err, &ve) || len(ve.Fields) != 1 || ve.Fields[0].Field != "query.cursor" || !strings.Contains(ve.Fields[0].Message, tc.msg) {
				t.Errorf("%s: %v, want a field error at query.cursor saying %q", tc.name, err, tc.msg)
			}
		}
		// A well-formed position the set never had is no error.
		for _, c := range []string{enc("a.0-123456789."), enc("a.0-0.zzz"), enc("a.15-0.")} {
			page, err := s.ListRecipients(ctx, dispatcher.RecipientFilter{Cursor: c, Limit: 3})
			if err != nil {
				t.Errorf("cursor %q: %v", c, err)
			} else if len(page.Recipients) > 3 {
				t.Errorf("cursor %q: %d recipients", c, len(page.Recipients))
			}
		}
	})
}

// TestListRecipientsSetShrinks: on Redis, a recipient that stays as it is
// while most of the others are deleted is listed, whatever page size. The
// deletes make Redis shrink the index's hash table, which merges the
// buckets of an SSCAN step with those that follow it; a page that ended
// in the middle of a step used to be resumed by reading the step again
// and skipping the ids up to the last one shown, which skipped the
// merged-in ones.
func TestListRecipientsSetShrinks(t *testing.T) {
	t.Parallel()
	rdb, _ := newRedis(t)
	s := New(rdb)
	ctx := context.Background()
	const n = 2000
	var rs []*dispatcher.Recipient
	var kept []string
	for i := range n {
		id := fmt.Sprintf("r-%04d", i)
		rs = append(rs, testRecipient(id, []string{"pay"}, nil))
		if i%50 == 0 {
			kept = append(kept, id)
		}
	}
	for i := 0; i < n; i += 500 {
		mustPutRecipients(t, s, rs[i:i+500]...)
	}
	for _, limit := range []int{3, 7, 40} {
		f := dispatcher.RecipientFilter{Limit: limit}
		if err := f.Normalize(); err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		page, err := s.ListRecipients(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page.Recipients {
			seen[r.ID] = true
		}
		// Delete all but the kept ones (the table shrinks below 10% full),
		// then page on to the end.
		for i, r := range rs {
			if i%50 != 0 {
				if err := s.DeleteRecipient(ctx, r.ID); err != nil && !errors.Is(err, dispatcher.ErrNotFound) {
					t.Fatal(err)
				}
			}
		}
		for pages := 0; page.NextCursor != ""; pages++ {
			if pages > 10000 {
				t.Fatal("still paging")
			}
			f.Cursor = page.NextCursor
			if page, err = s.ListRecipients(ctx, f); err != nil {
				t.Fatal(err)
			}
			for _, r := range page.Recipients {
				seen[r.ID] = true
			}
		}
		for _, id := range kept {
			if !seen[id] {
				t.Errorf("limit %d: %s stayed as it was and was not listed", limit, id)
			}
		}
		// Put the deleted ones back for the next page size.
		for i := 0; i < n; i += 500 {
			mustPutRecipients(t, s, rs[i:i+500]...)
		}
	}
}
