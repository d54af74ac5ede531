package email_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/textproto"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/channels/channeltest"
	"github.com/tocsin-dev/tocsin/channels/email"
	"github.com/tocsin-dev/tocsin/channels/email/smtptest"
	"github.com/tocsin-dev/tocsin/dispatcher"
)

const (
	user     = "tocsin"
	password = "pa55-Wörd-never-shown"
	from     = "Tocsin Störungsmeldung <alerts@status.example.com>"
)

var quiet = slog.New(slog.DiscardHandler)

// logBuffer collects a sender's logs.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// setup is a server requiring STARTTLS and AUTH, and a sender for it.
type setup struct {
	srv  *smtptest.Server
	s    *email.Sender
	logs *logBuffer
}

// newSetup starts a server with opts (default: WithAuth(user, password))
// and a sender whose Config edit may change.
func newSetup(t *testing.T, edit func(*email.Config), opts ...smtptest.Option) *setup {
	t.Helper()
	if opts == nil {
		opts = []smtptest.Option{smtptest.WithAuth(user, password)}
	}
	srv := smtptest.New(t, opts...)
	logs := &logBuffer{}
	cfg := email.Config{
		Host:      srv.Host,
		Port:      srv.Port,
		Username:  user,
		Password:  password,
		From:      from,
		HELO:      "tocsin.test",
		Timeout:   5 * time.Second,
		TLSConfig: srv.TLSConfig,
		Logger:    slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if edit != nil {
		edit(&cfg)
	}
	s, err := email.New(cfg)
	if err != nil {
		t.Fatalf("email.New: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return &setup{srv: srv, s: s, logs: logs}
}

func msg(i int) *dispatcher.Message {
	id := fmt.Sprintf("rcp_%d", i)
	return &dispatcher.Message{
		DeliveryID:  dispatcher.DeliveryID("bc_test_1", dispatcher.ChannelEmail, id),
		BroadcastID: "bc_test_1",
		IncidentID:  "inc_test",
		Seq:         1,
		Channel:     dispatcher.ChannelEmail,
		Recipient:   &dispatcher.Recipient{ID: id, Email: fmt.Sprintf("customer%d@example.com", i)},
		Locale:      "de-CH",
		Title:       fmt.Sprintf("Störung %d", i),
		Body:        fmt.Sprintf("Zahlungen schlagen fehl. [%d]", i),
		Attempt:     1,
	}
}

func msgs(from, n int) []*dispatcher.Message {
	out := make([]*dispatcher.Message, n)
	for i := range out {
		out[i] = msg(from + i)
	}
	return out
}

// parsed is a received mail taken apart.
type parsed struct {
	header    mail.Header
	mediaType string
	plain     string
	html      string
	parts     []part
}

type part struct {
	contentType string
	encoding    string
	body        string // decoded
}

// parse takes a mail apart as a mail client would.
func parse(data []byte) (*parsed, error) {
	m, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	p := &parsed{header: m.Header}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil {
		return nil, fmt.Errorf("Content-Type: %w", err)
	}
	p.mediaType = mt
	if !strings.HasPrefix(mt, "multipart/") {
		body, err := decode(m.Header.Get("Content-Transfer-Encoding"), m.Body)
		if err != nil {
			return nil, err
		}
		// SMTP ends the data with a line break of its own.
		body = strings.TrimSuffix(body, "\n")
		p.parts = append(p.parts, part{m.Header.Get("Content-Type"), m.Header.Get("Content-Transfer-Encoding"), body})
	} else {
		mr := multipart.NewReader(m.Body, params["boundary"])
		for {
			raw, err := mr.NextRawPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, err
			}
			body, err := decode(raw.Header.Get("Content-Transfer-Encoding"), raw)
			if err != nil {
				return nil, err
			}
			p.parts = append(p.parts, part{raw.Header.Get("Content-Type"), raw.Header.Get("Content-Transfer-Encoding"), body})
		}
	}
	for _, pt := range p.parts {
		switch ct, _, _ := mime.ParseMediaType(pt.contentType); ct {
		case "text/plain":
			p.plain = pt.body
		case "text/html":
			p.html = pt.body
		}
	}
	return p, nil
}

func decode(cte string, r io.Reader) (string, error) {
	if strings.EqualFold(cte, "quoted-printable") {
		r = quotedprintable.NewReader(r)
	}
	b, err := io.ReadAll(r)
	// Mail is CRLF on the wire; the messages were written with LF.
	return strings.ReplaceAll(string(b), "\r\n", "\n"), err
}

func mustParse(t *testing.T, data []byte) *parsed {
	t.Helper()
	p, err := parse(data)
	if err != nil {
		t.Fatalf("parsing the mail: %v\n%s", err, data)
	}
	return p
}

func decodeHeader(t *testing.T, h mail.Header, key string) string {
	t.Helper()
	v, err := new(mime.WordDecoder).DecodeHeader(h.Get(key))
	if err != nil {
		t.Fatalf("decoding %s %q: %v", key, h.Get(key), err)
	}
	return v
}

// provider is the conformance suite's view of an smtptest server.
type provider struct{ srv *smtptest.Server }

func (p provider) Received() []channeltest.Received {
	var out []channeltest.Received
	for _, r := range p.srv.Messages() {
		got := channeltest.Received{}
		if len(r.To) == 1 {
			got.RecipientID = r.To[0]
		}
		m, err := parse(r.Data)
		if err != nil {
			got.Body = "unparseable mail: " + err.Error()
		} else {
			got.Body = m.plain
			got.ProviderID = m.header.Get("Message-ID")
		}
		out = append(out, got)
	}
	return out
}

func (p provider) FailNext(kind channeltest.FailKind, n int) error {
	switch kind {
	case channeltest.FailTransient:
		p.srv.FailNext(n, 451, "4.3.0", "Temporary local problem, try again")
	case channeltest.FailPermanent:
		p.srv.FailNext(n, 550, "5.1.1", "No such user")
	default:
		return fmt.Errorf("SMTP has no rate-limit reply with a retry delay: %w", errors.ErrUnsupported)
	}
	return nil
}

func TestConformance(t *testing.T) {
	t.Parallel()
	channeltest.Run(t, channeltest.Harness{
		Channel: dispatcher.ChannelEmail,
		NewFunc: func(t *testing.T) (dispatcher.Sender, channeltest.Provider) {
			st := newSetup(t, nil)
			return st.s, provider{st.srv}
		},
		RecipientFunc: func(i int) *dispatcher.Recipient {
			return &dispatcher.Recipient{Kind: dispatcher.KindCustomer, Email: fmt.Sprintf("customer%d@example.com", i)}
		},
	})
}

func TestMIME(t *testing.T) {
	t.Parallel()
	unsub := func(m *dispatcher.Message) string {
		return "https://status.example.com/v1/unsubscribe/tok_" + m.Recipient.ID
	}
	// The mails are dated by the Sender's clock.
	sent := time.Date(2001, 2, 3, 4, 5, 6, 0, time.FixedZone("CET", 3600))
	st := newSetup(t, func(c *email.Config) {
		c.UnsubscribeURL = unsub
		c.Clock = dispatcher.ClockFunc(func() time.Time { return sent })
	})
	samples := []struct{ locale, title, body string }{
		{"de-CH", "Störung: Zahlungen über die App – Größe, Straße, Übersee", "Zahlungen über die App schlagen fehl.\nNächstes Update um 14:30 Uhr. Grüße"},
		{"fr-CH", "Incident : paiements perturbés — ça avance, à très bientôt. Œuvre, Noël", "Les paiements échouent depuis 13 h 05 ; désolés pour la gêne occasionnée."},
		{"da-DK", "Driftsforstyrrelse på kortbetalinger: æøå ÆØÅ, Århus", "Kortbetalinger fejler i øjeblikket. Æbler, Øresund."},
		{"en-GB", "⚠️ Payments outage 🚨 👩‍💻 🇨🇭 🇩🇰", "Payments are failing 🚨 We will update you by 14:30 ✅"},
		// A long subject is folded over several encoded words.
		{"de-DE", strings.Repeat("Überweisungen und Kartenzahlungen gestört, ", 6), strings.Repeat("Lange Zeile ohne Umbruch äöü ", 20)},
	}
	var in []*dispatcher.Message
	for i, sm := range samples {
		m := msg(i)
		m.Locale, m.Title, m.Body = sm.locale, sm.title, sm.body
		m.HTML = "<p>" + strings.ReplaceAll(sm.body, "\n", "<br>") + "</p>"
		in = append(in, m)
	}
	res := st.s.Send(t.Context(), in)
	for i, r := range res {
		if r.Err != nil || r.Status != dispatcher.StatusSent {
			t.Fatalf("message %d: %+v", i, r)
		}
	}
	got := st.srv.Messages()
	if len(got) != len(in) {
		t.Fatalf("the server has %d messages, want %d", len(got), len(in))
	}
	byTo := map[string]smtptest.Received{}
	for _, r := range got {
		byTo[r.To[0]] = r
	}
	for i, m := range in {
		r, ok := byTo[m.Recipient.Email]
		if !ok {
			t.Fatalf("message %d did not arrive for %s", i, m.Recipient.Email)
		}
		t.Run(m.Locale, func(t *testing.T) {
			if r.From != "alerts@status.example.com" || len(r.To) != 1 || !r.TLS || r.User != user {
				t.Errorf("envelope from %q to %q, TLS %v, user %q; want from alerts@status.example.com, one recipient, over TLS, as %q", r.From, r.To, r.TLS, r.User, user)
			}
			for n, line := range bytes.Split(r.Data, []byte("\r\n")) {
				if len(line) > 998 {
					t.Errorf("line %d is %d bytes long, RFC 5322 allows 998", n, len(line))
				}
				for _, c := range line {
					if c >= 0x80 {
						t.Fatalf("line %d has 8-bit data; headers and bodies must be encoded: %q", n, line)
					}
				}
			}
			p := mustParse(t, r.Data)
			h := p.header
			if p.mediaType != "multipart/alternative" || len(p.parts) != 2 {
				t.Fatalf("Content-Type %q with %d parts, want multipart/alternative with 2", p.mediaType, len(p.parts))
			}
			for _, pt := range p.parts {
				ct, params, _ := mime.ParseMediaType(pt.contentType)
				if !strings.EqualFold(params["charset"], "utf-8") || !strings.EqualFold(pt.encoding, "quoted-printable") {
					t.Errorf("part %s: charset %q, encoding %q; want UTF-8, quoted-printable", ct, params["charset"], pt.encoding)
				}
			}
			if p.plain != m.Body {
				t.Errorf("text/plain part:\n got %q\nwant %q", p.plain, m.Body)
			}
			if p.html != m.HTML {
				t.Errorf("text/html part:\n got %q\nwant %q", p.html, m.HTML)
			}
			if got := decodeHeader(t, h, "Subject"); got != m.Title {
				t.Errorf("Subject decodes to\n %q\nwant %q", got, m.Title)
			}
			fromAddr, err := mail.ParseAddress(h.Get("From"))
			if err != nil || fromAddr.Name != "Tocsin Störungsmeldung" || fromAddr.Address != "alerts@status.example.com" {
				t.Errorf("From %q parses to %v, %v", h.Get("From"), fromAddr, err)
			}
			if to, err := mail.ParseAddress(h.Get("To")); err != nil || to.Address != m.Recipient.Email {
				t.Errorf("To %q, want %s", h.Get("To"), m.Recipient.Email)
			}
			if id := h.Get("Message-ID"); id != res[i].ProviderID || !regexp.MustCompile(`^<[0-9a-f]{32}@status\.example\.com>$`).MatchString(id) {
				t.Errorf("Message-ID %q, ProviderID %q; want the same <32 hex digits@status.example.com>", id, res[i].ProviderID)
			}
			if date, err := h.Date(); err != nil || !date.Equal(sent) {
				t.Errorf("Date %q (%v, %v), want the clock's %v", h.Get("Date"), date, err, sent)
			}
			want := map[string]string{
				"Auto-Submitted":        "auto-generated",
				"Content-Language":      m.Locale,
				"List-Unsubscribe":      "<" + unsub(m) + ">",
				"List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
				"X-Tocsin-Delivery":     m.DeliveryID,
				"MIME-Version":          "1.0",
			}
			for k, v := range want {
				if len(h[textproto.CanonicalMIMEHeaderKey(k)]) != 1 || h.Get(k) != v {
					t.Errorf("%s: %q, want exactly %q", k, h[k], v)
				}
			}
		})
	}
}

func TestMIMEPlainOnly(t *testing.T) {
	t.Parallel()
	st := newSetup(t, func(c *email.Config) {
		c.UnsubscribeURL = func(*dispatcher.Message) string { return "" }
	})
	m := msg(1)
	if r := st.s.Send(t.Context(), []*dispatcher.Message{m})[0]; r.Err != nil {
		t.Fatal(r.Err)
	}
	p := mustParse(t, st.srv.Messages()[0].Data)
	if p.mediaType != "text/plain" || p.plain != m.Body {
		t.Errorf("without HTML: %s with text %q, want text/plain %q", p.mediaType, p.plain, m.Body)
	}
	for _, k := range []string{"List-Unsubscribe", "List-Unsubscribe-Post"} {
		if v, ok := p.header[k]; ok {
			t.Errorf("%s: %q without an unsubscribe URL", k, v)
		}
	}
}

func TestHeaderInjection(t *testing.T) {
	t.Parallel()
	st := newSetup(t, func(c *email.Config) {
		c.UnsubscribeURL = func(*dispatcher.Message) string {
			return "https://status.example.com/u/x>\r\nBcc: <evil@example.org"
		}
	})
	m := msg(1)
	m.Title = "Outage\r\nBcc: evil@example.org"
	m.Locale = "de\r\nBcc: evil@example.org"
	if r := st.s.Send(t.Context(), []*dispatcher.Message{m})[0]; r.Err != nil {
		t.Fatalf("a bad unsubscribe URL or locale stopped the message: %v", r.Err)
	}
	r := st.srv.Messages()[0]
	p := mustParse(t, r.Data)
	if _, ok := p.header["Bcc"]; ok || len(r.To) != 1 {
		t.Errorf("headers were injected: Bcc %q, envelope to %q", p.header["Bcc"], r.To)
	}
	if got := decodeHeader(t, p.header, "Subject"); got != m.Title {
		t.Errorf("Subject decodes to %q, want %q", got, m.Title)
	}
	for _, k := range []string{"Content-Language", "List-Unsubscribe", "List-Unsubscribe-Post"} {
		if v, ok := p.header[k]; ok {
			t.Errorf("%s: %q from a value that is not fit for it", k, v)
		}
	}
	if !strings.Contains(st.logs.String(), "without List-Unsubscribe") {
		t.Errorf("a bad unsubscribe URL was dropped silently; logs:\n%s", st.logs)
	}
}

func TestMessageIDStableAcrossAttempts(t *testing.T) {
	t.Parallel()
	st := newSetup(t, nil)
	first, retry, other := msg(1), msg(1), msg(2)
	retry.Attempt = 2
	res := st.s.Send(t.Context(), []*dispatcher.Message{first, retry, other})
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("message %d: %v", i, r.Err)
		}
	}
	if res[0].ProviderID != res[1].ProviderID {
		t.Errorf("a retry changed the Message-ID: %q then %q", res[0].ProviderID, res[1].ProviderID)
	}
	if res[0].ProviderID == res[2].ProviderID {
		t.Errorf("two deliveries share the Message-ID %q", res[0].ProviderID)
	}
}

