package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/channels/channeltest"
	"github.com/tocsin-dev/tocsin/channels/outbox"
	"github.com/tocsin-dev/tocsin/dispatcher"
)

// flakyStore is the outbox's fake "provider": a Memory store whose next
// Appends can be made to fail, as a Redis outage would.
type flakyStore struct {
	*outbox.Memory
	mu    sync.Mutex
	failN int
}

func (s *flakyStore) Append(ctx context.Context, entries []dispatcher.OutboxEntry) error {
	s.mu.Lock()
	fail := s.failN > 0
	if fail {
		s.failN--
	}
	s.mu.Unlock()
	if fail {
		return errors.New("outbox store unavailable")
	}
	return s.Memory.Append(ctx, entries)
}

func (s *flakyStore) Received() []channeltest.Received {
	es, err := s.List(context.Background(), "", math.MaxInt)
	if err != nil {
		panic(err) // Memory never fails a List
	}
	got := make([]channeltest.Received, len(es))
	for i, e := range es {
		got[i] = channeltest.Received{RecipientID: e.RecipientID, Body: e.Body}
	}
	return got
}

func (s *flakyStore) FailNext(kind channeltest.FailKind, n int) error {
	if kind != channeltest.FailTransient {
		return fmt.Errorf("the outbox has no %s failures: %w", kind, errors.ErrUnsupported)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failN = n
	return nil
}

func TestConformance(t *testing.T) {
	t.Parallel()
	channeltest.Run(t, channeltest.Harness{
		Channel: dispatcher.ChannelEmail,
		NewFunc: func(t *testing.T) (dispatcher.Sender, channeltest.Provider) {
			store := &flakyStore{Memory: outbox.NewMemory(0)}
			return &outbox.Sender{Store: store}, store
		},
		RecipientFunc: func(i int) *dispatcher.Recipient {
			return &dispatcher.Recipient{Kind: dispatcher.KindCustomer, Email: fmt.Sprintf("customer%d@example.com", i)}
		},
	})
}

func TestSenderRecordsEveryField(t *testing.T) {
	t.Parallel()
	at := time.Date(2025, 3, 14, 13, 5, 0, 0, time.FixedZone("CET", 3600))
	mem := outbox.NewMemory(10)
	s := &outbox.Sender{Store: mem, Clock: dispatcher.ClockFunc(func() time.Time { return at })}
	m := &dispatcher.Message{
		DeliveryID:  "bc_pay_2.sms.r1",
		BroadcastID: "bc_pay_2",
		IncidentID:  "inc_pay",
		Seq:         2,
		State:       dispatcher.StateIdentified,
		Severity:    dispatcher.SeverityCritical,
		Channel:     dispatcher.ChannelSMS,
		Recipient:   &dispatcher.Recipient{ID: "r1", Phone: "+41790000001"},
		Locale:      "de-CH",
		Title:       "Störung",
		Body:        "Zahlungen schlagen fehl.",
		Attempt:     1,
	}
	res := s.Send(t.Context(), []*dispatcher.Message{m})
	want := dispatcher.Result{Status: dispatcher.StatusDelivered, ProviderID: "outbox"}
	if len(res) != 1 || !reflect.DeepEqual(res[0], want) {
		t.Fatalf("Send = %+v, want [%+v]", res, want)
	}
	got := mustList(t, mem, "", 10)
	wantEntry := dispatcher.OutboxEntry{
		DeliveryID:  "bc_pay_2.sms.r1",
		BroadcastID: "bc_pay_2",
		IncidentID:  "inc_pay",
		Seq:         2,
		State:       "identified",
		Channel:     "sms",
		RecipientID: "r1",
		Locale:      "de-CH",
		Title:       "Störung",
		Body:        "Zahlungen schlagen fehl.",
		At:          at.UTC(),
	}
	if len(got) != 1 || got[0] != wantEntry {
		t.Errorf("recorded %+v\nwant [%+v]", got, wantEntry)
	}
}

func entry(i int, recipient string) dispatcher.OutboxEntry {
	return dispatcher.OutboxEntry{DeliveryID: fmt.Sprintf("bc_x_1.sms.%s-%d", recipient, i), RecipientID: recipient, Body: fmt.Sprintf("m%d", i)}
}

func mustAppend(t *testing.T, s outbox.Store, entries ...dispatcher.OutboxEntry) {
	t.Helper()
	if err := s.Append(t.Context(), entries); err != nil {
		t.Fatal(err)
	}
}

func mustList(t *testing.T, s outbox.Store, recipient string, limit int) []dispatcher.OutboxEntry {
	t.Helper()
	es, err := s.List(t.Context(), recipient, limit)
	if err != nil {
		t.Fatal(err)
	}
	return es
}

func bodies(es []dispatcher.OutboxEntry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Body
	}
	return out
}

