// Package channeltest is the conformance suite every channel passes against
// a local fake of its provider, in the manner of river's riverdrivertest: a
// channel's own test builds a Harness and calls Run, which runs the same
// subtests for every channel. The SMS channel's, in channels/sms:
//
//	func TestConformance(t *testing.T) {
//		t.Parallel()
//		channeltest.Run(t, channeltest.Harness{
//			Channel: dispatcher.ChannelSMS,
//			NewFunc: func(t *testing.T) (dispatcher.Sender, channeltest.Provider) {
//				// A strict local fake of Twilio's Messages API.
//				fake := twiliotest.New(t, accountSID, authToken)
//				s, err := sms.New(sms.Config{AccountSID: accountSID, AuthToken: authToken, From: fromNumber, BaseURL: fake.URL})
//				if err != nil {
//					t.Fatal(err)
//				}
//				// provider adapts the fake to Provider: Received from
//				// fake.Messages(), FailNext from its failure switches.
//				return s, provider{fake}
//			},
//			RecipientFunc: func(i int) *dispatcher.Recipient {
//				return &dispatcher.Recipient{Kind: dispatcher.KindCustomer, Phone: fmt.Sprintf("+4179%07d", i)}
//			},
//		})
//	}
//
// What the suite checks, per subtest:
//
//   - Batch/1, Batch/7, Batch/100: one Result per Message, in order; every
//     Result is a success (status sent or delivered); every message reached
//     the provider exactly once, for the right recipient, with its body
//     byte for byte (German, French and Danish letters, emoji).
//   - EmptyBatch: no messages, no Results, no provider call.
//   - Concurrent: 8 goroutines sending at once lose and duplicate nothing
//     (run the channel's tests with -race).
//   - Cancelled/BeforeSend, Cancelled/DuringSend: Send returns within a few
//     seconds; each Result is a success the provider really has, or an
//     error Classify calls transient; the sender works afterwards.
//   - Progress/Reported: the Sender reports through dispatcher.Progress
//     (see dispatcher.WithProgress): each message is announced with
//     Handing before the provider has it, exactly once, and Done, when
//     called, comes once per message, after its Handing, with the Result
//     Send returns.
//   - Progress/Refused: a message whose Handing is refused never reaches
//     the provider and comes back NotHanded (errors.Is ErrNotHanded); the
//     others go out as usual.
//   - Fail/transient, Fail/permanent, Fail/rate-limited: a failure the
//     provider was told to produce (Provider.FailNext) is classified as such
//     (a rate limit carries a RetryAfter), a rejected message is not
//     reported as sent, and the next send works again.
//
// Contract for channels, as the suite enforces it: a Sender never panics,
// returns exactly len(msgs) Results, does not modify the messages, does not
// call its provider for an empty batch, and does not retry internally —
// retries belong to the dispatcher, which reads the error's classification.
//
// Contract for harnesses: NewFunc returns a fresh sender and a fresh fake on
// every call (subtests run in parallel, each with its own pair);
// RecipientFunc(i) returns a new Recipient reachable on Channel whose
// address (phone, email, push token) differs for every i, so the suite can
// tell who got what. The suite overwrites the Recipient's ID and Locale.
//
// Design choices, and the alternatives that were turned down:
//
//   - Messages are told apart by their body, which every provider sees
//     (each body carries a unique reference), and routing is checked by
//     Received.RecipientID, which may be whatever the provider learns: the
//     delivery id (webhook-id), the recipient id, or the address (the To
//     of an SMS or email, a push token). A harness therefore never needs
//     to know the ids the suite assigns.
//   - A provider that keeps only a count (the null channel) sets
//     Harness.CountOnly rather than the suite having a Bodies flag: the
//     zero Harness is the strict one, so a new channel cannot forget to
//     opt in to the body checks. With CountOnly, Received returns one
//     (empty) entry per accepted message, the suite checks the counts, and
//     every per-message check is reported as a skipped "Bodies" subtest
//     rather than silently passing.
//   - FailNext returns an error instead of a bool so a harness can say why
//     its provider cannot fail that way: an error wrapping
//     errors.ErrUnsupported skips that one subtest with the harness's
//     reason; any other error (the fake broke) fails it.
//   - Received.ProviderID is optional: a fake that answers with per-message
//     ids (Twilio's SM…, FCM's message name) lets the suite check that
//     Results come back in message order even when all succeed.
//   - Function-valued fields end in Func, as the house style asks.
package channeltest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// Harness adapts one channel and its fake provider to the suite.
type Harness struct {
	// Channel is the channel the messages are sent on.
	Channel dispatcher.Channel
	// NewFunc returns a fresh sender wired to a fresh fake provider, and the
	// Provider view of that fake. It is called once per subtest, from
	// parallel subtests; register cleanups with t.Cleanup.
	NewFunc func(t *testing.T) (dispatcher.Sender, Provider)
	// RecipientFunc returns a new recipient reachable on Channel, with an
	// address of its own for each i. The suite sets its ID and Locale.
	RecipientFunc func(i int) *dispatcher.Recipient
	// CountOnly says the provider keeps no messages, only how many it
	// accepted: Received returns that many zero entries. The suite then
	// checks counts only and skips, visibly, the per-message checks.
	CountOnly bool
}