func TestMessageIDDomain(t *testing.T) {
	t.Parallel()
	st := newSetup(t, func(c *email.Config) { c.MessageIDDomain = "mail.tocsin.example" })
	r := st.s.Send(t.Context(), []*dispatcher.Message{msg(1)})[0]
	if r.Err != nil || !strings.HasSuffix(r.ProviderID, "@mail.tocsin.example>") {
		t.Errorf("ProviderID %q, err %v; want a Message-ID @mail.tocsin.example", r.ProviderID, r.Err)
	}
}

func wantAllSent(t *testing.T, res []dispatcher.Result) {
	t.Helper()
	for i, r := range res {
		if r.Err != nil || r.Status != dispatcher.StatusSent {
			t.Errorf("message %d: status %q, err %v; want sent", i, r.Status, r.Err)
		}
	}
}

// wantEachOnce checks that the server holds each of in exactly once.
func wantEachOnce(t *testing.T, srv *smtptest.Server, in []*dispatcher.Message) {
	t.Helper()
	count := map[string]int{}
	for _, r := range srv.Messages() {
		for _, to := range r.To {
			count[to]++
		}
	}
	for i, m := range in {
		if n := count[m.Recipient.Email]; n != 1 {
			t.Errorf("message %d arrived %d times, want once", i, n)
		}
	}
	if got := len(srv.Messages()); got != len(in) {
		t.Errorf("the server has %d messages, want %d", got, len(in))
	}
}

