package dispatcher_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/dispatcher/ratelimit"
)

// panickySender announces (Handing) the messages to "a" and "b", reports
// the one to "a" sent, and panics before it returns, every call.
type panickySender struct{}

func (panickySender) Send(ctx context.Context, msgs []*dispatcher.Message) []dispatcher.Result {
	for i, m := range msgs {
		switch m.Recipient.ID {
		case "a", "b":
			if err := dispatcher.Handing(ctx, i); err != nil {
				panic("test: Handing refused: " + err.Error())
			}
		}
		if m.Recipient.ID == "a" {
			dispatcher.Done(ctx, i, dispatcher.Result{Status: dispatcher.StatusSent, ProviderID: "p-a"})
		}
	}
	panic("boom for " + msgs[0].Recipient.Phone)
}

// TestSenderPanic: a Sender that panics fails its send, not the process:
// on redisstore, the batch records what the Sender reported (sent), what
// it had announced to its provider as unknown (it may have gone out), and
// the rest as transient failures with a retry due; the log names the
// deliveries at error level, without the panic's text (it may hold an
// address). Also when ratelimit.Sender calls the Sender from its own goroutine.
func TestSenderPanic(t *testing.T) {
	t.Parallel()
	for _, limited := range []bool{false, true} {
		name := "direct"
		if limited {
			name = "rate limited"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			// slog's handler serializes the writes; the test reads once the
			// run is over.
			var logs bytes.Buffer
			logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
			f := newRedisFlow(t, time.Date(2030, 1, 2, 12, 0, 0, 0, time.UTC), nil)
			var sender dispatcher.Sender = panickySender{}
			if limited {
				sender = &ratelimit.Sender{Sender: sender, Limiter: f.store.Limiter(), Key: "sms", Rate: dispatcher.Rate{N: 1000, Per: time.Second}, Logger: logger}
			}
			f.with(func(c *dispatcher.FanoutConfig) {
				c.Senders, c.Logger = map[dispatcher.Channel]dispatcher.Sender{dispatcher.ChannelSMS: sender}, logger
			})
			for i, id := range []string{"a", "b", "c", "d"} {
				r := &dispatcher.Recipient{ID: id, Kind: dispatcher.KindCustomer, Locale: "en", Phone: "+4179000000" + string(rune('1'+i))}
				if _, err := f.svc.PutRecipient(ctx, r); err != nil {
					t.Fatal(err)
				}
			}
			res, err := f.svc.OpenIncident(ctx, dispatcher.IncidentInput{Title: dispatcher.PlainTitle("Cards down"), Severity: dispatcher.SeverityMajor}, "")
			if err != nil {
				t.Fatal(err)
			}
			f.run(t, res.BroadcastID) // fails the test if the batch fails; a panic would end the test binary

			want := map[string]string{
				"a": "sent ",
				"b": "unknown panic: the sender panicked",
				"c": "queued panic: the sender panicked",
				"d": "queued panic: the sender panicked",
			}
			for id, w := range want {
				did := dispatcher.DeliveryID(res.BroadcastID, dispatcher.ChannelSMS, id)
				d, err := f.store.GetDelivery(ctx, did)
				if err != nil {
					t.Fatal(err)
				}
				if got := string(d.Status) + " " + d.Reason; got != w || d.Attempts != 1 {
					t.Errorf("%s: %q after %d attempts, want %q after 1", id, got, d.Attempts, w)
				}
			}
			f.queue.mu.Lock()
			retries := f.queue.retries
			f.queue.mu.Unlock()
			if len(retries) != 2 || retries[0].attempt != 2 || retries[1].attempt != 2 {
				t.Errorf("retries enqueued %+v, want c and d at attempt 2", retries)
			}
			out := logs.String()
			if !strings.Contains(out, "level=ERROR") || !strings.Contains(out, "sender panicked") || !strings.Contains(out, res.BroadcastID+".sms.b") {
				t.Errorf("no error naming the deliveries in the log:\n%s", out)
			}
			if strings.Contains(out, "+4179000000") || strings.Contains(out, "boom") {
				t.Errorf("the panic's text (a phone number) is in the log:\n%s", out)
			}
		})
	}
}
