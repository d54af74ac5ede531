package dispatcher

import "strings"

// Reason says why a delivery was not sent, or not yet: the reason of a
// suppressed or held delivery, the refusal of a store's guard, or the code
// of a SendError. A delivery's recorded reason is a Reason on its own
// (a decision: "no_channel") or a SendError's code followed by the
// provider's text ("timeout: webhook: endpoint ..."; see Outcome.Reason).
//
// Every reason the dispatcher and the channels give is listed here once;
// providers' own codes ("21211", "550 5.1.1", "fcm:UNREGISTERED") are not,
// they are the provider's. Values are the strings stored and shown by the
// API, so they must never change.
type Reason string

// Reasons Decide gives (see decide.go).
const (
	// ReasonNoChannel: the recipient cannot be reached on any channel the
	// broadcast allows and a sender serves: no contact for any preferred
	// channel, an opt-out of it, or, for a retry, the delivery's channel
	// is no longer reachable. Recorded under channel "none" on a first
	// attempt.
	ReasonNoChannel Reason = "no_channel"
	// ReasonPolicyExcluded: the recipient can be reached, but only on
	// channels the update's channel policy keeps from it (an exclude rule,
	// such as no SMS to users of the affected mobile service until the
	// resolution). Recorded under channel "none" on a first attempt.
	ReasonPolicyExcluded Reason = "policy_excluded"
	// ReasonRecipientDeleted: the recipient was deleted after the plan
	// snapshot its audience.
	ReasonRecipientDeleted Reason = "recipient_deleted"
	// ReasonFlap: a resolution not sent to a recipient who never heard of
	// an incident that was over within the flap window.
	ReasonFlap Reason = "flap"
	// ReasonQuietHours: a minor update (or a bulk or low notice) held
	// until the recipient's quiet hours end; the delivery stays queued. As
	// a SendError code it is a wait (see IsWait), not a failure.
	ReasonQuietHours Reason = "quiet_hours"
	// ReasonRateLimited: the per-recipient guard held the delivery back
	// (more than FanoutConfig.PerRecipient messages on the channel).
	ReasonRateLimited Reason = "rate_limited"
)

// Reasons the SMS budget gives (see budget.go).
const (
	// ReasonSMSBudget: the deployment's daily or monthly SMS budget
	// (costs.budget) had no room for the message's cost when it was about
	// to be handed to the provider: the SMS delivery is suppressed and the
	// recipient gets the update on the next channel, when there is one.
	ReasonSMSBudget Reason = "sms_budget"
)

// Reasons the store's guard gives, atomically with the status write (see
// Guard): a delivery refused by it is suppressed with the reason, or,
// for ReasonLeaseLost, left to the run that holds the batch now.
const (
	// ReasonSuperseded: a later update of the same incident exists, so a
	// recipient never reads an older state after a newer one.
	ReasonSuperseded Reason = "superseded"
	// ReasonCancelled: an operator cancelled the broadcast before the
	// delivery was handed to a provider. Also the webhook channel's code
	// of a request cut off by the run's end, its fate unknown (transient).
	ReasonCancelled Reason = "cancelled"
	// ReasonLeaseLost: this run no longer holds its lease; another run has
	// the batch. Never recorded.
	ReasonLeaseLost Reason = "lease_lost"
)

// SendError codes of the fan-out's own transient errors and waits.
const (
	// ReasonInFlight: deliveries of an earlier update of the incident are
	// still being handed to a provider; the batch waits (a wait).
	ReasonInFlight Reason = "in_flight"
	// ReasonBusy: another live run is sending the delivery (a wait).
	ReasonBusy Reason = "busy"
	// ReasonLateWait: a late member (catch-up) waits until its broadcast
	// is planned and the batch that holds it in the snapshot has run
	// (a wait, not an outcome).
	ReasonLateWait Reason = "late_wait"
	// ReasonLeft: this run lost its lease mid-send and left deliveries in
	// sending for the run that has the batch now (transient).
	ReasonLeft Reason = "left"
	// ReasonRetry: a retry failed transiently and another attempt is due;
	// the error's text is the delivery's recorded reason (transient).
	ReasonRetry Reason = "retry"
	// ReasonRateLimiter: the rate limiter failed (Redis unreachable); the
	// messages not yet sent are held back (transient).
	ReasonRateLimiter Reason = "rate_limiter"
	// ReasonPanic: a Sender panicked; the messages it had not reported are
	// failed transiently (see Fanout, collector.send).
	ReasonPanic Reason = "panic"
)