// Received is one message as the provider accepted it.
type Received struct {
	// RecipientID is who the message was for, as the provider learned it:
	// the message's delivery id, its recipient's id, or the recipient's
	// address on the channel (phone, email, push token).
	RecipientID string
	// Body is the message body as the provider got it, decoded from the
	// provider's wire format (form field, MIME part, JSON).
	Body string
	// ProviderID is the id the provider answered with, if it gives one per
	// message; the Result of that message must then carry it.
	ProviderID string
}

// Provider is what the suite observes and steers on the fake provider.
type Provider interface {
	// Received returns the messages the provider accepted, in any order.
	Received() []Received
	// FailNext makes the provider reject its next n send calls (requests,
	// SMTP transactions; a batch provider fails a whole batch per call)
	// with the given kind of failure, then work normally again. A provider that
	// cannot fail that way returns an error wrapping errors.ErrUnsupported
	// whose text says why; the suite skips that one subtest with it.
	FailNext(kind FailKind, n int) error
}

// FailKind is a kind of provider failure.
type FailKind int

const (
	// FailTransient is a failure retrying may fix (HTTP 5xx, SMTP 4xx,
	// FCM INTERNAL/UNAVAILABLE, a dropped connection). The channel must
	// classify it as transient: neither Permanent nor Suppress.
	FailTransient FailKind = iota + 1
	// FailPermanent is a failure retrying cannot fix and that is not the
	// recipient's choice (Twilio 21211, SMTP 550 5.1.1, APNs
	// BadDeviceToken). The channel must classify it as Permanent.
	FailPermanent
	// FailRateLimited is the provider asking to slow down, with a delay
	// (HTTP 429 with Retry-After, Twilio 20429, FCM QUOTA_EXCEEDED). The
	// channel must classify it as throttled (dispatcher.Throttled:
	// transient, SendError.Throttled) with RetryAfter > 0, using a default
	// when the provider names no delay. SMTP has no such reply
	// (421 and 451 carry no delay: they are FailTransient), so the email
	// harness's FailNext refuses it with errors.ErrUnsupported.
	FailRateLimited
)

// FailKinds lists every kind of failure the suite asks for.
var FailKinds = []FailKind{FailTransient, FailPermanent, FailRateLimited}

func (k FailKind) String() string {
	switch k {
	case FailTransient:
		return "transient"
	case FailPermanent:
		return "permanent"
	case FailRateLimited:
		return "rate-limited"
	}
	return "FailKind(" + strconv.Itoa(int(k)) + ")"
}

