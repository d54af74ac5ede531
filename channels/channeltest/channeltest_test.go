package channeltest_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/channels/channeltest"
	"github.com/tocsin-dev/tocsin/dispatcher"
)

// fakeProvider is a per-message provider in the shape of the real ones: it
// answers each call with an id, or with an HTTP-like failure.
type fakeProvider struct {
	mu       sync.Mutex
	got      []channeltest.Received
	failKind channeltest.FailKind
	failN    int
	calls    int
}

// providerError is the provider's answer to a rejected call.
type providerError struct {
	status     int
	retryAfter time.Duration
}

func (e *providerError) Error() string { return "provider answered " + strconv.Itoa(e.status) }

func (p *fakeProvider) call(to, body string) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	if p.failN > 0 {
		p.failN--
		switch p.failKind {
		case channeltest.FailPermanent:
			return "", &providerError{status: 400}
		case channeltest.FailRateLimited:
			return "", &providerError{status: 429, retryAfter: 2 * time.Second}
		default:
			return "", &providerError{status: 503}
		}
	}
	id := fmt.Sprintf("SM%032d", len(p.got))
	p.got = append(p.got, channeltest.Received{RecipientID: to, Body: body, ProviderID: id})
	return id, nil
}

func (p *fakeProvider) Received() []channeltest.Received {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]channeltest.Received(nil), p.got...)
}

func (p *fakeProvider) FailNext(kind channeltest.FailKind, n int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.failKind, p.failN = kind, n
	return nil
}

// sender is a correct channel over fakeProvider, into which a test can put
// one bug to prove the suite catches it.
type sender struct {
	p    *fakeProvider
	bug  string
	racy int
}

func (s *sender) Send(ctx context.Context, msgs []*dispatcher.Message) []dispatcher.Result {
	if s.bug == "race" {
		s.racy++
	}
	if s.bug == "panic" && len(msgs) == 7 {
		panic("bug")
	}
	if s.bug == "empty-call" && len(msgs) == 0 {
		s.p.call("", "")
	}
	res := make([]dispatcher.Result, len(msgs))
	for i, m := range msgs {
		if err := ctx.Err(); err != nil {
			switch s.bug {
			case "hang":
				time.Sleep(2 * channeltest.Timeout)
			case "cancel-success":
				res[i] = dispatcher.Result{Status: dispatcher.StatusSent}
				continue
			}
			res[i] = dispatcher.Result{Err: dispatcher.Transient("cancelled", 0, err)}
			continue
		}
		if s.bug != "no-handing" {
			if err := dispatcher.Handing(ctx, i); err != nil && s.bug != "ignore-refusal" {
				res[i] = dispatcher.NotHanded(err)
				dispatcher.Done(ctx, i, res[i])
				continue
			}
		}
		to, body := m.Recipient.Phone, m.Body
		switch s.bug {
		case "mangle":
			body = strings.ReplaceAll(body, "ø", "o")
		case "misroute":
			to = m.Recipient.Phone + "0"
		case "mutate":
			m.Body = strings.TrimSpace(m.Body + " ")
			m.Title = "changed"
		case "drop":
			if i == len(msgs)-1 {
				res[i] = dispatcher.Result{Status: dispatcher.StatusSent}
				continue
			}
		}
		id, err := s.p.call(to, body)
		if s.bug == "dup" && i == 0 && err == nil {
			s.p.call(to, body)
		}
		if s.bug == "retry" && err != nil {
			id, err = s.p.call(to, body)
		}
		res[i] = s.result(id, err)
		if s.bug == "late-handing" {
			_ = dispatcher.Handing(ctx, i)
			continue
		}
		dispatcher.Done(ctx, i, res[i])
		if s.bug == "double-done" {
			dispatcher.Done(ctx, i, res[i])
		}
	}
	switch s.bug {
	case "swap":
		for i, j := 0, len(res)-1; i < j; i, j = i+1, j-1 {
			res[i], res[j] = res[j], res[i]
		}
	case "short":
		if len(res) > 1 {
			res = res[1:]
		}
	}
	return res
}

