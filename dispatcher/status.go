package dispatcher

// CanMove is the delivery status transition rule, stated once: whether an
// outcome in status to may replace a delivery's status from (empty: there
// is no delivery yet). What is not final yet (queued, sending) takes any
// status; what is final stays, except for a provider's later word: sent
// moves on to delivered or failed, and unknown (in flight when its worker
// stopped) is settled as sent, delivered or failed.
//
// Every store applies it to Record, RunLeaseStore.Journal and
// ApplyProviderStatus; redisstore's Lua receives it as a table built from
// this function, so the two cannot drift. The store's other moves are
// named operations, not outcomes: Claim (queued to sending), the guard
// (queued or sending to suppressed, sending to unknown) and Requeue (an
// operator's failed to queued).
func CanMove(from, to DeliveryStatus) bool {
	switch from {
	case StatusSent:
		return to == StatusDelivered || to == StatusFailed
	case StatusUnknown:
		return to == StatusSent || to == StatusDelivered || to == StatusFailed
	}
	return !from.Final()
}
