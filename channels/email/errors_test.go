package email

import (
	"errors"
	"fmt"
	"io"
	"net/textproto"
	"strconv"
	"strings"
	"testing"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

func TestEnhancedCode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		code int
		text string
		want string
	}{
		{550, "5.1.1 No such user", "5.1.1"},
		{452, "4.2.2 Mailbox full", "4.2.2"},
		{554, "5.7.1 Message rejected\nsee https://example.com/5.7.1", "5.7.1"},
		{553, "mailbox name not allowed", ""},
		{550, "", ""},
		{550, "4.1.1 class differs from the reply", ""},
		{550, "5.1 too short", ""},
		{550, "5.1.1.1 too long", ""},
		{550, "5.1000.1 subject too long", ""},
		{550, "5.01.1 leading zero", ""},
		{550, "5.x.1 not a number", ""},
		{550, "3.1.1 not a class", ""},
		{451, "4.3.0", "4.3.0"},
		{250, "2.0.0 OK", "2.0.0"},
		{550, "Requested action not taken: 5.1.1 later in the text", ""},
	}
	for _, tt := range tests {
		if got := enhancedCode(tt.code, tt.text); got != tt.want {
			t.Errorf("enhancedCode(%d, %q) = %q, want %q", tt.code, tt.text, got, tt.want)
		}
	}
}

func FuzzEnhancedCode(f *testing.F) {
	f.Add(550, "5.1.1 No such user")
	f.Add(451, "4.3.0")
	f.Add(421, "4.4.2 idle\n4.4.2 bye")
	f.Add(553, "")
	f.Fuzz(func(t *testing.T, code int, text string) {
		got := enhancedCode(code, text)
		if got == "" {
			return
		}
		if !strings.HasPrefix(strings.TrimLeft(text, " "), got) {
			t.Errorf("enhancedCode(%d, %q) = %q, not where the text starts", code, text, got)
		}
		if got[:1] != strconv.Itoa(code/100) || strings.Count(got, ".") != 2 {
			t.Errorf("enhancedCode(%d, %q) = %q, not class.subject.detail of the reply's class", code, text, got)
		}
	})
}

func TestClassify(t *testing.T) {
	t.Parallel()
	reply := func(code int, msg string) error {
		return &stageError{stage: "RCPT TO", err: &textproto.Error{Code: code, Msg: msg}}
	}
	tests := []struct {
		name      string
		err       error
		permanent bool
		code      string
	}{
		{"421", reply(421, "4.4.2 closing"), false, "421 4.4.2"},
		{"450", reply(450, "4.2.1 try later"), false, "450 4.2.1"},
		{"451", reply(451, "4.3.0 local error"), false, "451 4.3.0"},
		{"452", reply(452, "4.2.2 mailbox full"), false, "452 4.2.2"},
		{"452 without enhanced", reply(452, "too many recipients"), false, "452"},
		{"550 5.1.1", reply(550, "5.1.1 no such user"), true, "550 5.1.1"},
		{"552", reply(552, "5.3.4 too big"), true, "552 5.3.4"},
		{"553", reply(553, "mailbox name not allowed"), true, "553"},
		{"554", reply(554, "5.7.1 rejected"), true, "554 5.7.1"},
		{"535", reply(535, "5.7.8 bad credentials"), true, "535 5.7.8"},
		{"network", fmt.Errorf("MAIL FROM: %w", io.EOF), false, ""},
		{"classified already", dispatcher.Permanent("x", errors.New("bad")), true, "x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := classify(tt.err)
			se := dispatcher.Classify(err)
			if se.Permanent != tt.permanent || se.Suppress || se.Code != tt.code || se.RetryAfter != 0 {
				t.Errorf("classify(%v) = permanent %v, suppress %v, code %q, retry after %v; want permanent %v, code %q",
					tt.err, se.Permanent, se.Suppress, se.Code, se.RetryAfter, tt.permanent, tt.code)
			}
			if !errors.Is(err, tt.err) {
				t.Errorf("classify(%v) does not wrap the error", tt.err)
			}
		})
	}
	if classify(nil) != nil {
		t.Error("classify(nil) != nil")
	}
}

func TestMask(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]string{
		"alice@example.com": "a***@example.com",
		"ø@example.dk":      "ø***@example.dk",
		"@example.com":      "***",
		"no-at-sign":        "***",
		"":                  "***",
	} {
		if got := MaskAddress(addr); got != want {
			t.Errorf("MaskAddress(%q) = %q, want %q", addr, got, want)
		}
	}
	text := "550 5.1.1 <bob.smith@example.com>: Recipient address rejected; also carol@ex.org"
	want := "550 5.1.1 <b***@example.com>: Recipient address rejected; also c***@ex.org"
	if got := maskText(text); got != want {
		t.Errorf("maskText(%q) =\n %q, want\n %q", text, got, want)
	}
}

func TestMessageID(t *testing.T) {
	t.Parallel()
	a := messageID("bc_inc1_1.email.r1", "example.com")
	if a != messageID("bc_inc1_1.email.r1", "example.com") {
		t.Error("messageID is not deterministic in the delivery id")
	}
	if a == messageID("bc_inc1_1.email.r2", "example.com") {
		t.Error("two deliveries share a Message-ID")
	}
	if !strings.HasSuffix(a, "@example.com") || len(a) != 32+len("@example.com") {
		t.Errorf("messageID = %q, want 32 hex digits @example.com", a)
	}
	if messageID("", "example.com") == messageID("", "example.com") {
		t.Error("messageID without a delivery id is not random")
	}
}

func TestLanguageTag(t *testing.T) {
	t.Parallel()
	for tag, want := range map[string]bool{
		"de-CH": true, "en": true, "zh-Hant-TW": true, "es-419": true,
		"": false, "de CH": false, "de-CH\r\nBcc: x@y.z": false, "-de": false, "de_CH": false,
	} {
		if got := isLanguageTag(tag); got != want {
			t.Errorf("isLanguageTag(%q) = %v, want %v", tag, got, want)
		}
	}
}