// Timeout is how long Send may take to return once its context is
// cancelled.
const Timeout = 5 * time.Second

// WaitFor polls cond every millisecond until it holds, failing t with
// what after 10 s: a test waits for a provider fake to have seen a request
// (its counters) without sleeping.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(2 * Timeout)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline:
			t.Fatalf("timed out after %v waiting for %s", 2*Timeout, what)
		case <-tick.C:
		}
	}
}

// CancelDuring runs send with a context it cancels once cond holds (what
// names it), then calls after (nil: nothing), and returns send's results.
// It fails t when send has not returned within wait of the cancel
// (Timeout when 0): a Send cancelled with requests in flight answers for
// them within their own timeout.
func CancelDuring(t testing.TB, what string, cond func() bool, after func(), wait time.Duration, send func(context.Context) []dispatcher.Result) []dispatcher.Result {
	t.Helper()
	if wait <= 0 {
		wait = Timeout
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan []dispatcher.Result, 1)
	go func() { done <- send(ctx) }()
	WaitFor(t, what, cond)
	cancel()
	if after != nil {
		after()
	}
	select {
	case res := <-done:
		return res
	case <-time.After(wait):
		t.Fatalf("Send did not return within %v of its context being cancelled (once %s)", wait, what)
		return nil
	}
}

// Run runs the conformance suite against the channel h adapts. Its
// subtests run in parallel, each with a fresh sender and provider.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.Channel == "" || h.NewFunc == nil || h.RecipientFunc == nil {
		t.Fatal("channeltest: Harness needs Channel, NewFunc and RecipientFunc")
	}
	parallel(t, "Batch", func(t *testing.T) {
		for _, n := range []int{1, 7, 100} {
			parallel(t, strconv.Itoa(n), func(t *testing.T) { testBatch(t, h, n) })
		}
	})
	parallel(t, "EmptyBatch", func(t *testing.T) { testEmptyBatch(t, h) })
	parallel(t, "Concurrent", func(t *testing.T) { testConcurrent(t, h) })
	parallel(t, "Cancelled", func(t *testing.T) {
		parallel(t, "BeforeSend", func(t *testing.T) { testCancelled(t, h, false) })
		parallel(t, "DuringSend", func(t *testing.T) { testCancelled(t, h, true) })
	})
	parallel(t, "Progress", func(t *testing.T) {
		parallel(t, "Reported", func(t *testing.T) { testProgress(t, h, false) })
		parallel(t, "Refused", func(t *testing.T) { testProgress(t, h, true) })
	})
	parallel(t, "Fail", func(t *testing.T) {
		for _, kind := range FailKinds {
			parallel(t, kind.String(), func(t *testing.T) { testFail(t, h, kind) })
		}
	})
}

// parallel runs f as a subtest of t, in parallel with its siblings.
func parallel(t *testing.T, name string, f func(t *testing.T)) {
	t.Run(name, func(t *testing.T) {
		t.Parallel()
		f(t)
	})
}

func testBatch(t *testing.T, h Harness, n int) {
	f := setup(t, h)
	msgs := f.messages(t, n)
	res := f.send(t, t.Context(), msgs)
	for i := range msgs {
		f.wantSuccess(t, i, res[i])
	}
	f.checkArrivals(t, never)
}