func TestMemory(t *testing.T) {
	t.Parallel()
	// m0..m5 over three recipients, appended in two calls.
	filled := func(t *testing.T, cap int) *outbox.Memory {
		m := outbox.NewMemory(cap)
		mustAppend(t, m, entry(0, "a"), entry(1, "b"), entry(2, "a"))
		mustAppend(t, m, entry(3, "c"), entry(4, "a"), entry(5, "b"))
		return m
	}
	tests := []struct {
		name      string
		cap       int
		recipient string
		limit     int
		want      []string
	}{
		{"newest first", 0, "", 100, []string{"m5", "m4", "m3", "m2", "m1", "m0"}},
		{"limit", 0, "", 2, []string{"m5", "m4"}},
		{"limit 0 means 50", 0, "", 0, []string{"m5", "m4", "m3", "m2", "m1", "m0"}},
		{"recipient", 0, "a", 100, []string{"m4", "m2", "m0"}},
		{"recipient and limit", 0, "a", 2, []string{"m4", "m2"}},
		{"unknown recipient", 0, "z", 100, []string{}},
		{"cap drops the oldest", 4, "", 100, []string{"m5", "m4", "m3", "m2"}},
		{"cap and recipient", 4, "a", 100, []string{"m4", "m2"}},
		{"cap of one", 1, "", 100, []string{"m5"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := bodies(mustList(t, filled(t, tt.cap), tt.recipient, tt.limit))
			if !slices.Equal(got, tt.want) {
				t.Errorf("List(%q, %d) = %q, want %q", tt.recipient, tt.limit, got, tt.want)
			}
		})
	}
}

func TestMemoryEmptyListIsNotNil(t *testing.T) {
	t.Parallel()
	if es := mustList(t, outbox.NewMemory(10), "", 10); es == nil || len(es) != 0 {
		t.Errorf("empty outbox lists %#v, want an empty non-nil list (it is served as JSON [])", es)
	}
}

func TestMemoryLimitDefault(t *testing.T) {
	t.Parallel()
	m := outbox.NewMemory(0)
	for i := range 60 {
		mustAppend(t, m, entry(i, "a"))
	}
	got := mustList(t, m, "", 0)
	if len(got) != 50 || got[0].Body != "m59" || got[49].Body != "m10" {
		t.Errorf("List(limit 0) returned %d entries %q…, want the newest 50, m59 to m10", len(got), bodies(got[:min(3, len(got))]))
	}
}

func TestMemoryCapDefault(t *testing.T) {
	t.Parallel()
	m := outbox.NewMemory(0)
	entries := make([]dispatcher.OutboxEntry, 10001)
	for i := range entries {
		entries[i] = entry(i, "a")
	}
	mustAppend(t, m, entries...)
	got := mustList(t, m, "", math.MaxInt)
	if len(got) != 10000 || got[len(got)-1].Body != "m1" {
		t.Errorf("NewMemory(0) kept %d entries, oldest %q; want 10000, oldest m1", len(got), got[len(got)-1].Body)
	}
}

func TestMemoryAppendKeepsOrderWithinCall(t *testing.T) {
	t.Parallel()
	m := outbox.NewMemory(10)
	mustAppend(t, m, entry(0, "a"), entry(1, "a"), entry(2, "a"))
	if got := bodies(mustList(t, m, "", 10)); !slices.Equal(got, []string{"m2", "m1", "m0"}) {
		t.Errorf("List = %q, want the last entry of a call first", got)
	}
}
