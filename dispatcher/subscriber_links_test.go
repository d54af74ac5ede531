package dispatcher_test

import (
	"context"
	"strings"
	"testing"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/locales"
	"github.com/tocsin-dev/tocsin/locales/gsm"
)

// TestSubscriberLinksToken: a manage token names its subscriber and
// nothing else; tampered, foreign or unsigned tokens are refused.
func TestSubscriberLinksToken(t *testing.T) {
	t.Parallel()
	l := &dispatcher.SubscriberLinks{Secret: []byte("secret-one"), BaseURL: "https://s.example/", PathPrefix: "/status/"}
	const id = "sub_abcdefghijklmnopqrstuvwxyz"
	tok := l.Token(id)
	if got, err := l.Verify(tok); err != nil || got != id {
		t.Fatalf("Verify(Token) = %q, %v", got, err)
	}
	other := &dispatcher.SubscriberLinks{Secret: []byte("secret-two")}
	unsub := dispatcher.LinkSigner{Secret: []byte("secret-one")}
	for _, bad := range []string{"", tok + "A", strings.Replace(tok, "sub_a", "sub_b", 1), other.Token(id), "sub_x." + strings.SplitN(tok, ".", 2)[1],
		unsub.Token(dispatcher.ChannelEmail, id), "c1." + strings.SplitN(l.Token("c1"), ".", 2)[1]} {
		if got, err := l.Verify(bad); err == nil {
			t.Errorf("Verify(%q) = %q, want ErrBadToken", bad, got)
		}
	}
	if _, err := (&dispatcher.SubscriberLinks{}).Verify(tok); err == nil {
		t.Error("a token verified without a secret")
	}
	if got, want := l.ManageURL(id), "https://s.example/status/subscriptions/manage?token="+tok; got != want {
		t.Errorf("ManageURL = %s, want %s", got, want)
	}
}

// TestSubscriberLinksDecorate: messages to subscribers carry both links in
// their language (SMS: the manage link and STOP, segments recounted);
// messages to anyone else are untouched.
func TestSubscriberLinksDecorate(t *testing.T) {
	t.Parallel()
	l := &dispatcher.SubscriberLinks{Secret: []byte("s"), BaseURL: "https://s.example", Catalog: locales.MustNew()}
	sub := &dispatcher.Recipient{ID: "sub_abcdefghijklmnopqrstuvwxyz", Kind: dispatcher.KindSubscriber}
	email := &dispatcher.Message{Channel: dispatcher.ChannelEmail, Recipient: sub, Locale: "de", Body: "Text", HTML: "<html><body><p>Text</p></body></html>"}
	l.Decorate(email)
	if !strings.Contains(email.Body, "Abbestellen: "+email.UnsubscribeURL) || !strings.Contains(email.Body, email.ManageURL) ||
		!strings.Contains(email.HTML, `href="`+email.ManageURL) || !strings.HasSuffix(email.HTML, "</p></body></html>") {
		t.Errorf("email = %q / %q", email.Body, email.HTML)
	}
	sms := &dispatcher.Message{Channel: dispatcher.ChannelSMS, Recipient: sub, Locale: "en", Body: strings.Repeat("Card payments fail. ", 6), Segments: 1}
	l.Decorate(sms)
	if !strings.Contains(sms.Body, "STOP") || !strings.Contains(sms.Body, sms.ManageURL) || sms.Segments != gsm.Count(sms.Body).Segments || sms.Segments < 2 {
		t.Errorf("sms = %q (%d segments)", sms.Body, sms.Segments)
	}
	cust := &dispatcher.Message{Channel: dispatcher.ChannelEmail, Recipient: &dispatcher.Recipient{ID: "c1", Kind: dispatcher.KindCustomer}, Body: "Text"}
	l.Decorate(cust)
	var none *dispatcher.SubscriberLinks
	none.Decorate(email)
	if cust.Body != "Text" || cust.ManageURL != "" {
		t.Errorf("a customer's message was decorated: %+v", cust)
	}
}

// TestSubscriberSMSSegmentsAreBilled: the segments a broadcast counts for a
// subscriber's SMS are those of the message sent, manage link included.
func TestSubscriberSMSSegmentsAreBilled(t *testing.T) {
	t.Parallel()
	sub := &dispatcher.Recipient{ID: "sub_abcdefghijklmnopqrstuvwxyz", Kind: dispatcher.KindSubscriber, Locale: "en", Phone: "+41791234567"}
	s := setupFanout(t, sub)
	s.with(func(c *dispatcher.FanoutConfig) {
		c.SubscriberLinks = &dispatcher.SubscriberLinks{Secret: []byte("s"), BaseURL: "https://status.example.com", Catalog: locales.MustNew()}
	})
	ctx := context.Background()
	if err := s.fanout.Plan(ctx, s.b.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.fanout.RunBatch(ctx, s.b.ID, dispatcher.Batch{Start: 0, Stop: 10}); err != nil {
		t.Fatal(err)
	}
	if len(s.sms.calls) != 1 || len(s.sms.calls[0]) != 1 {
		t.Fatalf("sms calls %v, want one message", s.sms.calls)
	}
	m := s.sms.calls[0][0]
	b, err := s.store.GetBroadcast(ctx, s.b.ID)
	if err != nil {
		t.Fatal(err)
	}
	d := s.store.delivery(t, m.DeliveryID)
	if !strings.Contains(m.Body, m.ManageURL) || m.Segments != gsm.Count(m.Body).Segments || b.SMSSegments != m.Segments || d.Segments != m.Segments {
		t.Errorf("sent %d segments (%q); the broadcast counts %d, the delivery %d", m.Segments, m.Body, b.SMSSegments, d.Segments)
	}
}