func TestPooling(t *testing.T) {
	t.Parallel()
	st := newSetup(t, func(c *email.Config) { c.PoolSize = 4 })
	in := msgs(0, 100)
	wantAllSent(t, st.s.Send(t.Context(), in))
	if n := st.srv.Connections(); n < 1 || n > 4 {
		t.Errorf("100 messages over a pool of 4 used %d connections, want 1 to 4", n)
	}
	// The next batch reuses the open connections.
	more := msgs(100, 50)
	wantAllSent(t, st.s.Send(t.Context(), more))
	if n := st.srv.Connections(); n > 4 {
		t.Errorf("two batches over a pool of 4 used %d connections, want at most 4", n)
	}
	wantEachOnce(t, st.srv, append(in, more...))
}

func TestPoolSharedByConcurrentSends(t *testing.T) {
	t.Parallel()
	st := newSetup(t, func(c *email.Config) { c.PoolSize = 3 })
	var wg sync.WaitGroup
	var all []*dispatcher.Message
	results := make([][]dispatcher.Result, 6)
	for g := range results {
		batch := msgs(g*20, 20)
		all = append(all, batch...)
		wg.Go(func() { results[g] = st.s.Send(context.Background(), batch) })
	}
	wg.Wait()
	for _, res := range results {
		wantAllSent(t, res)
	}
	if n := st.srv.Connections(); n > 3 {
		t.Errorf("6 concurrent batches over a pool of 3 used %d connections, want at most 3", n)
	}
	wantEachOnce(t, st.srv, all)
}