// testProgress sends 9 messages with a Progress that watches the order of
// Handing, the provider's arrivals and Done; with refuse, Handing refuses
// every third message.
func testProgress(t *testing.T, h Harness, refuse bool) {
	f := setup(t, h)
	msgs := f.messages(t, 9)
	refused := func(i int) bool { return refuse && i%3 == 1 }
	var mu sync.Mutex
	handed := make([]int, len(msgs))
	done := make([]int, len(msgs))
	reported := make([]dispatcher.Result, len(msgs))
	errNo := errors.New("channeltest: refused")
	bulk := false // announced several at once: no message could be refused alone
	p := &dispatcher.Progress{
		Handing: func(idx ...int) error {
			mu.Lock()
			defer mu.Unlock()
			arrived := map[string]bool{}
			if !h.CountOnly {
				for _, r := range f.p.Received() {
					arrived[r.Body] = true
				}
			}
			var err error
			for _, i := range idx {
				if i < 0 || i >= len(msgs) {
					t.Errorf("Handing(%d): no such message", i)
					continue
				}
				handed[i]++
				if arrived[msgs[i].Body] {
					t.Errorf("message %d reached the provider before its Handing", i)
				}
				if refused(i) {
					err = errNo
				}
			}
			if len(idx) > 1 {
				// A Sender that announces several messages at once gets
				// one answer for all: refuse none, so the others' checks
				// still mean something.
				bulk = true
				return nil
			}
			return err
		},
		Done: func(i int, r dispatcher.Result) {
			mu.Lock()
			defer mu.Unlock()
			if i < 0 || i >= len(msgs) {
				t.Errorf("Done(%d): no such message", i)
				return
			}
			if handed[i] == 0 && !errors.Is(r.Err, dispatcher.ErrNotHanded) {
				t.Errorf("Done(%d) before its Handing", i)
			}
			done[i]++
			reported[i] = r
		},
	}
	res := f.send(t, dispatcher.WithProgress(t.Context(), p), msgs)
	mu.Lock()
	defer mu.Unlock()
	for i := range msgs {
		if handed[i] != 1 {
			t.Errorf("message %d: Handing called %d times, want once", i, handed[i])
		}
		if done[i] > 1 {
			t.Errorf("message %d: Done called %d times, want at most once", i, done[i])
		}
		if done[i] == 1 && (reported[i].Status != res[i].Status || reported[i].ProviderID != res[i].ProviderID || (reported[i].Err == nil) != (res[i].Err == nil)) {
			t.Errorf("message %d: Done reported %+v, Send returned %+v", i, reported[i], res[i])
		}
	}
	if refuse && bulk {
		t.Log("the Sender announces a whole batch with one Handing: a refusal covers all or none, so the test refused none")
	}
	for i := range msgs {
		switch {
		case refused(i) && !bulk:
			if !errors.Is(res[i].Err, dispatcher.ErrNotHanded) {
				t.Errorf("message %d: Handing refused it, but Send returned %+v, want NotHanded", i, res[i])
			}
		default:
			f.wantSuccess(t, i, res[i])
		}
	}
	if refuse && !bulk {
		if !h.CountOnly {
			for _, r := range f.p.Received() {
				for i, m := range msgs {
					if refused(i) && r.Body == m.Body {
						t.Errorf("message %d reached the provider although its Handing was refused", i)
					}
				}
			}
		}
	}
	f.checkArrivals(t, never)
}

func testEmptyBatch(t *testing.T, h Harness) {
	f := setup(t, h)
	// An armed failure that survives the empty batch proves no provider
	// call was made; without FailNext only an arrival would show.
	armed, _ := f.arm(t, FailTransient, 1)
	for _, msgs := range [][]*dispatcher.Message{nil, {}} {
		res, err := safeSend(t.Context(), f.s, msgs)
		if err != nil {
			t.Fatal(err)
		}
		if len(res) != 0 {
			t.Errorf("Send(%d messages) returned %d results, want none", len(msgs), len(res))
		}
	}
	if got := len(f.p.Received()); got != 0 {
		t.Errorf("the provider received %d messages from empty batches, want 0", got)
	}
	if !armed {
		t.Log("the provider cannot fail transiently: only arrivals were checked, not provider calls")
		return
	}
	res := f.send(t, t.Context(), f.messages(t, 1))
	if res[0].Err == nil {
		t.Errorf("an empty batch called the provider: it used up the failure armed with FailNext(%s, 1)", FailTransient)
	}
	f.checkArrivals(t, never)
}

