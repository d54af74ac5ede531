package main

import (
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/mail"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/tocsin-dev/tocsin/channels/email/smtptest"
	"github.com/tocsin-dev/tocsin/channels/sms/twiliotest"
	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/internal/redistest"
)

const (
	testAccountSID = "AC0123456789abcdef0123456789abcdef"
	testAuthToken  = "0123456789abcdef0123456789abcdef"
)

// freeAddr returns a free 127.0.0.1 address: the public URL Twilio calls
// back must be known before the server starts.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// providerApp runs serve with Twilio and SMTP configured against local fakes.
type providerApp struct {
	*app
	twilio *twiliotest.Server
	smtp   *smtptest.Server
}

func startWithProviders(t *testing.T) *providerApp {
	t.Helper()
	return startWithProvidersAdjusted(t, nil)
}

// startWithProvidersAdjusted is startWithProviders with adjust applied to
// Main too (another clock, say).
func startWithProvidersAdjusted(t *testing.T, adjust func(*Main)) *providerApp {
	t.Helper()
	_, opts := redistest.New(t)
	tw := twiliotest.New(t, testAccountSID, testAuthToken)
	sm := smtptest.New(t, smtptest.WithAuth("tocsin", "smtp-secret-password"))
	addr := freeAddr(t)
	env := map[string]string{
		"TOCSIN_HTTP_ADDR": addr, "TOCSIN_HTTP_PUBLIC_URL": "http://" + addr,
		"TOCSIN_REDIS_ADDR": opts.Addr, "TOCSIN_REDIS_DB": strconv.Itoa(opts.DB),
		"TOCSIN_API_KEY": "test-operator-key-0123456789", "TOCSIN_LOG_LEVEL": "warn",
		"TOCSIN_TWILIO_ACCOUNT_SID": testAccountSID, "TOCSIN_TWILIO_AUTH_TOKEN": testAuthToken,
		"TOCSIN_TWILIO_FROM": "+41445550000", "TOCSIN_TWILIO_BASE_URL": tw.URL,
		"TOCSIN_SMTP_HOST": sm.Host, "TOCSIN_SMTP_PORT": strconv.Itoa(sm.Port), "TOCSIN_SMTP_TLS": "starttls",
		"TOCSIN_SMTP_USERNAME": "tocsin", "TOCSIN_SMTP_PASSWORD": "smtp-secret-password",
		"TOCSIN_SMTP_FROM": "Tocsin <alerts@tocsin.example>",
	}
	a := startAppWith(t, env, func(m *Main) {
		m.SMTPTLSConfig = sm.TLSConfig
		if adjust != nil {
			adjust(m)
		}
	})
	return &providerApp{app: a, twilio: tw, smtp: sm}
}

func (p *providerApp) smsTo(phone string) []twiliotest.Message {
	var out []twiliotest.Message
	for _, m := range p.twilio.Messages() {
		if m.To == phone {
			out = append(out, m)
		}
	}
	return out
}

func (p *providerApp) mailTo(addr string) []*mail.Message {
	var out []*mail.Message
	for _, r := range p.smtp.Messages() {
		for _, to := range r.To {
			if to == addr {
				m, err := mail.ReadMessage(bytes.NewReader(r.Data))
				if err != nil {
					p.t.Fatalf("parse mail: %v", err)
				}
				out = append(out, m)
			}
		}
	}
	return out
}

func (p *providerApp) open(title string) *dispatcher.Broadcast {
	p.t.Helper()
	var res dispatcher.UpdateResult
	p.mustDo("POST", "/v1/incidents", map[string]any{"title": title, "severity": "major", "services": []string{"cards"}}, &res, 201)
	return p.waitDone(res.BroadcastID)
}

func (p *providerApp) deliveries(bid string) map[string]dispatcher.Delivery {
	p.t.Helper()
	var page dispatcher.DeliveryPage
	p.mustDo("GET", "/v1/broadcasts/"+bid+"/deliveries?limit=1000", nil, &page, 200)
	out := map[string]dispatcher.Delivery{}
	for _, d := range page.Deliveries {
		out[d.RecipientID] = *d
	}
	return out
}