func (s *sender) result(id string, err error) dispatcher.Result {
	if err == nil {
		st := dispatcher.StatusSent
		if s.bug == "status" {
			st = ""
		}
		return dispatcher.Result{Status: st, ProviderID: id}
	}
	var pe *providerError
	if !errors.As(err, &pe) {
		return dispatcher.Result{Err: err}
	}
	code := strconv.Itoa(pe.status)
	switch {
	case pe.status == 429:
		after := pe.retryAfter
		if s.bug == "no-retry-after" {
			after = 0
		}
		return dispatcher.Result{Status: dispatcher.StatusFailed, Err: dispatcher.Throttled(code, after, err)}
	case pe.status >= 400 && pe.status < 500 && s.bug != "permanent-as-transient":
		return dispatcher.Result{Status: dispatcher.StatusFailed, Err: dispatcher.Permanent(code, err)}
	case s.bug == "transient-as-suppress":
		return dispatcher.Result{Status: dispatcher.StatusSuppressed, Err: dispatcher.Suppress(code, err)}
	}
	return dispatcher.Result{Status: dispatcher.StatusFailed, Err: dispatcher.Transient(code, 0, err)}
}

func harness(bug string) channeltest.Harness {
	return channeltest.Harness{
		Channel: dispatcher.ChannelSMS,
		NewFunc: func(t *testing.T) (dispatcher.Sender, channeltest.Provider) {
			p := &fakeProvider{}
			return &sender{p: p, bug: bug}, p
		},
		RecipientFunc: func(i int) *dispatcher.Recipient {
			return &dispatcher.Recipient{Kind: dispatcher.KindCustomer, Phone: fmt.Sprintf("+4179%07d", i)}
		},
	}
}

// TestReference runs the suite against a correct channel: it must pass.
func TestReference(t *testing.T) {
	t.Parallel()
	channeltest.Run(t, harness(""))
}

// TestUnsupportedFailure shows a provider that cannot fail one way skips
// only that subtest, with the harness's reason.
func TestUnsupportedFailure(t *testing.T) {
	t.Parallel()
	h := harness("")
	newFunc := h.NewFunc
	h.NewFunc = func(t *testing.T) (dispatcher.Sender, channeltest.Provider) {
		s, p := newFunc(t)
		return s, noPermanent{p}
	}
	channeltest.Run(t, h)
}

type noPermanent struct{ channeltest.Provider }

func (p noPermanent) FailNext(kind channeltest.FailKind, n int) error {
	if kind == channeltest.FailPermanent {
		return fmt.Errorf("this provider has no permanent failures: %w", errors.ErrUnsupported)
	}
	return p.Provider.FailNext(kind, n)
}

const bugEnv = "CHANNELTEST_BUG"

// TestBrokenChannel runs the suite against a channel with the bug named in
// $CHANNELTEST_BUG; TestSuiteCatchesBugs runs it and expects it to fail.
func TestBrokenChannel(t *testing.T) {
	bug := os.Getenv(bugEnv)
	if bug == "" {
		t.Skip("skipped, run by TestSuiteCatchesBugs with $" + bugEnv + " set")
	}
	channeltest.Run(t, harness(bug))
}

// TestSuiteCatchesBugs proves each check can fail: the suite run against
// a channel with one bug must fail, saying what is wrong.
func TestSuiteCatchesBugs(t *testing.T) {
	t.Parallel()
	tests := []struct{ bug, want string }{
		{"drop", "never reached the provider"},
		{"dup", "arrived 2 times"},
		{"swap", "out of order"},
		{"short", "want one per message"},
		{"mangle", "did not send (altered?)"},
		{"misroute", "arrived for"},
		{"mutate", "Send modified message"},
		{"status", "success with status"},
		{"panic", "panicked"},
		{"empty-call", "an empty batch called the provider"},
		{"hang", "did not return within"},
		{"cancel-success", "never reached the provider"},
		{"retry", "retry internally"},
		{"permanent-as-transient", "want permanent"},
		{"transient-as-suppress", "classified as suppressed, want transient"},
		{"no-retry-after", "RetryAfter 0s"},
		{"race", "race detected"},
		{"no-handing", "Handing called 0 times"},
		{"late-handing", "reached the provider before its Handing"},
		{"ignore-refusal", "Handing refused it"},
		{"double-done", "Done called 2 times"},
	}
	for _, tt := range tests {
		t.Run(tt.bug, func(t *testing.T) {
			t.Parallel()
			if tt.bug == "race" && !raceEnabled {
				t.Skip("skipped, needs -race")
			}
			cmd := exec.Command(os.Args[0], "-test.run=^TestBrokenChannel$", "-test.count=1")
			cmd.Env = append(os.Environ(), bugEnv+"="+tt.bug)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the suite passed a channel with bug %q:\n%s", tt.bug, out)
			}
			if !strings.Contains(string(out), tt.want) {
				t.Errorf("the suite failed a channel with bug %q without saying %q:\n%s", tt.bug, tt.want, out)
			}
		})
	}
}
