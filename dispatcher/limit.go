package dispatcher

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Rate is N events per Per. The zero Rate means no limit.
type Rate struct {
	N   int
	Per time.Duration
}

// MaxRateN is the largest N ParseRate accepts.
const MaxRateN = 1_000_000

var rateRE = regexp.MustCompile(`^([0-9]+)\s*/\s*(s|sec|second|m|min|minute|h|hour)$`)

// ParseRate parses a rate as configured: "100/s", "10/min" or "5/h" (also
// "/sec", "/second", "/m", "/minute", "/hour"), N from 1 to 1,000,000; "0"
// (or "0/s"...) is the zero Rate, no limit.
func ParseRate(s string) (Rate, error) {
	t := strings.TrimSpace(s)
	if t == "0" {
		return Rate{}, nil
	}
	m := rateRE.FindStringSubmatch(t)
	if m == nil {
		return Rate{}, fmt.Errorf("rate %q: want events per unit, like 100/s, 10/min or 5/h", s)
	}
	n, err := strconv.Atoi(m[1])
	if err != nil || n > MaxRateN {
		return Rate{}, fmt.Errorf("rate %q: at most %d events per unit", s, MaxRateN)
	}
	if n == 0 {
		return Rate{}, nil
	}
	per := time.Second
	switch m[2] {
	case "m", "min", "minute":
		per = time.Minute
	case "h", "hour":
		per = time.Hour
	}
	return Rate{N: n, Per: per}, nil
}

// String formats r as ParseRate reads it: "100/s", "10/min", "5/h"; "0" for
// the zero Rate, and N/Per (like "3/10s") for another period.
func (r Rate) String() string {
	if r.IsZero() {
		return "0"
	}
	unit := r.Per.String()
	switch r.Per {
	case time.Second:
		unit = "s"
	case time.Minute:
		unit = "min"
	case time.Hour:
		unit = "h"
	}
	return strconv.Itoa(r.N) + "/" + unit
}

// IsZero reports whether r is the zero Rate (no limit).
func (r Rate) IsZero() bool { return r.N <= 0 || r.Per <= 0 }

// Interval is the time between two events at r.
func (r Rate) Interval() time.Duration {
	if r.IsZero() {
		return 0
	}
	return r.Per / time.Duration(r.N)
}

// Tokens is what Limiter.Take reserved.
//
// Tokens are slots in a schedule every process shares, not a burst: the
// i-th token (from 0) may be used At + i·Every after Take returned, and not
// before. A caller that used them all at once would send faster than the
// rate.
type Tokens struct {
	// N is how many tokens Take reserved: n or 0.
	N int
	// At is when the first of them is due, from when Take returned.
	At time.Duration
	// Every is the time between two of them: the rate's interval, longer
	// while the key is slowed down.
	Every time.Duration
	// Wait, when N is 0, is how long until Take would reserve n.
	Wait time.Duration
	// Spread, when above 0, is how much earlier than Due(i) token i's slot
	// may lie: the Limiter placed the slots on the caller's clock to within
	// Spread. 0: it did not, and a slot may lie as early as Due(i) after
	// Take was called (the limiter read its clock somewhere during the
	// call).
	Spread time.Duration
}

// Due is when token i is due, from when Take returned.
func (t Tokens) Due(i int) time.Duration { return t.At + time.Duration(i)*t.Every }

// Limiter takes tokens from rate limits (GCRA) shared by every process, so
// any number of workers together send no faster than a provider allows.
// Keys name buckets ("sms", "webhook:{recipient}:{endpoint}"); the Limiter
// adds its own prefix. Implementations are safe for concurrent use.
type Limiter interface {
	// Take reserves n of key's next tokens at rate r, or none: it reserves
	// them when at most n tokens are reserved ahead already, by anyone,
	// and otherwise returns N = 0 and how long to Wait. The tokens follow
	// the ones reserved before, one Every apart (see Tokens), so callers
	// that each take chunks of n and use each token when it is due send,
	// together, at r and no faster, with one call per chunk; a caller that
	// asks again as soon as it may (at its first token's due time) keeps an
	// unbroken schedule. Ask for chunks (a fraction of a second of r), not
	// for a whole batch: what one caller reserved ahead, others wait for.
	// Take applies a slow-down (Slow) of key.
	Take(ctx context.Context, key string, r Rate, n int) (Tokens, error)
	// Slow lowers key's rate to factor (0 < factor < 1) of the r its
	// callers pass, for d: a provider answered 429. Every process sees it
	// (within about a second); a later Slow of the key replaces it.
	Slow(ctx context.Context, key string, factor float64, d time.Duration) error
	// TakeEach takes one token from each key's bucket at rate r (a burst of
	// r.N, then one every r.Interval()) in one round trip, and reports, in
	// the order of keys, which got theirs now. A key listed twice takes
	// twice. It applies each key's slow-down. It is the per-recipient guard
	// of a whole batch, and the per-endpoint limit of webhooks (one call
	// per distinct rate).
	TakeEach(ctx context.Context, keys []string, r Rate) ([]bool, error)
}

// RecipientKey names the per-recipient guard's bucket of one recipient on
// one channel, for Limiter.TakeEach.
func RecipientKey(ch Channel, recipientID string) string {
	return "recipient:" + string(ch) + ":" + recipientID
}
