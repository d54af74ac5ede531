package null_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/tocsin-dev/tocsin/channels/channeltest"
	"github.com/tocsin-dev/tocsin/channels/null"
	"github.com/tocsin-dev/tocsin/dispatcher"
)

// counter is the null channel's provider view: the sink keeps nothing but
// a count, so Received returns that many empty entries (CountOnly).
type counter struct{ s *null.Sender }

func (c counter) Received() []channeltest.Received {
	return make([]channeltest.Received, c.s.Sent())
}

func (c counter) FailNext(kind channeltest.FailKind, _ int) error {
	return fmt.Errorf("the null channel has no %s failures: %w", kind, errors.ErrUnsupported)
}

func TestConformance(t *testing.T) {
	t.Parallel()
	channeltest.Run(t, channeltest.Harness{
		Channel:   dispatcher.ChannelPush,
		CountOnly: true,
		NewFunc: func(t *testing.T) (dispatcher.Sender, channeltest.Provider) {
			s := &null.Sender{}
			return s, counter{s}
		},
		RecipientFunc: func(i int) *dispatcher.Recipient {
			return &dispatcher.Recipient{Kind: dispatcher.KindCustomer, Push: dispatcher.FCMTokens(fmt.Sprintf("token-%d", i))}
		},
	})
}

func TestSentCounts(t *testing.T) {
	t.Parallel()
	s := &null.Sender{}
	msg := &dispatcher.Message{Recipient: &dispatcher.Recipient{ID: "r1"}}
	s.Send(t.Context(), []*dispatcher.Message{msg, msg})
	s.Send(t.Context(), nil)
	s.Send(t.Context(), []*dispatcher.Message{msg})
	if got := s.Sent(); got != 3 {
		t.Errorf("Sent() = %d after sending 3 messages, want 3", got)
	}
}