func testConcurrent(t *testing.T, h Harness) {
	const goroutines, batches, size = 8, 5, 8
	f := setup(t, h)
	work := make([][][]*dispatcher.Message, goroutines)
	for g := range work {
		work[g] = make([][]*dispatcher.Message, batches)
		for b := range work[g] {
			work[g][b] = f.messages(t, size)
		}
	}
	results := make([][][]dispatcher.Result, goroutines)
	errs := make([]error, goroutines)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for g := range goroutines {
		results[g] = make([][]dispatcher.Result, batches)
		wg.Go(func() {
			<-start
			for b, msgs := range work[g] {
				res, err := safeSend(context.Background(), f.s, msgs)
				if err != nil {
					errs[g] = err
					return
				}
				results[g][b] = res
			}
		})
	}
	close(start)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for g := range work {
		for b, msgs := range work[g] {
			f.record(t, msgs, results[g][b])
		}
	}
	for i, r := range f.results {
		f.wantSuccess(t, i, r)
	}
	f.checkArrivals(t, never)
}

func testCancelled(t *testing.T, h Harness, during bool) {
	f := setup(t, h)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	msgs := f.messages(t, 100)
	if !during {
		cancel()
	}
	type answer struct {
		res []dispatcher.Result
		err error
	}
	done := make(chan answer, 1)
	go func() {
		res, err := safeSend(ctx, f.s, msgs)
		done <- answer{res, err}
	}()
	if during {
		cancel()
	}
	var a answer
	select {
	case a = <-done:
	case <-time.After(Timeout):
		t.Fatalf("Send did not return within %v of its context being cancelled", Timeout)
	}
	if a.err != nil {
		t.Fatal(a.err)
	}
	f.record(t, msgs, a.res)
	sent := 0
	for i, r := range a.res {
		if r.Err == nil {
			f.wantSuccess(t, i, r)
			sent++
			continue
		}
		f.wantKind(t, i, r, FailTransient)
	}
	t.Logf("with a cancelled context, %d of %d messages were sent", sent, len(msgs))
	// The sender must not be left broken by a cancelled call.
	for i, r := range f.send(t, t.Context(), f.messages(t, 3)) {
		f.wantSuccess(t, len(msgs)+i, r)
	}
	// A failed message may have reached the provider before the cancel.
	f.checkArrivals(t, maybe)
}

func testFail(t *testing.T, h Harness, kind FailKind) {
	f := setup(t, h)
	if ok, why := f.arm(t, kind, 2); !ok {
		t.Skipf("skipped, the provider cannot fail this way: %v", why)
	}
	// Two single-message batches use up the two failures.
	for range 2 {
		i := len(f.results)
		res := f.send(t, t.Context(), f.messages(t, 1))
		f.wantKind(t, i, res[0], kind)
	}
	// Then the provider works again.
	i := len(f.results)
	for j, r := range f.send(t, t.Context(), f.messages(t, 3)) {
		f.wantSuccess(t, i+j, r)
	}
	// A failure in the middle of a batch: whatever failed is not at the
	// provider and whatever succeeded is (the Results are in order).
	if ok, why := f.arm(t, kind, 1); !ok {
		t.Fatalf("FailNext(%s, 1) after FailNext(%s, 2) worked: %v", kind, kind, why)
	}
	i = len(f.results)
	res := f.send(t, t.Context(), f.messages(t, 5))
	failed := 0
	for j, r := range res {
		if r.Err != nil {
			failed++
			f.wantKind(t, i+j, r, kind)
		} else {
			f.wantSuccess(t, i+j, r)
		}
	}
	if failed == 0 {
		t.Errorf("no message of a batch failed after FailNext(%s, 1); does the channel retry internally? Retries belong to the dispatcher", kind)
	}
	i = len(f.results)
	f.wantSuccess(t, i, f.send(t, t.Context(), f.messages(t, 1))[0])
	f.checkArrivals(t, never)
}

