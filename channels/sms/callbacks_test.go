package sms_test

import (
	"encoding/xml"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/tocsin-dev/tocsin/channels/sms"
	"github.com/tocsin-dev/tocsin/channels/sms/twiliotest"
	"github.com/tocsin-dev/tocsin/dispatcher"
)

const (
	hookToken = "0123456789abcdef0123456789abcdef"
	hookURL   = "https://tocsin.example.com/v1/callbacks/twilio/status?d=bc_x_1.sms.cust-1"
)

var hookSID = "SM" + strings.Repeat("ab", 16)

func statusForm(status, code string) url.Values {
	f := url.Values{"MessageSid": {hookSID}, "MessageStatus": {status}, "AccountSid": {"AC" + strings.Repeat("0", 32)}, "To": {"+41791234567"}}
	if code != "" {
		f.Set("ErrorCode", code)
	}
	return f
}

func TestValidSignature(t *testing.T) {
	t.Parallel()
	form := statusForm("delivered", "")
	sig := twiliotest.Signature(hookToken, hookURL, form)
	if !sms.ValidSignature(hookToken, hookURL, form, sig) {
		t.Fatal("Twilio's signature is refused")
	}
	tampered := statusForm("failed", "")
	other := statusForm("delivered", "")
	other.Set("Extra", "1")
	for _, tt := range []struct {
		name            string
		token, url, sig string
		form            url.Values
	}{
		{"no signature", hookToken, hookURL, "", form},
		{"no token", "", hookURL, sig, form},
		{"no token, signed with none", "", hookURL, twiliotest.Signature("", hookURL, form), form},
		{"another token", strings.Repeat("f", 32), hookURL, sig, form},
		{"another URL", hookToken, strings.Replace(hookURL, "cust-1", "cust-2", 1), sig, form},
		{"the private URL", hookToken, "http://127.0.0.1:8080/v1/callbacks/twilio/status?d=bc_x_1.sms.cust-1", sig, form},
		{"a changed field", hookToken, hookURL, sig, tampered},
		{"an added field", hookToken, hookURL, sig, other},
		{"a forged signature", hookToken, hookURL, twiliotest.Signature("not-the-token", hookURL, form), form},
	} {
		if sms.ValidSignature(tt.token, tt.url, tt.form, tt.sig) {
			t.Errorf("%s: accepted", tt.name)
		}
	}
}

