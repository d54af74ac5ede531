package dispatcher

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"
)

// listStore is a CompensationStore in memory: known ids are recipients.
type listStore struct {
	known  map[string]bool
	staged map[string][]string
	lists  map[string][]string
	CompensationStore
}

func (f *listStore) AddToList(_ context.Context, staging string, ids []string) ([]string, error) {
	var unknown []string
	for _, id := range ids {
		if !f.known[id] {
			unknown = append(unknown, id)
		} else if !slices.Contains(f.staged[staging], id) {
			f.staged[staging] = append(f.staged[staging], id)
		}
	}
	return unknown, nil
}

func (f *listStore) FinishList(_ context.Context, staging string, l *RecipientList) error {
	f.lists[l.ID] = f.staged[staging]
	l.Recipients = len(f.staged[staging])
	return nil
}

// TestUploadRecipientList reads the same ids as CSV (with a header and
// other columns), NDJSON (strings and objects) and plain lines: bad lines
// are reported by number, unknown ids counted, duplicates kept once, and
// the list's id depends on the ids alone, not on their format.
func TestUploadRecipientList(t *testing.T) {
	t.Parallel()
	clock := ClockFunc(func() time.Time { return time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC) })
	tests := []struct {
		format, body string
		bad          []int // lines rejected
	}{
		{"csv", "\ufeffid,name\nacct-1,Ann\nghost,Bo\n\"acct-2\",\"Cy, Jr\"\nacct-1,again\n\n", nil},
		{"csv", "acct-1\nghost\n bad id \nacct-2\nacct-1\n", []int{3}},
		{"ndjson", "\"acct-1\"\n{\"id\":\"ghost\",\"x\":1}\n{\"name\":\"no id\"}\n\n{\"id\":\"acct-2\"}\n\"acct-1\"\n", []int{3}},
		{"text", "acct-1\r\nghost\r\nacct-2\r\n\r\nacct-1\r\n.dot\r\n", []int{6}},
	}
	var ids []string
	for _, tt := range tests {
		f := &listStore{known: map[string]bool{"acct-1": true, "acct-2": true}, staged: map[string][]string{}, lists: map[string][]string{}}
		s := &Service{c: ServiceConfig{Compensations: f, Clock: clock}}
		l, err := s.UploadRecipientList(context.Background(), strings.NewReader(tt.body), tt.format)
		if err != nil {
			t.Fatalf("%s %q: %v", tt.format, tt.body, err)
		}
		var bad []int
		for _, e := range l.Errors {
			bad = append(bad, e.Line)
		}
		if l.Recipients != 2 || l.Unknown != 1 || !slices.Equal(l.UnknownIDs, []string{"ghost"}) || !slices.Equal(bad, tt.bad) || l.Rejected != len(tt.bad) {
			t.Errorf("%s %q = %+v; want 2 recipients, ghost unknown, lines %v rejected", tt.format, tt.body, l, tt.bad)
		}
		if !validListID(l.ID) || !slices.Equal(f.lists[l.ID], []string{"acct-1", "acct-2"}) {
			t.Errorf("%s: list %s = %v", tt.format, l.ID, f.lists[l.ID])
		}
		ids = append(ids, l.ID)
	}
	// Every row reads acct-1 ghost acct-2 acct-1, in order: one list.
	for _, id := range ids {
		if id != ids[0] {
			t.Errorf("list ids differ for the same ids: %v", ids)
			break
		}
	}
	if _, err := (&Service{c: ServiceConfig{Compensations: &listStore{}, Clock: clock}}).UploadRecipientList(context.Background(), strings.NewReader(""), "xml"); err == nil {
		t.Error("format xml accepted")
	}
}

// TestCompensationInput: the field errors of a compensation's body.
func TestCompensationInput(t *testing.T) {
	t.Parallel()
	inc := &Incident{Title: PlainTitle("Card payments failing")}
	en := PlainTexts(map[string]string{"en": "We credited {credit}."})
	tests := []struct {
		name  string
		in    CompensationInput
		field string // "" valid
	}{
		{"defaults", CompensationInput{Message: en}, ""},
		{"no text", CompensationInput{}, "body.message"},
		{"both audiences", CompensationInput{Message: en, Recipients: []string{"a"}, List: "rl_0123456789abcdef0123456789abcdef"}, "body.list"},
		{"told only with a list", CompensationInput{Message: en, ToldOnly: true, Recipients: []string{"a"}}, "body.told_only"},
		{"bad list", CompensationInput{Message: en, List: "rl_nope"}, "body.list"},
		{"bad id", CompensationInput{Message: en, Recipients: []string{"a", "b c"}}, "body.recipients[1]"},
		{"without credit", CompensationInput{Message: en, WithoutCredit: "maybe"}, "body.without_credit"},
		{"unknown placeholder", CompensationInput{Message: PlainTexts(map[string]string{"en": "{refund}"})}, "body.message.en"},
		{"policy", CompensationInput{Message: en, ChannelPolicy: &ChannelPolicy{Order: []Channel{ChannelEmail}, Exclude: []ExcludeRule{{Channel: ChannelSMS}}}}, ""},
		{"bad policy mode", CompensationInput{Message: en, ChannelPolicy: &ChannelPolicy{Mode: "some"}}, "body.channel_policy.mode"},
		{"bad policy channel", CompensationInput{Message: en, ChannelPolicy: &ChannelPolicy{Order: []Channel{"fax"}}}, "body.channel_policy.order[0]"},
	}
	for _, tt := range tests {
		in := tt.in
		_, err := in.normalize(inc)
		got := ""
		if ve, ok := err.(*ValidationError); ok && len(ve.Fields) > 0 {
			got = ve.Fields[0].Field
		} else if err != nil {
			got = err.Error()
		}
		if got != tt.field {
			t.Errorf("%s: error at %q (%v), want %q", tt.name, got, err, tt.field)
		}
		if tt.field == "" && (in.Title != "Card payments failing" || in.WithoutCredit != CreditSkip || in.Priority != PriorityBulk) {
			t.Errorf("%s: defaults = %+v", tt.name, in)
		}
	}
}