// fixture is one sender and its provider, and every message sent to them.
type fixture struct {
	h Harness
	s dispatcher.Sender
	p Provider

	next      int                                        // the next recipient index
	addresses map[string]int                             // address -> recipient index
	built     map[*dispatcher.Message]dispatcher.Message // as built, to spot changes
	msgs      []*dispatcher.Message                      // sent, in the order recorded
	results   []dispatcher.Result                        // per msgs
}

func setup(t *testing.T, h Harness) *fixture {
	t.Helper()
	s, p := h.NewFunc(t)
	if s == nil || p == nil {
		t.Fatal("channeltest: Harness.NewFunc returned a nil Sender or Provider")
	}
	return &fixture{h: h, s: s, p: p, addresses: map[string]int{}, built: map[*dispatcher.Message]dispatcher.Message{}}
}

const (
	broadcastID = "bc_channeltest_1"
	incidentID  = "inc_channeltest"
)

// sample is a rendered message in one locale.
type sample struct{ locale, title, body string }

// samples exercise non-ASCII text: every body must arrive byte for byte.
var samples = []sample{
	{"de-CH", "Störung: Zahlungen über die App",
		"Zahlungen über die App schlagen fehl; Händler können keine Beträge empfangen. Nächstes Update um 14:30 Uhr. Grüße, Ihr Störungsteam – Straße, Größe, Übersee."},
	{"fr-CH", "Incident : paiements perturbés",
		"Les paiements échouent depuis 13 h 05. Nous travaillons à la résolution ; prochaine mise à jour à 14 h 30. Désolés pour la gêne occasionnée — ça avance, à très bientôt. Œuvre, Noël, Ça."},
	{"da-DK", "Driftsforstyrrelse på kortbetalinger",
		"Kortbetalinger i butikker fejler i øjeblikket. Vi arbejder på en løsning – næste opdatering kl. 14.30. Æbler, Øresund, Århus: æøå ÆØÅ."},
	{"en-GB", "⚠️ Payments outage",
		"Payments are failing 🚨 We will update you by 14:30 ✅ Thanks for your patience 🙏 👩‍💻 🇨🇭 🇩🇰"},
}

// messages builds n new messages, each to a recipient of its own and with
// a body no other message of the fixture has.
func (f *fixture) messages(t *testing.T, n int) []*dispatcher.Message {
	t.Helper()
	msgs := make([]*dispatcher.Message, n)
	for k := range msgs {
		i := f.next
		f.next++
		rp := f.h.RecipientFunc(i)
		if rp == nil {
			t.Fatalf("channeltest: Harness.RecipientFunc(%d) returned nil", i)
		}
		r := *rp
		if addr := address(&r); addr != "" {
			if j, ok := f.addresses[addr]; ok {
				t.Fatalf("channeltest: Harness.RecipientFunc(%d) and (%d) share the address %q; give each index its own so the suite can tell who got what", j, i, addr)
			}
			f.addresses[addr] = i
		}
		s := samples[i%len(samples)]
		r.ID = "rcp_ct" + strconv.Itoa(i)
		r.Locale = s.locale
		m := &dispatcher.Message{
			DeliveryID:  dispatcher.DeliveryID(broadcastID, f.h.Channel, r.ID),
			BroadcastID: broadcastID,
			IncidentID:  incidentID,
			Seq:         1,
			State:       dispatcher.StateInvestigating,
			Severity:    dispatcher.SeverityMajor,
			Channel:     f.h.Channel,
			Recipient:   &r,
			Locale:      s.locale,
			Title:       s.title,
			Body:        s.body + " [ref " + strconv.Itoa(i) + "]",
			Attempt:     1,
		}
		f.built[m] = *m
		msgs[k] = m
	}
	return msgs
}

