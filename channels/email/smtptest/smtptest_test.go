package smtptest_test

import (
	"crypto/tls"
	"errors"
	"strings"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/tocsin-dev/tocsin/channels/email/smtptest"
)

func tlsConfig(srv *smtptest.Server) *tls.Config {
	cfg := srv.TLSConfig.Clone()
	cfg.ServerName = srv.Host
	return cfg
}

// wantCode checks that err is an SMTP reply with code and enhanced code.
func wantCode(t *testing.T, what string, err error, code int, enhanced smtp.EnhancedCode) {
	t.Helper()
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != code || se.EnhancedCode != enhanced {
		t.Errorf("%s: %v, want %d %v", what, err, code, enhanced)
	}
}

func send(c *smtp.Client, from, to, body string) error {
	if err := c.Mail(from, nil); err != nil {
		return err
	}
	if err := c.Rcpt(to, nil); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte(body)); err != nil {
		return err
	}
	return w.Close()
}

func TestRequiresTLSThenAuth(t *testing.T) {
	t.Parallel()
	srv := smtptest.New(t, smtptest.WithAuth("u", "p"))
	c, err := smtp.Dial(srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := c.Extension("AUTH"); ok {
		t.Error("AUTH offered before STARTTLS")
	}
	wantCode(t, "MAIL before STARTTLS", c.Mail("a@example.com", nil), 530, smtp.EnhancedCode{5, 7, 0})

	c2, err := smtp.DialStartTLS(srv.Addr, tlsConfig(srv))
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	wantCode(t, "MAIL before AUTH", c2.Mail("a@example.com", nil), 530, smtp.EnhancedCode{5, 7, 0})
	wantCode(t, "AUTH with a wrong password", c2.Auth(sasl.NewPlainClient("", "u", "wrong")), 535, smtp.EnhancedCode{5, 7, 8})
	if err := c2.Auth(sasl.NewPlainClient("", "u", "p")); err != nil {
		t.Fatalf("AUTH: %v", err)
	}
	if err := send(c2, "a@example.com", "b@example.com", "Subject: hi\r\n\r\nhello\r\n"); err != nil {
		t.Fatal(err)
	}
	got := srv.Messages()
	if len(got) != 1 || got[0].From != "a@example.com" || len(got[0].To) != 1 || got[0].To[0] != "b@example.com" ||
		!got[0].TLS || got[0].User != "u" || !strings.Contains(string(got[0].Data), "hello") {
		t.Errorf("Messages() = %+v", got)
	}
	if n := srv.Connections(); n != 2 {
		t.Errorf("Connections() = %d, want 2", n)
	}
}

func TestScriptedReplies(t *testing.T) {
	t.Parallel()
	srv := smtptest.New(t, smtptest.WithoutSTARTTLS())
	c, err := smtp.Dial(srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	srv.RejectRcpt("Unknown@Example.com", 550, "5.1.1", "No such user")
	srv.RejectRcpt("bare@example.com", 553, "", "Mailbox name not allowed")
	srv.FailNext(1, 451, "4.3.0", "Try again")
	wantCode(t, "RejectRcpt", send(c, "a@example.com", "unknown@example.com", "x\r\n"), 550, smtp.EnhancedCode{5, 1, 1})
	c.Reset()
	wantCode(t, "RejectRcpt without enhanced code", send(c, "a@example.com", "bare@example.com", "x\r\n"), 553, smtp.EnhancedCodeNotSet) // the client's zero value: none on the wire
	c.Reset()
	wantCode(t, "FailNext", send(c, "a@example.com", "b@example.com", "x\r\n"), 451, smtp.EnhancedCode{4, 3, 0})
	if err := send(c, "a@example.com", "b@example.com", "x\r\n"); err != nil {
		t.Errorf("after FailNext(1): %v", err)
	}
	if n := len(srv.Messages()); n != 1 {
		t.Errorf("%d messages kept, want the one accepted", n)
	}
}

func TestImplicitTLS(t *testing.T) {
	t.Parallel()
	srv := smtptest.New(t, smtptest.WithImplicitTLS())
	c, err := smtp.DialTLS(srv.Addr, tlsConfig(srv))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := send(c, "a@example.com", "b@example.com", "x\r\n"); err != nil {
		t.Fatal(err)
	}
	if got := srv.Messages(); len(got) != 1 || !got[0].TLS {
		t.Errorf("Messages() = %+v, want one over TLS", got)
	}
}
