package dispatcher

import (
	"slices"
	"time"
)

// Stage is which send of a delivery a decision is for.
type Stage int

const (
	// StageFirst is a recipient's first delivery of a broadcast (a batch),
	// and what a preview shows.
	StageFirst Stage = iota
	// StageRetry is a later attempt of a queued delivery: its channel is
	// fixed (Facts.Channel).
	StageRetry
	// StageFallback is a further delivery on the next channel after one
	// that failed for good (Facts.Channel) in the same broadcast.
	StageFallback
)

// DecideContext is what Decide knows of one broadcast: the rules in force
// and the update's traits. The fan-out builds it once per broadcast
// (Fanout.decideContext); it holds no state of any recipient.
type DecideContext struct {
	// Channels restricts the broadcast to these channels; empty: all.
	Channels []Channel
	// Serves reports whether a Sender serves ch; a channel without one is
	// unreachable. Nil: every channel is served.
	Serves func(ch Channel) bool
	// Severity is the incident's (a notice's follows its priority).
	Severity Severity
	// QuietHours, when set, holds minor updates back while it is quiet
	// hours in the recipient's time zone.
	QuietHours *QuietHours
	// Flap says the update is a resolution within the flap window of the
	// incident's opening: only recipients told of the incident before
	// (Facts.Told) get it.
	Flap bool
	// Guarded says the per-recipient guard applies: a limit is set and the
	// update is not a critical incident's resolution.
	Guarded bool
	// Resolution says the update resolves the incident: with Guarded, a
	// recipient told of the incident before (Facts.Told) passes the guard.
	Resolution bool
}

// Facts are what the caller read about one recipient for one decision,
// in bulk for a batch: Decide itself reads nothing.
type Facts struct {
	Stage Stage
	// Channel is the delivery's channel for StageRetry, and the channel
	// that failed for StageFallback.
	Channel Channel
	// Told: the recipient had been sent an earlier update of the incident
	// (read when DecideContext.Flap, and for a resolution the guard
	// refused).
	Told bool
	// OverLimit: the per-recipient guard refused the token a decision with
	// TakeToken asked for.
	OverLimit bool
}

// Decision is what happens to one recipient's delivery.
type Decision struct {
	// Channel is the channel of the delivery; ChannelNone when there is
	// none (Reason is then ReasonNoChannel or ReasonRecipientDeleted).
	Channel Channel
	// Status is StatusSending (send it now), StatusQueued (hold it for
	// Delay, then decide again) or StatusSuppressed (never send it).
	Status DeliveryStatus
	// Reason says why the delivery is held or suppressed.
	Reason Reason
	// Delay is how long a queued delivery is held.
	Delay time.Duration
	// TakeToken asks the caller to take one token of the per-recipient
	// guard before sending; when it is refused, the caller decides again
	// with Facts.OverLimit.
	TakeToken bool
}

// Send reports whether the delivery goes out now.
func (d Decision) Send() bool { return d.Status == StatusSending }

// Decide is every rule of what happens to one recipient's delivery of one
// broadcast, in the order they apply. r is nil when the recipient was
// deleted; its opted-out channels are in r.OptOut, its webhook endpoints
// in r.Endpoints (only those that want the update), its dead push tokens
// already removed. It does no I/O: the caller reads the facts in bulk.
//
//  1. A deleted recipient: suppressed, recipient_deleted.
//  2. The channel: the first in r's preference order (Recipient.Channels,
//     else Channels) that the broadcast allows, a Sender serves, and r is
//     reachable on (an address and no opt-out). A retry keeps its channel
//     while it stays so; a fallback takes the first such channel after the
//     one that failed. None: suppressed, no_channel (an opted-out address
//     included: the recipient cannot be reached).
//  3. Flap (first delivery only): a resolution within the flap window not
//     told to a recipient who never heard of the incident: suppressed, flap.
//  4. Quiet hours (first delivery and retries, minor updates only): held,
//     queued, quiet_hours, for as long as they last.
//  5. The per-recipient guard (first delivery only): take a token; over
//     the limit, suppressed, rate_limited. A critical resolution passes,
//     and so does any resolution to a recipient told of the incident
//     before: who heard "investigating" always hears it is over.
//  6. Otherwise: send.
//
// Retries and fallbacks continue a delivery the first decision let go, so
// the flap rule and the guard are not asked again; a fallback is sent at
// once, as it follows a send made just now.
//
// Two outcomes are not decided here: superseded and cancelled. The store's
// guard decides them atomically with the status write (BeginDeliveries,
// Claim, RunLeaseStore.Journal), the only place where no later update or
// cancellation can slip in between.
func Decide(r *Recipient, dc *DecideContext, x Facts, now time.Time) Decision {
	if r == nil {
		ch := ChannelNone
		if x.Stage != StageFirst {
			ch = x.Channel
		}
		return suppress(ch, ReasonRecipientDeleted)
	}
	ch := dc.channel(r, x)
	if ch == ChannelNone {
		if x.Stage == StageRetry {
			return suppress(x.Channel, ReasonNoChannel)
		}
		return suppress(ChannelNone, ReasonNoChannel)
	}
	if x.Stage == StageFirst && dc.Flap && !x.Told {
		return suppress(ch, ReasonFlap)
	}
	if x.Stage != StageFallback {
		if wait := dc.quietFor(r, now); wait > 0 {
			return Decision{Channel: ch, Status: StatusQueued, Reason: ReasonQuietHours, Delay: wait}
		}
	}
	if x.Stage == StageFirst && dc.Guarded && !(dc.Resolution && x.Told) {
		if x.OverLimit {
			return suppress(ch, ReasonRateLimited)
		}
		return Decision{Channel: ch, Status: StatusSending, TakeToken: true}
	}
	return Decision{Channel: ch, Status: StatusSending}
}

func suppress(ch Channel, why Reason) Decision {
	return Decision{Channel: ch, Status: StatusSuppressed, Reason: why}
}

// usable reports whether the broadcast may send to r on ch.
func (dc *DecideContext) usable(r *Recipient, ch Channel) bool {
	if len(dc.Channels) > 0 && !slices.Contains(dc.Channels, ch) {
		return false
	}
	if dc.Serves != nil && !dc.Serves(ch) {
		return false
	}
	return r.Reachable(ch)
}

// channel is rule 2 of Decide.
func (dc *DecideContext) channel(r *Recipient, x Facts) Channel {
	if x.Stage == StageRetry {
		if dc.usable(r, x.Channel) {
			return x.Channel
		}
		return ChannelNone
	}
	prefs := r.Channels
	if len(prefs) == 0 {
		prefs = Channels
	}
	if x.Stage == StageFallback {
		i := slices.Index(prefs, x.Channel)
		if i < 0 {
			return ChannelNone
		}
		prefs = prefs[i+1:]
	}
	for _, ch := range prefs {
		if dc.usable(r, ch) {
			return ch
		}
	}
	return ChannelNone
}

// quietFor is how long r's delivery must wait for the end of its quiet
// hours (0: send now). Only minor updates wait.
func (dc *DecideContext) quietFor(r *Recipient, now time.Time) time.Duration {
	if dc.QuietHours == nil || dc.Severity != SeverityMinor {
		return 0
	}
	loc := time.UTC
	if r.Timezone != "" {
		if l, err := time.LoadLocation(r.Timezone); err == nil {
			loc = l
		}
	}
	return dc.QuietHours.Until(now, loc)
}
