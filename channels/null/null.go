// Package null is a sink channel that accepts every message and keeps
// nothing. The benchmark uses it to measure the dispatcher alone.
package null

import (
	"context"
	"sync/atomic"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// Sender accepts every message.
type Sender struct {
	sent atomic.Int64
}

var _ dispatcher.Sender = (*Sender)(nil)

// Send reports every message as delivered. It announces the whole batch
// with one dispatcher.Handing, as a Sender whose provider takes a batch in
// one call does; a refusal refuses them all.
func (s *Sender) Send(ctx context.Context, msgs []*dispatcher.Message) []dispatcher.Result {
	if refused := dispatcher.HandingAll(ctx, len(msgs)); refused != nil {
		return refused
	}
	res := make([]dispatcher.Result, len(msgs))
	for i := range res {
		res[i] = dispatcher.Result{Status: dispatcher.StatusDelivered}
	}
	s.sent.Add(int64(len(msgs)))
	return res
}

// Sent returns how many messages were accepted.
func (s *Sender) Sent() int64 { return s.sent.Load() }