// TestProviders drives SMS through a Twilio fake and email through an SMTP
// server with STARTTLS and AUTH, end to end through serve.
func TestProviders(t *testing.T) {
	p := startWithProviders(t)
	type who struct{ id, locale, phone, email, stop, reply string }
	stoppers := []who{
		{"zh", "de-CH", "+41791000001", "", "STOPP", "keine Servicemeldungen per SMS mehr"},
		{"ge", "fr-CH", "+41791000002", "", "Arrêt", "ne recevrez plus de notifications"},
		{"cph", "da-DK", "+4520100003", "", "afmeld", "modtager ikke længere"},
	}
	stays := who{id: "bs", locale: "de-CH", phone: "+41791000004"}
	for _, w := range append(stoppers, stays) {
		p.mustDo("PUT", "/v1/recipients/"+w.id, map[string]any{"locale": w.locale, "phone": w.phone, "services": []string{"cards"}, "channels": []string{"sms"}}, nil, 200)
	}
	p.mustDo("PUT", "/v1/recipients/shop", map[string]any{"kind": "merchant", "locale": "fr-CH", "email": "caisse@boulangerie.example",
		"services": []string{"cards"}, "channels": []string{"email"}}, nil, 200)
	p.mustDo("PUT", "/v1/recipients/gone", map[string]any{"locale": "en", "email": "nobody@boulangerie.example",
		"services": []string{"cards"}, "channels": []string{"email"}}, nil, 200)
	p.smtp.RejectRcpt("nobody@boulangerie.example", 550, "5.1.1", "No such user")
	// The first attempt to one number meets Twilio's rate limit: retried.
	p.twilio.FailNext(http.StatusTooManyRequests, 1)

	b1 := p.open("Kartenzahlungen gestört")

	// SMS: one per number, with a StatusCallback naming the delivery.
	for _, w := range append(stoppers, stays) {
		msgs := p.smsTo(w.phone)
		if len(msgs) != 1 {
			t.Fatalf("%s got %d SMS, want 1", w.id, len(msgs))
		}
		cb, err := url.Parse(msgs[0].StatusCallback)
		if err != nil || cb.Path != "/v1/callbacks/twilio/status" || cb.Query().Get("d") != dispatcher.DeliveryID(b1.ID, dispatcher.ChannelSMS, w.id) {
			t.Errorf("%s: StatusCallback %q", w.id, msgs[0].StatusCallback)
		}
	}
	ds := p.deliveries(b1.ID)
	retried := 0
	for _, w := range append(stoppers, stays) {
		d := ds[w.id]
		if d.Status != dispatcher.StatusSent || !strings.HasPrefix(d.ProviderID, "SM") || d.Segments < 1 {
			t.Errorf("%s: %+v, want sent with the message SID", w.id, d)
		}
		if d.Attempts == 2 {
			retried++
		}
	}
	if retried != 1 {
		t.Errorf("%d deliveries took 2 attempts, want exactly 1 (the 429)", retried)
	}
	// Email: the merchant's arrives; the unknown user's fails with the code.
	if d := ds["gone"]; d.Status != dispatcher.StatusFailed || !strings.Contains(d.Reason, "550") || !strings.Contains(d.Reason, "5.1.1") || d.Attempts != 1 {
		t.Errorf("gone: %+v, want failed with 550 5.1.1 after one attempt", d)
	}
	mails := p.mailTo("caisse@boulangerie.example")
	if len(mails) != 1 {
		t.Fatalf("merchant got %d mails, want 1", len(mails))
	}
	m := mails[0]
	subject, _ := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	if !strings.Contains(subject, "Kartenzahlungen gestört") || m.Header.Get("Auto-Submitted") != "auto-generated" ||
		m.Header.Get("List-Unsubscribe-Post") != "List-Unsubscribe=One-Click" || m.Header.Get("Message-Id") == "" {
		t.Errorf("mail headers: subject %q, %v", subject, m.Header)
	}
	mediaType, params, _ := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if mediaType != "multipart/alternative" {
		t.Fatalf("Content-Type %s", mediaType)
	}
	parts := map[string]string{}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		part, err := mr.NextPart()
		if err != nil {
			break
		}
		ct, _, _ := mime.ParseMediaType(part.Header.Get("Content-Type"))
		body, _ := io.ReadAll(part) // NextPart undoes quoted-printable
		parts[ct] = string(body)
	}
	if !strings.Contains(parts["text/plain"], "paiements") || !strings.Contains(parts["text/html"], "<!DOCTYPE html>") {
		t.Errorf("mail parts: %v", parts)
	}

	// Delivery receipts: signed, out of order, forged.
	sid := p.smsTo(stays.phone)[0].SID
	for _, st := range []string{"delivered", "sent"} { // "sent" arrives late
		resp, err := p.twilio.SendStatus(sid, st, "")
		if err != nil || resp.StatusCode != 204 {
			t.Fatalf("status callback %s: %v %v", st, resp, err)
		}
	}
	if d := p.deliveries(b1.ID)["bs"]; d.Status != dispatcher.StatusDelivered || d.ProviderID != sid {
		t.Errorf("after delivered then a late sent: %+v, want delivered", d)
	}
	sid2 := p.smsTo(stoppers[0].phone)[0].SID
	if resp, err := p.twilio.SendStatus(sid2, "undelivered", "30003"); err != nil || resp.StatusCode != 204 {
		t.Fatalf("undelivered callback: %v %v", resp, err)
	}
	if d := p.deliveries(b1.ID)["zh"]; d.Status != dispatcher.StatusFailed || !strings.HasPrefix(d.Reason, "30003") {
		t.Errorf("after undelivered 30003: %+v", d)
	}
	forged := url.Values{"MessageSid": {sid}, "MessageStatus": {"failed"}, "AccountSid": {testAccountSID}}
	req, _ := http.NewRequest("POST", p.smsTo(stays.phone)[0].StatusCallback, strings.NewReader(forged.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", twiliotest.Signature("not-the-auth-token", req.URL.String(), forged))
	if resp, err := ownClient.Do(req); err != nil || resp.StatusCode != 403 {
		t.Fatalf("forged callback: %v %v, want 403", resp, err)
	}
	if d := p.deliveries(b1.ID)["bs"]; d.Status != dispatcher.StatusDelivered {
		t.Errorf("a forged callback changed the delivery: %+v", d)
	}
	if b := p.waitDone(b1.ID); b.Counts[dispatcher.ChannelSMS][dispatcher.StatusDelivered] != 1 || b.Counts[dispatcher.ChannelSMS][dispatcher.StatusFailed] != 1 {
		t.Errorf("broadcast counts after receipts: %v", b.Counts)
	}

	// STOP in three languages: opted out, answered in their language.
	inbound := p.base + "/v1/callbacks/twilio/inbound"
	for _, w := range stoppers {
		resp, err := p.twilio.SendInbound(inbound, w.phone, "+41445550000", w.stop)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("inbound %s: %v %v", w.stop, resp, err)
		}
		body, _ := io.ReadAll(resp.Body)
		if !strings.Contains(string(body), w.reply) {
			t.Errorf("reply to %s from %s = %s, want %q", w.stop, w.id, body, w.reply)
		}
	}
	// The number's STOP shows in the recipient's opt_out, as the API says.
	for _, w := range stoppers {
		var r dispatcher.Recipient
		p.mustDo("GET", "/v1/recipients/"+w.id, nil, &r, 200)
		if !slices.Contains(r.OptOut, dispatcher.ChannelSMS) {
			t.Errorf("%s sent STOP; its opt_out = %v, want sms in it", w.id, r.OptOut)
		}
	}
	resp, err := p.twilio.SendInbound(inbound, stays.phone, "+41445550000", "hilfe")
	if err != nil {
		t.Fatal(err)
	}
	if body, _ := io.ReadAll(resp.Body); !strings.Contains(string(body), "Servicemeldungen zu Störungen") {
		t.Errorf("HELP reply = %s", body)
	}

	// One-click unsubscribe from the mail's own header (RFC 8058).
	unsub := strings.Trim(m.Header.Get("List-Unsubscribe"), "<>")
	if !strings.HasPrefix(unsub, p.base+"/v1/unsubscribe/") {
		t.Fatalf("List-Unsubscribe %q", unsub)
	}
	page, err := http.Get(unsub)
	if err != nil || page.StatusCode != 200 {
		t.Fatalf("GET unsubscribe page: %v %v", page, err)
	}
	resp, err = http.Post(unsub, "application/x-www-form-urlencoded", strings.NewReader("List-Unsubscribe=One-Click"))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("one-click POST: %v %v", resp, err)
	}

	// The next incident: no SMS to the three who sent STOP, none to the
	// unsubscribed merchant; the others still hear.
	sentBefore, mailedBefore := len(p.twilio.Messages()), len(p.mailTo("caisse@boulangerie.example"))
	b2 := p.open("Terminals offline")
	for _, w := range stoppers {
		if n := len(p.smsTo(w.phone)); n != 1 {
			t.Errorf("%s sent STOP and got %d SMS in all, want 1", w.id, n)
		}
	}
	if n := len(p.smsTo(stays.phone)); n != 2 {
		t.Errorf("%s got %d SMS, want 2", stays.id, n)
	}
	if len(p.twilio.Messages()) != sentBefore+1 || len(p.mailTo("caisse@boulangerie.example")) != mailedBefore {
		t.Errorf("second incident: %d SMS and %d mails to the merchant in all", len(p.twilio.Messages()), len(p.mailTo("caisse@boulangerie.example")))
	}
	ds2 := p.deliveries(b2.ID)
	for _, id := range []string{"zh", "ge", "cph", "shop"} {
		if d := ds2[id]; d.Status != dispatcher.StatusSuppressed || d.Reason != "no_channel" {
			t.Errorf("%s in the second broadcast: %+v, want suppressed (opted out, no other channel)", id, d)
		}
	}
	// START brings one back.
	if _, err := p.twilio.SendInbound(inbound, stoppers[1].phone, "+41445550000", "START"); err != nil {
		t.Fatal(err)
	}
	p.open("Again")
	if n := len(p.smsTo(stoppers[1].phone)); n != 2 {
		t.Errorf("after START %s got %d SMS in all, want 2", stoppers[1].id, n)
	}
	if strings.Contains(p.stderr.String(), "smtp-secret-password") || strings.Contains(p.stderr.String(), testAuthToken) {
		t.Errorf("a secret appears in the logs")
	}
	for _, w := range append(stoppers, stays) {
		if strings.Contains(p.stderr.String(), w.phone) {
			t.Errorf("a full phone number appears in the logs: %s", w.phone)
		}
	}
}
