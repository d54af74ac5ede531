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
	// NeedsCredit says the broadcast is a compensation notice that skips
	// recipients without a credit of their own (HasCredit).
	NeedsCredit bool
	// Policy is the broadcast's channel policy (nil: none): its order
	// reorders each recipient's preferences, its exclude rules keep
	// channels from the recipients they name, and in mode all a recipient
	// gets the update on every channel it can be reached on.
	Policy *ChannelPolicy
	// State is the update's state: an exclude rule applies while it is
	// before the rule's until (to a notice's StateNotice, always).
	State State
	// Affected are the incident's services, which exclude rules with
	// "affected" name recipients by.
	Affected []string
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
	// none (Reason is then ReasonNoChannel, ReasonPolicyExcluded or
	// ReasonRecipientDeleted).
	Channel Channel
	// Channels, in a policy's mode all, lists every channel the recipient
	// gets the update on, Channel first: one delivery each, all with this
	// decision's status. Nil otherwise (the one channel is Channel).
	Channels []Channel
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

// All returns every channel the decision is for: Channels in mode all,
// else Channel alone.
func (d Decision) All() []Channel {
	if len(d.Channels) > 0 {
		return d.Channels
	}
	return []Channel{d.Channel}
}

// Decide is every rule of what happens to one recipient's delivery of one
// broadcast, in the order they apply. r is nil when the recipient was
// deleted; its opted-out channels are in r.OptOut, its webhook endpoints
// in r.Endpoints (only those that want the update), its dead push tokens
// already removed. It does no I/O: the caller reads the facts in bulk.
//
//  1. A deleted recipient: suppressed, recipient_deleted. A recipient
//     without a credit, when the broadcast needs one (a compensation
//     notice): suppressed, no_credit.
//  2. The channel: the first in r's preference order (Recipient.Channels,
//     else Channels; the policy's order first, see ChannelPolicy.Order)
//     that the broadcast allows, a Sender serves, r is reachable on (an
//     address and no opt-out) and no active exclude rule of the policy
//     keeps from r. A retry keeps its channel while it stays so; a
//     fallback takes the first such channel after the one that failed. In
//     the policy's mode all, every such channel (Decision.Channels), and
//     a failed one has no fallback. None: suppressed, no_channel (an
//     opted-out address included: the recipient cannot be reached), or
//     policy_excluded when a channel r is reachable on was there but the
//     policy kept it from r.
//  3. Flap (first delivery only): a resolution within the flap window not
//     told to a recipient who never heard of the incident: suppressed, flap.
//  4. Quiet hours (first delivery and retries, minor updates only): held,
//     queued, quiet_hours, for as long as they last.
//  5. The per-recipient guard (first delivery only): take a token (in mode
//     all, one per channel: the caller decides each channel's delivery
//     again with OverLimit when its token is refused); over the limit,
//     suppressed, rate_limited. A critical resolution passes, and so does
//     any resolution to a recipient told of the incident before: who heard
//     "investigating" always hears it is over.
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
	if dc.NeedsCredit && x.Stage == StageFirst && !HasCredit(r) {
		return suppress(ChannelNone, ReasonNoCredit)
	}
	ch, why := dc.channel(r, x)
	if ch == ChannelNone {
		if x.Stage == StageRetry {
			return suppress(x.Channel, why)
		}
		return suppress(ChannelNone, why)
	}
	var all []Channel
	if x.Stage == StageFirst && dc.Policy.All() {
		all = dc.every(r)
		if len(all) < 2 {
			all = nil
		}
	}
	d := dc.decide(r, ch, x, now)
	if d.Status != StatusSuppressed {
		d.Channels = all
	}
	return d
}

// decide is rules 3 to 6 of Decide, for a recipient reachable on ch.
func (dc *DecideContext) decide(r *Recipient, ch Channel, x Facts, now time.Time) Decision {
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

// excluded reports whether an exclude rule of the policy, active for the
// update's state, keeps ch from r.
func (dc *DecideContext) excluded(r *Recipient, ch Channel) bool {
	if dc.Policy == nil {
		return false
	}
	for _, x := range dc.Policy.Exclude {
		if x.Channel == ch && x.active(dc.State) && x.names(r, dc.Affected) {
			return true
		}
	}
	return false
}

// prefs is r's preference order with the policy's order first.
func (dc *DecideContext) prefs(r *Recipient) []Channel {
	prefs := r.Channels
	if len(prefs) == 0 {
		prefs = Channels
	}
	if dc.Policy == nil || len(dc.Policy.Order) == 0 {
		return prefs
	}
	out := make([]Channel, 0, len(prefs))
	for _, ch := range dc.Policy.Order {
		if slices.Contains(prefs, ch) {
			out = append(out, ch)
		}
	}
	for _, ch := range prefs {
		if !slices.Contains(dc.Policy.Order, ch) {
			out = append(out, ch)
		}
	}
	return out
}

// channel is rule 2 of Decide: the channel, or ChannelNone and why.
func (dc *DecideContext) channel(r *Recipient, x Facts) (Channel, Reason) {
	if x.Stage == StageRetry {
		switch {
		case !dc.usable(r, x.Channel):
			return ChannelNone, ReasonNoChannel
		case dc.excluded(r, x.Channel):
			return ChannelNone, ReasonPolicyExcluded
		}
		return x.Channel, ""
	}
	prefs := dc.prefs(r)
	if x.Stage == StageFallback {
		i := slices.Index(prefs, x.Channel)
		if i < 0 || dc.Policy.All() {
			// Mode all: every other channel has its own delivery.
			return ChannelNone, ReasonNoChannel
		}
		prefs = prefs[i+1:]
	}
	why := ReasonNoChannel
	for _, ch := range prefs {
		if !dc.usable(r, ch) {
			continue
		}
		if dc.excluded(r, ch) {
			why = ReasonPolicyExcluded
			continue
		}
		return ch, ""
	}
	return ChannelNone, why
}

// every is rule 2 in mode all: every channel r gets the update on, in
// its (reordered) preference order.
func (dc *DecideContext) every(r *Recipient) []Channel {
	var out []Channel
	for _, ch := range dc.prefs(r) {
		if dc.usable(r, ch) && !dc.excluded(r, ch) {
			out = append(out, ch)
		}
	}
	return out
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