func TestConnectionDroppedMidBatch(t *testing.T) {
	t.Parallel()
	st := newSetup(t, func(c *email.Config) { c.PoolSize = 4 })
	warm := msgs(0, 8)
	wantAllSent(t, st.s.Send(t.Context(), warm))
	opened := st.srv.Connections()
	st.srv.DropAfter(30) // after 30 more messages, a connection goes away
	in := msgs(8, 100)
	wantAllSent(t, st.s.Send(t.Context(), in))
	wantEachOnce(t, st.srv, append(warm, in...))
	// The warm-up may not have needed all 4 pooled connections (under load,
	// fewer serve 8 messages), so the batch may open the rest; beyond the
	// pool, exactly the dropped one is redialled, not a storm.
	if n := st.srv.Connections(); n < opened+1 || n > 4+1 {
		t.Errorf("%d connections after one was dropped (%d before), want one redialled and at most the pool of 4 plus it", n, opened)
	}
}

func TestStalePooledConnection(t *testing.T) {
	t.Parallel()
	st := newSetup(t, func(c *email.Config) { c.PoolSize = 1 })
	wantAllSent(t, st.s.Send(t.Context(), msgs(0, 1)))
	st.srv.DropAfter(0) // the server closes the idle connection
	wantAllSent(t, st.s.Send(t.Context(), msgs(1, 1)))
	wantEachOnce(t, st.srv, msgs(0, 2))
	if n := st.srv.Connections(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

func TestReplyLostAfterData(t *testing.T) {
	t.Parallel()
	st := newSetup(t, func(c *email.Config) { c.PoolSize = 1 })
	wantAllSent(t, st.s.Send(t.Context(), msgs(0, 1)))
	st.srv.LoseReplies(1)
	res := st.s.Send(t.Context(), msgs(1, 3))
	se := dispatcher.Classify(res[0].Err)
	if res[0].Err == nil || se.Permanent || se.Suppress || res[0].Status == dispatcher.StatusSent {
		t.Fatalf("a message whose reply was lost: %+v; want a transient failure", res[0])
	}
	if !strings.Contains(res[0].Err.Error(), "may have it") {
		t.Errorf("error %q does not say the server may have the message", res[0].Err)
	}
	wantAllSent(t, res[1:])
	// The message is at the server once: not resent internally.
	wantEachOnce(t, st.srv, msgs(0, 4))
}

func TestIdleConnectionsClosed(t *testing.T) {
	t.Parallel()
	st := newSetup(t, func(c *email.Config) { c.IdleTimeout = 50 * time.Millisecond })
	wantAllSent(t, st.s.Send(t.Context(), msgs(0, 8)))
	opened := st.srv.Connections()
	waitFor(t, "idle connections to close", func() bool { return st.srv.Active() == 0 })
	wantAllSent(t, st.s.Send(t.Context(), msgs(8, 1)))
	if n := st.srv.Connections(); n != opened+1 {
		t.Errorf("%d connections, want %d and one new after the idle ones closed", n, opened)
	}
}

func TestClose(t *testing.T) {
	t.Parallel()
	st := newSetup(t, nil)
	wantAllSent(t, st.s.Send(t.Context(), msgs(0, 4)))
	if err := st.s.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "Close to close the connections", func() bool { return st.srv.Active() == 0 })
	r := st.s.Send(t.Context(), msgs(4, 1))[0]
	if se := dispatcher.Classify(r.Err); r.Err == nil || se.Permanent || !errors.Is(r.Err, email.ErrClosed) {
		t.Errorf("Send after Close: %+v, want a transient ErrClosed", r)
	}
	if err := st.s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// waitFor is channeltest.WaitFor.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	channeltest.WaitFor(t, what, cond)
}

func TestReplyClassification(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		arm       func(srv *smtptest.Server, to string)
		permanent bool
		code      string
		text      string
	}{
		{"451 at DATA", func(s *smtptest.Server, _ string) { s.FailNext(1, 451, "4.3.0", "Temporary local problem") }, false, "451 4.3.0", "Temporary local problem"},
		{"452 mailbox full", func(s *smtptest.Server, to string) { s.RejectRcpt(to, 452, "4.2.2", "Mailbox full") }, false, "452 4.2.2", "Mailbox full"},
		{"450 mailbox busy", func(s *smtptest.Server, to string) { s.RejectRcpt(to, 450, "4.2.1", "Mailbox busy") }, false, "450 4.2.1", "Mailbox busy"},
		{"421 closing", func(s *smtptest.Server, _ string) { s.FailNext(1, 421, "4.4.5", "Too busy") }, false, "421 4.4.5", "Too busy"},
		{"550 unknown user", func(s *smtptest.Server, to string) { s.RejectRcpt(to, 550, "5.1.1", "No such user") }, true, "550 5.1.1", "No such user"},
		{"553 without enhanced code", func(s *smtptest.Server, to string) { s.RejectRcpt(to, 553, "", "Mailbox name not allowed") }, true, "553", "Mailbox name not allowed"},
		{"552 too big", func(s *smtptest.Server, _ string) { s.FailNext(1, 552, "5.3.4", "Message too big") }, true, "552 5.3.4", "Message too big"},
		{"554 rejected", func(s *smtptest.Server, _ string) { s.FailNext(1, 554, "5.7.1", "Message refused") }, true, "554 5.7.1", "Message refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st := newSetup(t, func(c *email.Config) { c.PoolSize = 1 })
			in := msgs(0, 3)
			wantAllSent(t, st.s.Send(t.Context(), in[:1]))
			tt.arm(st.srv, in[1].Recipient.Email)
			res := st.s.Send(t.Context(), in[1:])
			wantAllSent(t, res[1:])
			r := res[0]
			if r.Err == nil || r.Status != dispatcher.StatusFailed {
				t.Fatalf("result %+v, want failed", r)
			}
			se := dispatcher.Classify(r.Err)
			if se.Permanent != tt.permanent || se.Suppress || se.Code != tt.code {
				t.Errorf("error %q: permanent %v, suppress %v, code %q; want permanent %v, code %q", r.Err, se.Permanent, se.Suppress, se.Code, tt.permanent, tt.code)
			}
			if !strings.Contains(r.Err.Error(), tt.text) || !strings.Contains(r.Err.Error(), tt.code) {
				t.Errorf("error %q does not carry the server's reply %q", r.Err, tt.code+" "+tt.text)
			}
			if strings.Contains(r.Err.Error(), in[1].Recipient.Email) {
				t.Errorf("error %q has the full address", r.Err)
			}
			wantEachOnce(t, st.srv, []*dispatcher.Message{in[0], in[2]})
			want := 1
			if tt.code[:3] == "421" {
				want = 2 // the server said it closes the connection
			}
			if n := st.srv.Connections(); n != want {
				t.Errorf("%d connections, want %d", n, want)
			}
		})
	}
}

