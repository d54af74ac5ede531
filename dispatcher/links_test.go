package dispatcher_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

func TestLinkSigner(t *testing.T) {
	t.Parallel()
	l := dispatcher.LinkSigner{Secret: []byte("secret-one-secret-one-secret-one")}
	for _, rid := range []string{"cust-1", "merchant.shop@zh", "a:b+c"} {
		tok := l.Token(dispatcher.ChannelEmail, rid)
		ch, got, err := l.Verify(tok)
		if err != nil || ch != dispatcher.ChannelEmail || got != rid {
			t.Errorf("Verify(Token(%q)) = %s %q %v", rid, ch, got, err)
		}
	}
	tok := l.Token(dispatcher.ChannelEmail, "cust-1")
	other := dispatcher.LinkSigner{Secret: []byte("secret-two-secret-two-secret-two")}
	bad := []string{
		"", ".", "abc", tok + "x", tok[1:], tok[:len(tok)-1],
		other.Token(dispatcher.ChannelEmail, "cust-1"),
		// Another recipient's payload with this token's MAC.
		l.Token(dispatcher.ChannelEmail, "cust-2")[:len("ZW1haWwAY3VzdC0y")] + tok[len("ZW1haWwAY3VzdC0x"):],
	}
	for _, b := range bad {
		if _, _, err := l.Verify(b); !errors.Is(err, dispatcher.ErrBadToken) {
			t.Errorf("Verify(%q) = %v, want ErrBadToken", b, err)
		}
	}
	if _, _, err := (dispatcher.LinkSigner{}).Verify(tok); !errors.Is(err, dispatcher.ErrBadToken) {
		t.Error("a signer without a secret accepted a token")
	}
}

func FuzzLinkVerify(f *testing.F) {
	l := dispatcher.LinkSigner{Secret: []byte("fuzz-secret")}
	f.Add(l.Token(dispatcher.ChannelEmail, "cust-1"))
	f.Add("ZW1haWwAY3VzdC0x.AAAA")
	f.Fuzz(func(t *testing.T, tok string) {
		ch, rid, err := l.Verify(tok)
		if err == nil && l.Token(ch, rid) != tok {
			t.Fatalf("Verify accepted %q, which is not the token it would issue (%q)", tok, l.Token(ch, rid))
		}
	})
}

// TestLinkSignerStrict: a token verifies only as Token wrote it: none of
// the other 63 last characters (base64 leaves unused bits), no trailing
// line break or padding.
func TestLinkSignerStrict(t *testing.T) {
	t.Parallel()
	l := dispatcher.LinkSigner{Secret: []byte("secret-one-secret-one-secret-one")}
	tok := l.Token(dispatcher.ChannelEmail, "cust-1")
	if _, _, err := l.Verify(tok); err != nil {
		t.Fatalf("the token itself: %v", err)
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for _, c := range alphabet {
		if string(c) == tok[len(tok)-1:] {
			continue
		}
		if _, _, err := l.Verify(tok[:len(tok)-1] + string(c)); err == nil {
			t.Errorf("last character %q instead of %q verifies", c, tok[len(tok)-1:])
		}
	}
	for _, bad := range []string{tok + "\n", tok + "\r\n", "\n" + tok, tok + "=", strings.Replace(tok, ".", "\n.", 1)} {
		if _, _, err := l.Verify(bad); err == nil {
			t.Errorf("%q verifies", bad)
		}
	}
}
