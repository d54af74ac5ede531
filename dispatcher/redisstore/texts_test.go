package redisstore

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// TestOldFormUpdatesReadBack: an incident and update stored before texts
// per audience (a title string, a message of one string per language)
// read back as the same forms, and write back unchanged.
func TestOldFormUpdatesReadBack(t *testing.T) {
	t.Parallel()
	rdb, _ := newRedis(t)
	s := New(rdb)
	ctx := context.Background()
	const id = "inc_aaaaaaaaaaaaaaaa"
	oldInc := `{"id":"` + id + `","title":"Payments down","severity":"major","state":"identified","services":["pay"],"regions":["ch"],"last_seq":1,"created_at":"2101-01-02T09:00:00Z","updated_at":"2101-01-02T09:00:00Z"}`
	oldUp := `{"incident_id":"` + id + `","seq":1,"state":"identified","message":{"de":"Zahlungen gestört.","en":"Payments down."},"broadcast_id":"bc_aaaaaaaaaaaaaaaa_1","created_at":"2101-01-02T09:00:00Z"}`
	if err := rdb.Set(ctx, incidentKey(id), oldInc, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.RPush(ctx, ctlKey("inc", id, "u"), oldUp).Err(); err != nil {
		t.Fatal(err)
	}
	inc, err := s.GetIncident(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if inc.Title.String() != "Payments down" || inc.Title.For("de-CH", false) != "Payments down" {
		t.Errorf("title = %q", inc.Title)
	}
	ups, err := s.GetUpdates(ctx, id)
	if err != nil || len(ups) != 1 {
		t.Fatalf("GetUpdates = %v, %v", ups, err)
	}
	if text, from, ok := ups[0].Message["de"].For(dispatcher.KindMerchant, dispatcher.ChannelPush); !ok || text != "Zahlungen gestört." || from != "" {
		t.Errorf("old German text for a merchant on push = %q from %q (%v)", text, from, ok)
	}
	for _, pair := range []struct {
		v    any
		want string
	}{{inc, oldInc}, {ups[0], oldUp}} {
		out, err := json.Marshal(pair.v)
		if err != nil || string(out) != pair.want {
			t.Errorf("written back as\n%s, want\n%s (%v)", out, pair.want, err)
		}
	}
}

// TestNewFormUpdateRoundTrip: a title per language and a message by kind
// and channel are stored and read back as given.
func TestNewFormUpdateRoundTrip(t *testing.T) {
	t.Parallel()
	rdb, _ := newRedis(t)
	s := New(rdb)
	ctx := context.Background()
	at := time.Date(2101, 1, 2, 9, 0, 0, 0, time.UTC)
	p := newIncident("inc_bbbbbbbbbbbbbbbb", at)
	p.inc.Title = dispatcher.LocaleTitles(map[string]string{"de": "Kartenzahlungen", "en": "Card payments"})
	const msg = `{"de":{"customer":"Bar bezahlen.","merchant":{"sms":"Terminal bald.","text":"Ihr Terminal nimmt ab {eta} wieder Karten an."}},"en":"Cards down."}`
	if err := json.Unmarshal([]byte(msg), &p.up.Message); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SaveUpdate(ctx, p.inc, p.prevSeq, p.up, p.b, nil); err != nil {
		t.Fatal(err)
	}
	inc, err := s.GetIncident(ctx, p.inc.ID)
	if err != nil {
		t.Fatal(err)
	}
	if title, _ := json.Marshal(inc.Title); string(title) != `{"de":"Kartenzahlungen","en":"Card payments"}` {
		t.Errorf("title read back as %s", title)
	}
	ups, err := s.GetUpdates(ctx, p.inc.ID)
	if err != nil || len(ups) != 1 {
		t.Fatalf("GetUpdates = %v, %v", ups, err)
	}
	if out, _ := json.Marshal(ups[0].Message); string(out) != msg {
		t.Errorf("message read back as %s, want %s", out, msg)
	}
}

// TestRecipientAttributesStored: attributes travel in the recipient's
// record, which GetRecipients (the batch's one read) returns.
func TestRecipientAttributesStored(t *testing.T) {
	t.Parallel()
	rdb, _ := newRedis(t)
	s := New(rdb)
	ctx := context.Background()
	r := &dispatcher.Recipient{ID: "biz-1", Kind: dispatcher.KindMerchant, Locale: "en-US", Email: "ap@shop.example",
		Attributes: map[string]string{"credit_amount": "25", "credit_currency": "USD"}}
	if err := s.PutRecipients(ctx, []*dispatcher.Recipient{r, {ID: "plain", Kind: dispatcher.KindCustomer, Locale: "en", Phone: "+15551230000"}}); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetRecipients(ctx, []string{"biz-1", "plain"})
	if err != nil || len(got) != 2 {
		t.Fatalf("GetRecipients = %v, %v", got, err)
	}
	if got[0].Attributes["credit_amount"] != "25" || got[0].Attributes["credit_currency"] != "USD" || got[1].Attributes != nil {
		t.Errorf("attributes = %v and %v", got[0].Attributes, got[1].Attributes)
	}
	raw, err := rdb.HGet(ctx, recordKey("plain"), "plain").Result()
	if err != nil {
		t.Fatal(err)
	}
	if raw == "" || raw[0] != recordPacked || strings.Contains(raw, `"a"`) || !strings.HasSuffix(raw, "\x00") {
		t.Errorf("a recipient without attributes stores some (or is not packed): %q", raw)
	}
}
