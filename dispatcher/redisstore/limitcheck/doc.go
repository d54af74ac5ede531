// Package limitcheck holds the end-to-end checks of issue 6's shared rate
// limits: SMS sent through dispatcher.RateLimited on redisstore's Limiter to
// twiliotest, the strict fake of Twilio, from one process and from three
// worker processes sharing one Redis, and the slow-down after a 429.
//
// It has no code, only tests. They measure time (no one-second window at
// the fake may hold more requests than the rate), so they run in a test
// binary of their own: in the store's, its CPU-heavy tests (miniredis
// under the race detector) would hold up the fake's goroutines and make it
// see bunches that were never sent.
package limitcheck
