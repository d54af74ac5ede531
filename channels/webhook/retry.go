package webhook

import (
	"net/http"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// retryAfter reads a Retry-After header, capped at MaxRetryAfter; def when
// absent, unreadable or not in the future.
func retryAfter(h http.Header, now time.Time, def time.Duration) time.Duration {
	return dispatcher.RetryAfter(h, now, def, MaxRetryAfter)
}