// wantAllFailed checks that every result failed with errors classified
// alike, and returns the first.
func wantAllFailed(t *testing.T, res []dispatcher.Result, permanent bool) error {
	t.Helper()
	for i, r := range res {
		if r.Err == nil || r.Status != dispatcher.StatusFailed {
			t.Fatalf("message %d: %+v, want failed", i, r)
		}
		if se := dispatcher.Classify(r.Err); se.Permanent != permanent || se.Suppress {
			t.Errorf("message %d: error %q permanent %v, want %v", i, r.Err, se.Permanent, permanent)
		}
		if strings.Contains(r.Err.Error(), password) {
			t.Errorf("message %d: the error shows the password: %q", i, r.Err)
		}
	}
	return res[0].Err
}

func TestAuthFailure(t *testing.T) {
	t.Parallel()
	st := newSetup(t, func(c *email.Config) { c.Password = "wrong-" + password })
	err := wantAllFailed(t, st.s.Send(t.Context(), msgs(0, 5)), true)
	if se := dispatcher.Classify(err); se.Code != "535 5.7.8" {
		t.Errorf("code %q, want 535 5.7.8", se.Code)
	}
	for _, want := range []string{"authentication failed", "configuration problem", "535 5.7.8"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if n := len(st.srv.Messages()); n != 0 {
		t.Errorf("%d messages arrived without authentication", n)
	}
	if strings.Contains(st.logs.String(), password) {
		t.Errorf("the logs show the password:\n%s", st.logs)
	}
}

func TestNoAuthOffered(t *testing.T) {
	t.Parallel()
	// The server does not offer AUTH, the sender has credentials.
	st := newSetup(t, func(c *email.Config) { c.TLS = email.TLSNone }, smtptest.WithoutSTARTTLS())
	err := wantAllFailed(t, st.s.Send(t.Context(), msgs(0, 2)), true)
	if !strings.Contains(err.Error(), "offers no AUTH") {
		t.Errorf("error %q does not say the server offers no AUTH", err)
	}
}

func TestStartTLSRequired(t *testing.T) {
	t.Parallel()
	st := newSetup(t, func(c *email.Config) { c.Username, c.Password = "", "" }, smtptest.WithoutSTARTTLS())
	err := wantAllFailed(t, st.s.Send(t.Context(), msgs(0, 3)), true)
	if !errors.Is(err, email.ErrNoStartTLS) || !strings.Contains(err.Error(), "configuration problem") {
		t.Errorf("error %q, want ErrNoStartTLS saying it is a configuration problem", err)
	}
	if n := len(st.srv.Messages()); n != 0 {
		t.Errorf("%d messages were sent in the clear", n)
	}
}

func TestTLSNone(t *testing.T) {
	t.Parallel()
	st := newSetup(t, func(c *email.Config) { c.TLS = email.TLSNone }, smtptest.WithoutSTARTTLS(), smtptest.WithAuth(user, password))
	in := msgs(0, 2)
	wantAllSent(t, st.s.Send(t.Context(), in))
	wantEachOnce(t, st.srv, in)
	if r := st.srv.Messages()[0]; r.TLS || r.User != user {
		t.Errorf("TLS %v, user %q; want a plain session authenticated as %q", r.TLS, r.User, user)
	}
}

func TestServerRefusesMailWithoutTLS(t *testing.T) {
	t.Parallel()
	// TLS none against a server that wants STARTTLS first: 530 5.7.0.
	st := newSetup(t, func(c *email.Config) { c.TLS, c.Username, c.Password = email.TLSNone, "", "" })
	err := wantAllFailed(t, st.s.Send(t.Context(), msgs(0, 1)), true)
	if se := dispatcher.Classify(err); se.Code != "530 5.7.0" {
		t.Errorf("code %q, want 530 5.7.0", se.Code)
	}
}

func TestImplicitTLS(t *testing.T) {
	t.Parallel()
	st := newSetup(t, func(c *email.Config) { c.TLS = email.TLSImplicit }, smtptest.WithImplicitTLS(), smtptest.WithAuth(user, password))
	in := msgs(0, 3)
	wantAllSent(t, st.s.Send(t.Context(), in))
	wantEachOnce(t, st.srv, in)
	if r := st.srv.Messages()[0]; !r.TLS || r.User != user {
		t.Errorf("TLS %v, user %q; want TLS, authenticated", r.TLS, r.User)
	}
}

func TestUntrustedCertificate(t *testing.T) {
	t.Parallel()
	st := newSetup(t, func(c *email.Config) { c.TLSConfig = nil })
	err := wantAllFailed(t, st.s.Send(t.Context(), msgs(0, 2)), false)
	if !strings.Contains(err.Error(), "certificate") {
		t.Errorf("error %q does not name the certificate", err)
	}
}

func TestConnectionRefused(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	s, err := email.New(email.Config{Host: "127.0.0.1", Port: port, From: from, Username: user, Password: password, Timeout: 2 * time.Second, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	wantAllFailed(t, s.Send(t.Context(), msgs(0, 10)), false)
}

// blackhole accepts connections and never says a word.
func blackhole(t *testing.T) (host string, port int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	a := ln.Addr().(*net.TCPAddr)
	return a.IP.String(), a.Port
}

func TestCancelWhileServerIsSilent(t *testing.T) {
	t.Parallel()
	host, port := blackhole(t)
	s, err := email.New(email.Config{Host: host, Port: port, From: from, Timeout: time.Minute, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(100*time.Millisecond, cancel)
	done := make(chan []dispatcher.Result)
	go func() { done <- s.Send(ctx, msgs(0, 20)) }()
	select {
	case res := <-done:
		err := wantAllFailed(t, res, false)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("error %q does not say the send was cancelled", err)
		}
	case <-time.After(channeltest.Timeout):
		t.Fatal("Send did not return after its context was cancelled")
	}
}

func TestTimeout(t *testing.T) {
	t.Parallel()
	host, port := blackhole(t)
	s, err := email.New(email.Config{Host: host, Port: port, From: from, Timeout: 200 * time.Millisecond, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	wantAllFailed(t, s.Send(t.Context(), msgs(0, 3)), false)
	if d := time.Since(start); d > channeltest.Timeout {
		t.Errorf("Send took %v against a silent server with a 200ms timeout", d)
	}
}

func TestCancelMidBatch(t *testing.T) {
	t.Parallel()
	st := newSetup(t, nil)
	in := msgs(0, 2000)
	res, at := cancelMidSend(t, st, in, "the first messages to arrive", func() bool { return len(st.srv.Messages()) >= 20 }, nil)
	sent, failed := 0, 0
	for i, r := range res {
		n := at[in[i].Recipient.Email]
		switch {
		case n > 1:
			t.Errorf("message %d arrived %d times", i, n)
		case r.Err == nil && n != 1:
			t.Errorf("message %d: sent, but not at the server", i)
		case r.Err == nil:
			sent++
		default:
			failed++
			if se := dispatcher.Classify(r.Err); se.Permanent || se.Suppress {
				t.Errorf("message %d: %v, want a transient error", i, r.Err)
			}
		}
	}
	if failed == 0 {
		t.Fatal("every message was sent before the cancel took effect; send more")
	}
	t.Logf("%d sent, %d not sent after the cancel", sent, failed)
	// The pool still works.
	wantAllSent(t, st.s.Send(t.Context(), msgs(5000, 3)))
}

// TestCancelDuringTransaction: a Send cancelled while messages wait for
// the server's reply to their DATA (a worker stopping) does not cut those
// transactions off: the server has the messages already, and a message
// whose reply was cut off would be sent again by the run that takes the
// batch over. They are sent; the messages not started are not.
func TestCancelDuringTransaction(t *testing.T) {
	t.Parallel()
	st := newSetup(t, nil)
	release := st.srv.HoldReplies()
	defer release()
	in := msgs(0, 20)
	res, at := cancelMidSend(t, st, in, "a message waiting for the reply to its DATA", func() bool { return st.srv.Held() >= 1 }, release)
	sent := 0
	for i, r := range res {
		switch n := at[in[i].Recipient.Email]; {
		case n > 0 && r.Err != nil:
			t.Errorf("message %d: the server has it, the result is %v: a take-over would send it again", i, r.Err)
		case n == 0 && r.Err == nil:
			t.Errorf("message %d: sent, but not at the server", i)
		case n > 0:
			sent++
		}
	}
	if sent == 0 || sent == len(in) {
		t.Errorf("%d of %d sent, want those in their transaction at the cancel and not the rest", sent, len(in))
	}
}

// cancelMidSend sends in on st, cancels the Send once cond holds (what
// names it), then calls after (if any), and returns the Send's results
// and how many messages the server got for each address.
func cancelMidSend(t *testing.T, st *setup, in []*dispatcher.Message, what string, cond func() bool, after func()) ([]dispatcher.Result, map[string]int) {
	t.Helper()
	res := channeltest.CancelDuring(t, what, cond, after, 0, func(ctx context.Context) []dispatcher.Result { return st.s.Send(ctx, in) })
	at := map[string]int{}
	for _, r := range st.srv.Messages() {
		at[r.To[0]]++
	}
	return res, at
}

func TestCancelledBeforeSend(t *testing.T) {
	t.Parallel()
	st := newSetup(t, nil)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	wantAllFailed(t, st.s.Send(ctx, msgs(0, 10)), false)
	if n := st.srv.Connections(); n != 0 {
		t.Errorf("a cancelled Send opened %d connections", n)
	}
	// The sender still works.
	wantAllSent(t, st.s.Send(t.Context(), msgs(10, 2)))
}

func TestBadRecipients(t *testing.T) {
	t.Parallel()
	st := newSetup(t, nil)
	noEmail, invalid, ok := msg(1), msg(2), msg(3)
	noEmail.Recipient.Email = ""
	invalid.Recipient.Email = "not an address"
	res := st.s.Send(t.Context(), []*dispatcher.Message{noEmail, invalid, ok, {Recipient: nil}})
	for _, i := range []int{0, 1, 3} {
		if se := dispatcher.Classify(res[i].Err); res[i].Err == nil || !se.Permanent {
			t.Errorf("message %d: %+v, want a permanent failure", i, res[i])
		}
	}
	wantAllSent(t, res[2:3])
	wantEachOnce(t, st.srv, []*dispatcher.Message{ok})
}

func TestLogsMaskAddressesAndHideThePassword(t *testing.T) {
	t.Parallel()
	st := newSetup(t, nil)
	in := msgs(0, 3)
	st.srv.RejectRcpt(in[1].Recipient.Email, 550, "5.1.1", "<"+in[1].Recipient.Email+">: Recipient address rejected")
	st.s.Send(t.Context(), in)
	logs := st.logs.String()
	if !strings.Contains(logs, "c***@example.com") || !strings.Contains(logs, in[1].DeliveryID) {
		t.Errorf("logs lack the masked address or the delivery id:\n%s", logs)
	}
	for _, m := range in {
		if strings.Contains(logs, m.Recipient.Email) {
			t.Errorf("logs show the address %s:\n%s", m.Recipient.Email, logs)
		}
	}
	if strings.Contains(logs, password) {
		t.Errorf("logs show the password:\n%s", logs)
	}
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	good := func() email.Config {
		return email.Config{Host: "smtp.example.com", Port: 587, From: from, Username: user, Password: password}
	}
	tests := []struct {
		name string
		edit func(*email.Config)
		want []string // each must appear in the error
	}{
		{"no host", func(c *email.Config) { c.Host = "" }, []string{"Host: is required"}},
		{"url as host", func(c *email.Config) { c.Host = "smtp://smtp.example.com" }, []string{"Host: must be a host name or IP address"}},
		{"port", func(c *email.Config) { c.Port = 70000 }, []string{"Port: must be between 1 and 65535, got 70000"}},
		{"tls mode", func(c *email.Config) { c.TLS = "ssl" }, []string{`TLS: must be starttls, implicit or none, got "ssl"`}},
		{"password in the clear", func(c *email.Config) { c.TLS = email.TLSNone }, []string{"TLS: none would send the credentials in clear"}},
		{"username alone", func(c *email.Config) { c.Password = "" }, []string{"Password: is required with Username"}},
		{"password alone", func(c *email.Config) { c.Username = "" }, []string{"Username: is required with Password"}},
		{"no from", func(c *email.Config) { c.From = "" }, []string{"From: is required with Host"}},
		{"bad from", func(c *email.Config) { c.From = "alerts at example.com" }, []string{"From: must be an address like"}},
		{"helo", func(c *email.Config) { c.HELO = "two words" }, []string{`HELO: must be a single name, got "two words"`}},
		{"pool size", func(c *email.Config) { c.PoolSize = -1 }, []string{"PoolSize: must be between 1 and 64, got -1"}},
		{"timeout", func(c *email.Config) { c.Timeout = -time.Second }, []string{"Timeout: must be greater than 0, got -1s"}},
		{"idle timeout", func(c *email.Config) { c.IdleTimeout = -time.Second }, []string{"IdleTimeout: must not be negative"}},
		{"message id domain", func(c *email.Config) { c.MessageIDDomain = "a b" }, []string{"MessageIDDomain: must be a domain"}},
		{"every problem at once", func(c *email.Config) { c.Host, c.From, c.PoolSize = "", "", -2 },
			[]string{"Host: is required", "From: is required", "PoolSize: must be between 1 and 64, got -2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := good()
			tt.edit(&cfg)
			s, err := email.New(cfg)
			if err == nil {
				s.Close()
				t.Fatalf("New accepted %+v", cfg)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if strings.Contains(err.Error(), password) {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
	t.Run("valid", func(t *testing.T) {
		t.Parallel()
		for _, edit := range []func(*email.Config){
			func(c *email.Config) {},
			func(c *email.Config) { c.Port, c.TLS = 0, email.TLSImplicit },
			func(c *email.Config) { c.Host, c.TLS = "127.0.0.1", email.TLSNone },
			func(c *email.Config) { c.Username, c.Password, c.TLS = "", "", email.TLSNone },
			func(c *email.Config) { c.Host = "::1" },
		} {
			cfg := good()
			edit(&cfg)
			s, err := email.New(cfg)
			if err != nil {
				t.Errorf("New(%+v): %v", cfg, err)
				continue
			}
			s.Close()
		}
	})
}