// address is a recipient's contact details, which the harness must keep
// apart between recipients.
func address(r *dispatcher.Recipient) string {
	parts := []string{}
	addrs := []string{r.Phone, r.Email}
	for _, p := range r.Push {
		addrs = append(addrs, p.Key())
	}
	for _, a := range addrs {
		if a != "" {
			parts = append(parts, a)
		}
	}
	return strings.Join(parts, " ")
}

// addressedTo reports whether id names m's delivery, recipient or one of
// the recipient's addresses.
func addressedTo(id string, m *dispatcher.Message) bool {
	r := m.Recipient
	return id != "" && (id == m.DeliveryID || id == r.ID || id == r.Phone || id == r.Email ||
		slices.ContainsFunc(r.Push, func(p dispatcher.PushToken) bool { return p.Key() == id }))
}

// safeSend calls Send, turning a panic into an error.
func safeSend(ctx context.Context, s dispatcher.Sender, msgs []*dispatcher.Message) (res []dispatcher.Result, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("Send(%d messages) panicked: %v\n%s", len(msgs), p, debug.Stack())
		}
	}()
	return s.Send(ctx, msgs), nil
}

// send sends msgs and records them with their Results.
func (f *fixture) send(t *testing.T, ctx context.Context, msgs []*dispatcher.Message) []dispatcher.Result {
	t.Helper()
	res, err := safeSend(ctx, f.s, msgs)
	if err != nil {
		t.Fatal(err)
	}
	f.record(t, msgs, res)
	return res
}

// record checks the shape of one Send's answer and keeps it.
func (f *fixture) record(t *testing.T, msgs []*dispatcher.Message, res []dispatcher.Result) {
	t.Helper()
	if len(res) != len(msgs) {
		t.Fatalf("Send(%d messages) returned %d results, want one per message", len(msgs), len(res))
	}
	for j, m := range msgs {
		if !reflect.DeepEqual(*m, f.built[m]) {
			t.Errorf("Send modified message %d:\n got %+v\nwant %+v", len(f.msgs)+j, *m, f.built[m])
			*m = f.built[m]
		}
	}
	f.msgs = append(f.msgs, msgs...)
	f.results = append(f.results, res...)
}

// arm makes the provider fail its next n calls. It reports false, with the
// harness's reason, when the provider cannot fail that way; any other
// FailNext error fails the test.
func (f *fixture) arm(t *testing.T, kind FailKind, n int) (bool, error) {
	t.Helper()
	err := f.p.FailNext(kind, n)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, errors.ErrUnsupported):
		return false, err
	}
	t.Fatalf("Provider.FailNext(%s, %d): %v", kind, n, err)
	return false, err
}

// wantSuccess checks that Result i says the message was sent.
func (f *fixture) wantSuccess(t *testing.T, i int, r dispatcher.Result) {
	t.Helper()
	if r.Err != nil {
		t.Errorf("message %d: Send failed: %v", i, r.Err)
		return
	}
	if r.Status != dispatcher.StatusSent && r.Status != dispatcher.StatusDelivered {
		t.Errorf("message %d: success with status %q, want %q or %q", i, r.Status, dispatcher.StatusSent, dispatcher.StatusDelivered)
	}
}

// wantKind checks that Result i failed with an error classified as kind.
func (f *fixture) wantKind(t *testing.T, i int, r dispatcher.Result, kind FailKind) {
	t.Helper()
	if r.Err == nil {
		t.Errorf("message %d: succeeded (status %q), want a %s failure; does the channel retry internally? Retries belong to the dispatcher", i, r.Status, kind)
		return
	}
	if r.Status == dispatcher.StatusSent || r.Status == dispatcher.StatusDelivered {
		t.Errorf("message %d: status %q with error %v: a failed message must not claim to be sent", i, r.Status, r.Err)
	}
	se := dispatcher.Classify(r.Err)
	switch kind {
	case FailPermanent:
		if !se.Permanent || se.Suppress {
			t.Errorf("message %d: error %q classified as %s, want permanent (dispatcher.Permanent)", i, r.Err, describe(se))
		}
	default:
		if se.Permanent || se.Suppress {
			t.Errorf("message %d: error %q classified as %s, want transient (retryable)", i, r.Err, describe(se))
		}
		if kind == FailRateLimited && se.RetryAfter <= 0 {
			t.Errorf("message %d: rate-limit error %q has RetryAfter %v, want the provider's delay (> 0)", i, r.Err, se.RetryAfter)
		}
		if (kind == FailRateLimited) != se.Throttled {
			t.Errorf("message %d: %s error %q has Throttled %v: a provider's \"too many requests\", and only that, is dispatcher.Throttled", i, kind, r.Err, se.Throttled)
		}
	}
}

