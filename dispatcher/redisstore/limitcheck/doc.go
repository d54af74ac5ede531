// Package limitcheck holds the end-to-end checks of issue 6's shared rate
// limits: SMS sent through ratelimit.Sender on redisstore's Limiter,
// on a real Redis, from one process and from three sharing it, and the
// slow-down after a 429 from twiliotest, the strict fake of Twilio.
//
// It has no code, only tests. The pacing checks run on a fake clock
// (internal/clocktest): every message's time is exact, so they assert the
// rate itself (no one-second window above it, and no slower than it)
// however busy the machine. The same runs in real time, against the fake's
// own one-second windows and with three real worker processes, are a
// benchmark: `tocsin bench --rates` (docs/BENCHMARKS.md).
package limitcheck