// SendError codes the channels share, besides their providers' own.
const (
	// ReasonBlockedAddress: the address a webhook or Web Push endpoint
	// resolves to is refused by the network guard (permanent).
	ReasonBlockedAddress Reason = "blocked_address"
	// ReasonConnectFailed: no connection to the endpoint or push service
	// (transient).
	ReasonConnectFailed Reason = "connect_failed"
	// ReasonTimeout: the endpoint took longer than the channel's timeout
	// to answer (transient).
	ReasonTimeout Reason = "timeout"
	// ReasonInvalidURL: the webhook endpoint's URL cannot be requested
	// (permanent).
	ReasonInvalidURL Reason = "invalid_url"
	// ReasonNoSecret: the webhook endpoint has no usable signing secret
	// (permanent).
	ReasonNoSecret Reason = "no_secret"
	// ReasonNoEndpoint: the merchant has no active endpoint for the event
	// (suppressed).
	ReasonNoEndpoint Reason = "no_endpoint"
	// ReasonPayload: the webhook payload could not be built (permanent).
	ReasonPayload Reason = "payload"
	// ReasonNoPhone: an SMS to a recipient without a phone number
	// (permanent).
	ReasonNoPhone Reason = "no_phone"
	// ReasonNoToken: a push message without a live token (permanent).
	ReasonNoToken Reason = "no_token"
	// ReasonUnregistered: every push token of the recipient is dead
	// (permanent; the tokens are removed).
	ReasonUnregistered Reason = "unregistered"
	// ReasonOutbox: the outbox could not store the message (transient).
	ReasonOutbox Reason = "outbox"
	// ReasonExpired: the provider dropped the message once its validity
	// period passed in its queue (Twilio 30036, or 30001 at its 10-hour
	// cap): it would have arrived late, so it never did (final, reported
	// by a delivery receipt).
	ReasonExpired Reason = "expired"
	// ReasonNoCredit: a compensation notice that skips recipients without
	// a credit of their own (no credit_amount attribute, or zero), and the
	// recipient has none (suppressed).
	ReasonNoCredit Reason = "no_credit"
)

// String returns r as stored.
func (r Reason) String() string { return string(r) }

// Labels a metric counts a delivery not sent under besides the Reasons.
const (
	// ReasonLabelProvider: a provider's own code ("21211", "550 5.1.1"),
	// or an error without a code; the delivery's record has the full text.
	ReasonLabelProvider = "provider"
	// ReasonLabelNone: no reason was recorded.
	ReasonLabelNone = "none"
)

// reasons is every Reason above (TestReasonsListed keeps it whole).
var reasons = map[Reason]bool{
	ReasonNoChannel: true, ReasonPolicyExcluded: true, ReasonRecipientDeleted: true, ReasonFlap: true,
	ReasonQuietHours: true, ReasonRateLimited: true, ReasonSMSBudget: true, ReasonSuperseded: true,
	ReasonCancelled: true, ReasonLeaseLost: true, ReasonInFlight: true, ReasonBusy: true,
	ReasonLateWait: true, ReasonLeft: true, ReasonRetry: true, ReasonRateLimiter: true, ReasonPanic: true,
	ReasonBlockedAddress: true, ReasonConnectFailed: true, ReasonTimeout: true, ReasonInvalidURL: true,
	ReasonNoSecret: true, ReasonNoEndpoint: true, ReasonPayload: true, ReasonNoPhone: true,
	ReasonNoToken: true, ReasonUnregistered: true, ReasonOutbox: true, ReasonExpired: true, ReasonNoCredit: true,
}

// ReasonLabel is the label a metric counts a delivery under, from its
// recorded reason (a Reason, or a code followed by ": " and the provider's
// text): the Reason it starts with, ReasonLabelProvider for anything else,
// ReasonLabelNone when empty. So a metric's reasons are a bounded set
// (the Reasons and those two), whatever providers answer. No allocation.
func ReasonLabel(recorded string) string {
	if recorded == "" {
		return ReasonLabelNone
	}
	code, _, _ := strings.Cut(recorded, ":")
	if reasons[Reason(code)] {
		return code
	}
	return ReasonLabelProvider
}