func describe(se *dispatcher.SendError) string {
	switch {
	case se.Suppress:
		return "suppressed"
	case se.Permanent:
		return "permanent"
	}
	return fmt.Sprintf("transient (RetryAfter %v)", se.RetryAfter)
}

// arrival is what may have become of a failed message.
type arrival int

const (
	never arrival = iota // the provider rejected it: it must not have arrived
	maybe                // it may have arrived before the failure (at most once)
)

// checkArrivals compares what the provider received with every message
// sent so far: a success arrived exactly once, a failure as failed says.
func (f *fixture) checkArrivals(t *testing.T, failed arrival) {
	t.Helper()
	got := f.p.Received()
	lo := 0 // the successes
	for _, r := range f.results {
		if r.Err == nil {
			lo++
		}
	}
	hi := lo
	if failed == maybe {
		hi = len(f.results)
	}
	if len(got) < lo || len(got) > hi {
		if lo == hi {
			t.Errorf("the provider received %d messages; %d were sent", len(got), lo)
		} else {
			t.Errorf("the provider received %d messages; between %d and %d may have arrived", len(got), lo, hi)
		}
	}
	t.Run("Bodies", func(t *testing.T) {
		if f.h.CountOnly {
			t.Skip("skipped, CountOnly harness: the provider keeps no messages, so who got what and their bodies are not checked")
		}
		f.checkBodies(t, got, failed)
	})
}

func (f *fixture) checkBodies(t *testing.T, got []Received, failed arrival) {
	t.Helper()
	byBody := make(map[string]int, len(f.msgs))
	for i, m := range f.msgs {
		byBody[m.Body] = i
	}
	n := make([]int, len(f.msgs))
	for _, g := range got {
		i, ok := byBody[g.Body]
		if !ok {
			t.Errorf("the provider received a body the suite did not send (altered?), for %q:\n got %q%s", g.RecipientID, g.Body, f.hint(g))
			continue
		}
		n[i]++
		m, r := f.msgs[i], f.results[i]
		if !addressedTo(g.RecipientID, m) {
			t.Errorf("message %d arrived for %q, want its delivery id %q, recipient id %q or address %q", i, g.RecipientID, m.DeliveryID, m.Recipient.ID, address(m.Recipient))
		}
		if g.ProviderID != "" && r.Err == nil && r.ProviderID != g.ProviderID {
			t.Errorf("message %d: Result has ProviderID %q, the provider answered %q: are the Results out of order?", i, r.ProviderID, g.ProviderID)
		}
	}
	for i, r := range f.results {
		switch {
		case n[i] > 1:
			t.Errorf("message %d arrived %d times, want once", i, n[i])
		case n[i] == 0 && r.Err == nil:
			t.Errorf("message %d: Result says %q, but it never reached the provider", i, r.Status)
		case n[i] == 1 && r.Err != nil && failed == never:
			t.Errorf("message %d: Result is an error (%v), but the provider has it", i, r.Err)
		}
	}
}

// hint names the message an unknown body probably was.
func (f *fixture) hint(g Received) string {
	for i, m := range f.msgs {
		if addressedTo(g.RecipientID, m) {
			return fmt.Sprintf("\nwant %q (message %d)", m.Body, i)
		}
	}
	return ""
}