func TestParseStatusCallback(t *testing.T) {
	t.Parallel()
	const did = "bc_x_1.sms.cust-1"
	receipt := func(st dispatcher.DeliveryStatus, reason string) dispatcher.Receipt {
		return dispatcher.Receipt{DeliveryID: did, ProviderID: hookSID, Status: st, Reason: reason}
	}
	badSID := statusForm("delivered", "")
	badSID.Set("MessageSid", "SMnothex")
	noSID := statusForm("delivered", "")
	noSID.Del("MessageSid")
	mms := statusForm("read", "")
	mms.Set("MessageSid", "MM"+strings.Repeat("cd", 16))
	tests := []struct {
		name    string
		did     string
		form    url.Values
		want    dispatcher.Receipt
		wantErr error  // a sentinel
		why     string // a *CallbackError's Why
	}{
		{"sent", did, statusForm("sent", ""), receipt(dispatcher.StatusSent, ""), nil, ""},
		{"delivered", did, statusForm("delivered", ""), receipt(dispatcher.StatusDelivered, ""), nil, ""},
		{"read", did, mms, dispatcher.Receipt{DeliveryID: did, ProviderID: mms.Get("MessageSid"), Status: dispatcher.StatusDelivered}, nil, ""},
		{"undelivered with a code", did, statusForm("undelivered", "30003"), receipt(dispatcher.StatusFailed, "30003: twilio undelivered"), nil, ""},
		{"failed without a code", did, statusForm("failed", ""), receipt(dispatcher.StatusFailed, "twilio failed"), nil, ""},
		// A message dropped at its ValidityPeriod is a late one not sent.
		{"validity period expired", did, statusForm("failed", "30036"), receipt(dispatcher.StatusFailed, "expired: 30036: twilio failed"), nil, ""},
		{"queue overflow at 10 hours", did, statusForm("failed", "30001"), receipt(dispatcher.StatusFailed, "expired: 30001: twilio failed"), nil, ""},
		{"canceled", did, statusForm("canceled", ""), receipt(dispatcher.StatusFailed, "twilio canceled"), nil, ""},
		{"delivered ignores ErrorCode", did, statusForm("delivered", "30003"), receipt(dispatcher.StatusDelivered, ""), nil, ""},
		{"queued", did, statusForm("queued", ""), dispatcher.Receipt{}, sms.ErrNotFinal, ""},
		{"accepted", did, statusForm("accepted", ""), dispatcher.Receipt{}, sms.ErrNotFinal, ""},
		{"scheduled", did, statusForm("scheduled", ""), dispatcher.Receipt{}, sms.ErrNotFinal, ""},
		{"sending", did, statusForm("sending", ""), dispatcher.Receipt{}, sms.ErrNotFinal, ""},
		{"an email delivery", "bc_x_1.email.cust-1", statusForm("failed", ""), dispatcher.Receipt{}, sms.ErrNotSMS, ""},
		{"an email delivery, bad sid", "bc_x_1.email.cust-1", badSID, dispatcher.Receipt{}, sms.ErrNotSMS, ""},
		{"not a delivery id", "garbage", statusForm("delivered", ""), dispatcher.Receipt{}, nil, "query parameter d is not a delivery id"},
		{"no delivery id", "", statusForm("delivered", ""), dispatcher.Receipt{}, nil, "query parameter d is not a delivery id"},
		{"malformed sid", did, badSID, dispatcher.Receipt{}, nil, "MessageSid is missing or malformed"},
		{"no sid", did, noSID, dispatcher.Receipt{}, nil, "MessageSid is missing or malformed"},
		{"bad sid before a status not final", did, func() url.Values { f := statusForm("queued", ""); f.Set("MessageSid", "x"); return f }(), dispatcher.Receipt{}, nil, "MessageSid is missing or malformed"},
		{"unknown status", did, statusForm("exploded", ""), dispatcher.Receipt{}, nil, "MessageStatus exploded is unknown"},
		{"status in capitals", did, statusForm("DELIVERED", ""), dispatcher.Receipt{}, nil, "MessageStatus DELIVERED is unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := sms.ParseStatusCallback(tt.did, tt.form)
			var bad *sms.CallbackError
			switch {
			case tt.why != "":
				if !errors.As(err, &bad) || bad.Why != tt.why {
					t.Errorf("err = %v, want a CallbackError %q", err, tt.why)
				}
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("err = %v, want %v", err, tt.wantErr)
				}
			case err != nil:
				t.Errorf("err = %v", err)
			}
			if got != tt.want {
				t.Errorf("receipt = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseInbound(t *testing.T) {
	t.Parallel()
	from, body, err := sms.ParseInbound(url.Values{"From": {"+41791234567"}, "Body": {"STOPP"}, "To": {"+41800000000"}})
	if err != nil || from != "+41791234567" || body != "STOPP" {
		t.Errorf("ParseInbound = %q %q %v", from, body, err)
	}
	var bad *sms.CallbackError
	if _, _, err := sms.ParseInbound(url.Values{"Body": {"STOP"}}); !errors.As(err, &bad) || bad.Why != "From is missing" {
		t.Errorf("without From: %v, want a CallbackError", err)
	}
}

func TestInboundReply(t *testing.T) {
	t.Parallel()
	const empty = xml.Header + "<Response/>"
	for _, tt := range []struct{ body, reply, want string }{
		{"HILFE", "reply to HILFE <&>", xml.Header + "<Response><Message>reply to HILFE &lt;&amp;&gt;</Message></Response>"},
		{"STOPP", "Sie sind abgemeldet.", xml.Header + "<Response><Message>Sie sind abgemeldet.</Message></Response>"},
		{"ARRET", "", empty},
		// The English words Twilio answers itself: no reply of ours.
		{"stop", "You are unsubscribed.", empty},
		{" Stop! ", "You are unsubscribed.", empty},
		{"UNSUBSCRIBE", "x", empty},
		{"start", "Welcome back.", empty},
		{"unstop", "Welcome back.", empty},
		{"STOP please", "x", xml.Header + "<Response><Message>x</Message></Response>"},
	} {
		if got := string(sms.InboundReply(tt.body, tt.reply)); got != tt.want {
			t.Errorf("InboundReply(%q, %q) = %s\nwant %s", tt.body, tt.reply, got, tt.want)
		}
	}
}

// FuzzParseStatusCallback: any form gives either an error or a receipt for
// the delivery and message named, with a final status.
func FuzzParseStatusCallback(f *testing.F) {
	f.Add("bc_x_1.sms.cust-1", hookSID, "delivered", "")
	f.Add("bc_x_1.sms.cust-1", hookSID, "undelivered", "30003")
	f.Add("bc_x_1.push.cust-1", hookSID, "failed", "")
	f.Add("x", "SM", "queued", "1")
	f.Fuzz(func(t *testing.T, did, sid, status, code string) {
		rc, err := sms.ParseStatusCallback(did, url.Values{"MessageSid": {sid}, "MessageStatus": {status}, "ErrorCode": {code}})
		if err != nil {
			if rc != (dispatcher.Receipt{}) {
				t.Errorf("receipt %+v with error %v", rc, err)
			}
			return
		}
		if rc.DeliveryID != did || rc.ProviderID != sid {
			t.Errorf("receipt %+v for delivery %q, message %q", rc, did, sid)
		}
		switch rc.Status {
		case dispatcher.StatusSent, dispatcher.StatusDelivered:
			if rc.Reason != "" {
				t.Errorf("reason %q for %s", rc.Reason, rc.Status)
			}
		case dispatcher.StatusFailed:
			if !strings.HasSuffix(rc.Reason, "twilio "+status) {
				t.Errorf("reason %q for %q", rc.Reason, status)
			}
		default:
			t.Errorf("status %q is not final", rc.Status)
		}
	})
}

// FuzzInboundReply: the TwiML is well-formed and carries the reply, every
// character XML cannot hold replaced by U+FFFD.
func FuzzInboundReply(f *testing.F) {
	f.Add("HELP", "reply <&> \"quoted\"\r\n")
	f.Add("stop", "x")
	f.Add("AIUTO", "")
	f.Fuzz(func(t *testing.T, body, reply string) {
		twiml := sms.InboundReply(body, reply)
		var doc struct {
			XMLName xml.Name `xml:"Response"`
			Message *string  `xml:"Message"`
		}
		if err := xml.Unmarshal(twiml, &doc); err != nil {
			t.Fatalf("TwiML %q: %v", twiml, err)
		}
		want := strings.Map(func(r rune) rune {
			if r == 0x09 || r == 0x0A || r == 0x0D || r >= 0x20 && r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF {
				return r
			}
			return '\uFFFD'
		}, reply)
		if doc.Message != nil && *doc.Message != want {
			t.Errorf("Message = %q, want %q", *doc.Message, want)
		}
		if (doc.Message == nil) != (string(twiml) == xml.Header+"<Response/>") {
			t.Errorf("TwiML %q", twiml)
		}
	})
}
