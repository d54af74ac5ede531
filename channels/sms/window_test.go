package sms

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

func TestWindow(t *testing.T) {
	t.Parallel()
	perSecond := func(n int) dispatcher.Rate { return dispatcher.Rate{N: n, Per: time.Second} }
	for _, tc := range []struct {
		name        string
		rate        dispatcher.Rate
		latency     time.Duration
		least, most int
		want        int
	}{
		{"no rate: least", dispatcher.Rate{}, 100 * time.Millisecond, 32, 512, 32},
		{"no latency yet: least", perSecond(1000), 0, 32, 512, 32},
		{"1000/s at 100ms: rate x latency, a quarter more, plus one", perSecond(1000), 100 * time.Millisecond, 32, 512, 126},
		{"5000/s at 100ms", perSecond(5000), 100 * time.Millisecond, 32, 1000, 626},
		{"5000/s at 100ms, capped", perSecond(5000), 100 * time.Millisecond, 32, 512, 512},
		{"50/s at 100ms: least", perSecond(50), 100 * time.Millisecond, 32, 512, 32},
		{"per minute", dispatcher.Rate{N: 60000, Per: time.Minute}, 100 * time.Millisecond, 32, 512, 126},
		{"most below least: least", perSecond(5000), time.Second, 32, 8, 32},
	} {
		if got := Window(tc.rate, tc.latency, tc.least, tc.most); got != tc.want {
			t.Errorf("%s: Window(%v, %v, %d, %d) = %d, want %d", tc.name, tc.rate, tc.latency, tc.least, tc.most, got, tc.want)
		}
	}
}

// TestWindowObserve: without a rate one slow answer does not move the
// window (it decides once a round is over, see TestWindowAdaptsWithoutRate);
// with one it follows Window at the running mean of the slots' time, from
// the first observation on.
func TestWindowObserve(t *testing.T) {
	t.Parallel()
	w := newWindow(dispatcher.Rate{}, 32, 512)
	w.observe(time.Second, true, time.Time{})
	if size, _, _ := w.state(); size != 32 {
		t.Errorf("no rate, 1s slots: size %d, want 32", size)
	}
	w = newWindow(dispatcher.Rate{N: 1000, Per: time.Second}, 32, 512)
	// Before any answer, the rate's need at FirstLatency, not the least.
	if size, _, _ := w.state(); size != 189 {
		t.Errorf("1000/s, no answer yet: size %d, want 189 (150 ms)", size)
	}
	w.observe(100*time.Millisecond, true, time.Time{})
	if size, _, _ := w.state(); size != 126 {
		t.Errorf("1000/s, 100ms slots: size %d, want 126", size)
	}
	// Faster answers shrink it, by a sixteenth of the difference each.
	for range 200 {
		w.observe(time.Millisecond, true, time.Time{})
	}
	if size, _, _ := w.state(); size != 32 {
		t.Errorf("1000/s after many 1ms slots: size %d, want the least, 32", size)
	}
}

// TestWindowGrowsAndServesInOrder: observing a slow answer at a rate grows
// the window at once and wakes the waiters; a waiter whose context ends
// leaves the line and holds nothing.
func TestWindowGrowsAndServesInOrder(t *testing.T) {
	t.Parallel()
	// 1/s needs 2 slots at FirstLatency: the window starts at its least.
	w := newWindow(dispatcher.Rate{N: 1, Per: time.Second}, 2, 20)
	ctx := t.Context()
	for range 2 {
		if err := w.acquire(ctx, place{}); err != nil {
			t.Fatal(err)
		}
	}
	got := make(chan int, 3)
	for i := range 3 {
		waitFor(t, func() bool { _, _, n := w.state(); return n == i })
		go func() {
			if w.acquire(ctx, place{}) == nil {
				got <- i
			}
		}()
	}
	waitFor(t, func() bool { _, _, n := w.state(); return n == 3 })
	// A slot given back goes to the first waiter.
	for want := range 2 {
		w.release()
		if i := <-got; i != want {
			t.Fatalf("a slot given back went to waiter %d, want %d", i, want)
		}
	}
	// 1/s at 10s: Window = 14 slots, room for the last waiter.
	w.observe(10*time.Second, true, time.Time{})
	if i := <-got; i != 2 {
		t.Fatalf("the grown window served waiter %d, want 2", i)
	}
	if size, used, _ := w.state(); size != 14 || used != 3 {
		t.Errorf("size %d, used %d; want 14 and 3", size, used)
	}

	// Full again: a waiter whose context ends gives up its place.
	for range 11 {
		if err := w.acquire(ctx, place{}); err != nil {
			t.Fatal(err)
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- w.acquire(cctx, place{}) }()
	waitFor(t, func() bool { _, _, n := w.state(); return n == 1 })
	cancel()
	if err := <-errc; err == nil {
		t.Fatal("acquire with a cancelled context took a slot")
	}
	w.release()
	if size, used, n := w.state(); size != 14 || used != 13 || n != 0 {
		t.Errorf("size %d, used %d, %d waiting; want 14, 13 and none", size, used, n)
	}
}

// TestWindowServesInSendOrder: a slot given back goes to the waiter of
// the highest lane, within a lane to the oldest broadcast's, within a
// broadcast to the lowest rank's (a retry's -1 first); waiters of the same
// place keep their order.
func TestWindowServesInSendOrder(t *testing.T) {
	t.Parallel()
	w := newWindow(dispatcher.Rate{N: 1, Per: time.Second}, 1, 1)
	ctx := t.Context()
	if err := w.acquire(ctx, place{}); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	at := func(lane dispatcher.Priority, since time.Duration, rank int) place {
		return placeOf(dispatcher.WithSendOrder(ctx, dispatcher.SendOrder{Lane: lane, Since: t0.Add(since), Rank: rank}), time.Time{})
	}
	// In the order they ask.
	asks := []struct {
		name string
		at   place
	}{
		{"normal 0:02 batch 0", at(dispatcher.PriorityNormal, 2*time.Second, 0)},
		{"bulk 0:00 batch 0", at(dispatcher.PriorityBulk, 0, 0)},
		{"normal 0:01 batch 500", at(dispatcher.PriorityNormal, time.Second, 500)},
		{"normal 0:01 batch 0 a", at(dispatcher.PriorityNormal, time.Second, 0)},
		{"normal 0:01 batch 0 b", at(dispatcher.PriorityNormal, time.Second, 0)},
		{"normal 0:01 retry", at(dispatcher.PriorityNormal, time.Second, -1)},
		{"critical 0:03 batch 1000", at(dispatcher.PriorityCritical, 3*time.Second, 1000)},
	}
	got := make(chan string, len(asks))
	for i, a := range asks {
		waitFor(t, func() bool { _, _, n := w.state(); return n == i })
		go func() {
			if w.acquire(ctx, a.at) == nil {
				got <- a.name
			}
		}()
	}
	waitFor(t, func() bool { _, _, n := w.state(); return n == len(asks) })
	want := []string{"critical 0:03 batch 1000", "normal 0:01 retry", "normal 0:01 batch 0 a", "normal 0:01 batch 0 b",
		"normal 0:01 batch 500", "normal 0:02 batch 0", "bulk 0:00 batch 0"}
	for _, name := range want {
		w.release()
		if g := <-got; g != name {
			t.Fatalf("a slot given back went to %q, want %q (order %q)", g, name, want)
		}
	}
}

// TestWindowClaimsForTheWholeSend: a Send claims a slot for each of its
// messages at once, so slots freed while it is not asking (between two
// messages) are handed to it still, ahead of a lower place's; close gives
// back what it was handed and did not take, and a cancelled next takes
// nothing.
func TestWindowClaimsForTheWholeSend(t *testing.T) {
	t.Parallel()
	w := newWindow(dispatcher.Rate{N: 1, Per: time.Second}, 2, 2)
	ctx := t.Context()
	for range 2 {
		if err := w.acquire(ctx, place{}); err != nil {
			t.Fatal(err)
		}
	}
	high, low := w.claim(place{rank: 0}, 3), w.claim(place{rank: 3}, 3)
	// Two slots come back while the high claim asks for none.
	w.release()
	w.release()
	if size, used, n := w.state(); used != 2 || n != 2 || len(high.ready) != 2 || len(low.ready) != 0 {
		t.Fatalf("after two releases: size %d, used %d, %d claims waiting, %d handed to the high claim and %d to the low; want 2 used, both waiting, 2 and 0",
			size, used, n, len(high.ready), len(low.ready))
	}
	for range 2 {
		if err := high.next(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// A cancelled next takes nothing, and close gives back what the
	// claim was handed: the low claim gets it.
	w.release()
	if len(high.ready) != 1 {
		t.Fatalf("the third release handed the high claim %d, want 1", len(high.ready))
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := high.next(cctx); err == nil {
		t.Fatal("next with a cancelled context took a slot")
	}
	high.close()
	if len(low.ready) != 1 {
		t.Fatalf("after the high claim closed, the low one was handed %d, want 1", len(low.ready))
	}
	low.close()
	low.close() // a second close gives back nothing more
	if size, used, n := w.state(); used != 1 || n != 0 {
		t.Errorf("after both closed: size %d, used %d (2 at first and the high claim's 2, less 3 released), %d waiting; want 1 and none", size, used, n)
	}
}

// TestPlaceOf: a Send's place comes from its context's SendOrder; without
// one it is the normal lane's, at the Send's start. An empty or unknown
// lane ranks as normal, as the queue treats it.
func TestPlaceOf(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	for i, p := range dispatcher.Priorities {
		o := dispatcher.SendOrder{Lane: p, Since: now.Add(-time.Minute), Rank: 500}
		if got, want := placeOf(dispatcher.WithSendOrder(ctx, o), now), (place{rank: i, since: o.Since, seq: 500}); got != want {
			t.Errorf("placeOf(%+v) = %+v, want %+v", o, got, want)
		}
	}
	normal := slices.Index(dispatcher.Priorities, dispatcher.PriorityNormal)
	if got, want := placeOf(ctx, now), (place{rank: normal, since: now}); got != want {
		t.Errorf("placeOf without an order = %+v, want %+v", got, want)
	}
	if got := placeOf(dispatcher.WithSendOrder(ctx, dispatcher.SendOrder{Lane: "urgent"}), now); got.rank != normal {
		t.Errorf("an unknown lane ranks %d, want normal's %d", got.rank, normal)
	}
}

// rounds runs n rounds of w without a rate: each fills the window (or,
// with busy false, holds one slot at a time) and observes every slot at
// slot(size), the size the round began at. It returns the sizes after
// each round.
func rounds(t *testing.T, w *window, n int, busy bool, slot func(size int) time.Duration) []int {
	t.Helper()
	ctx := t.Context()
	var sizes []int
	for range n {
		size, _, _ := w.state()
		if !busy {
			for range size {
				if err := w.acquire(ctx, place{}); err != nil {
					t.Fatal(err)
				}
				w.observe(slot(size), true, time.Time{})
				w.release()
			}
		} else {
			for range size {
				if err := w.acquire(ctx, place{}); err != nil {
					t.Fatal(err)
				}
			}
			for range size {
				w.observe(slot(size), true, time.Time{})
			}
			for range size {
				w.release()
			}
		}
		now, _, _ := w.state()
		sizes = append(sizes, now)
	}
	return sizes
}

// steady answers every slot in d, whatever the window's size.
func steady(d time.Duration) func(int) time.Duration { return func(int) time.Duration { return d } }

// byRound answers the slots of the first rounds at the least size, least
// slots each, in ds in turn, and every slot after them in the last of ds.
func byRound(least int, ds ...time.Duration) func(int) time.Duration {
	seen := 0
	return func(int) time.Duration {
		d := ds[min(seen/least, len(ds)-1)]
		seen++
		return d
	}
}

// TestWindowAdaptsWithoutRate: without a rate the window grows while
// answers take as long with more in flight, up to its most; stops where
// they queue (each slot as long as the window is wide: this host's CPU);
// comes back to its least when the provider becomes slower for good and
// grows again from there; halves on a 20429; and does not grow on slots
// that never filled it.
func TestWindowAdaptsWithoutRate(t *testing.T) {
	t.Parallel()
	const least, most = 32, 1024

	w := newWindow(dispatcher.Rate{}, least, most)
	sizes := rounds(t, w, baseRounds+20, true, steady(20*time.Millisecond))
	if sizes[baseRounds-2] != least {
		t.Fatalf("grown before its base rested on %d rounds: sizes %v", baseRounds, sizes)
	}
	if got := sizes[len(sizes)-1]; got != most {
		t.Fatalf("provider answering in 20 ms however many in flight: sizes %v, want it to reach %d", sizes, most)
	}
	for k := 1; k < len(sizes); k++ {
		if sizes[k] < sizes[k-1] {
			t.Fatalf("steady answers shrank the window: %v", sizes)
		}
	}

	// The provider becomes ten times slower for good: back to the least,
	// then, the base learnt there again, up to the most.
	sizes = rounds(t, w, 60, true, steady(200*time.Millisecond))
	if got := sizes[len(sizes)-1]; got != least {
		t.Fatalf("answers ten times slower: sizes %v, want back to %d", sizes, least)
	}
	sizes = rounds(t, w, 2*adaptEpoch/least+20, true, steady(200*time.Millisecond))
	if got := sizes[len(sizes)-1]; got != most {
		t.Fatalf("answers steady at 200 ms again: sizes end %v, want %d", sizes[len(sizes)-10:], most)
	}

	// A 20429 halves it, and the others of the same window's worth of
	// slots leave it there; 20429s that go on halve it again each window.
	for range 5 {
		w.throttled()
		w.observe(time.Millisecond, false, time.Time{})
	}
	if size, _, _ := w.state(); size != most/2 {
		t.Fatalf("after five 20429s in a row: size %d, want %d (halved once)", size, most/2)
	}
	for range 2 * most {
		w.throttled()
		w.observe(time.Millisecond, false, time.Time{})
	}
	if size, _, _ := w.state(); size != least {
		t.Fatalf("after 20429s for %d slots: size %d, want %d", 2*most, size, least)
	}
	sizes = rounds(t, w, 20, true, steady(200*time.Millisecond))
	if got := sizes[len(sizes)-1]; got < 4*least {
		t.Fatalf("answered again at the same pace: sizes %v, want it to grow back", sizes)
	}
	w.throttled()
	if size, _, _ := w.state(); size != sizes[len(sizes)-1]/2 {
		t.Fatalf("after a 20429: size %d, want %d", size, sizes[len(sizes)-1]/2)
	}

	// Each slot as long as the window is wide (queued for the CPU): it
	// stops before the slots take twice the least size's, and stays.
	w = newWindow(dispatcher.Rate{}, least, most)
	cpu := func(size int) time.Duration { return time.Duration(size) * 100 * time.Microsecond }
	sizes = rounds(t, w, 200, true, cpu)
	for _, s := range sizes {
		if s > 2*least {
			t.Fatalf("slots growing with the window: sizes %v, want none above %d", sizes, 2*least)
		}
	}

	// The same after a slow first round (connections dialled, the
	// journal queued behind the snapshot): the base is not taken from it.
	w = newWindow(dispatcher.Rate{}, least, most)
	seen := 0
	sizes = rounds(t, w, 200, true, func(size int) time.Duration {
		if seen++; seen <= least {
			return 10 * time.Millisecond
		}
		return cpu(size)
	})
	for _, s := range sizes {
		if s > 2*least {
			t.Fatalf("slots growing with the window after a slow first round: sizes %v, want none above %d", sizes, 2*least)
		}
	}

	// Never full: no growth, however fast the answers.
	w = newWindow(dispatcher.Rate{}, least, most)
	sizes = rounds(t, w, 10, false, steady(time.Millisecond))
	if got := sizes[len(sizes)-1]; got != least {
		t.Fatalf("one request at a time: sizes %v, want %d", sizes, least)
	}

	// Twilio's own spread, 100 to 300 ms however many in flight: the
	// rounds' means are steady, so it grows (one lucky slot of 100 ms
	// against means of 200 would hold it at its least).
	w = newWindow(dispatcher.Rate{}, least, most)
	rnd := rand.New(rand.NewPCG(1, 2))
	sizes = rounds(t, w, baseRounds+20, true, func(int) time.Duration {
		return 100*time.Millisecond + time.Duration(rnd.Int64N(int64(200*time.Millisecond)))
	})
	if got := sizes[len(sizes)-1]; got != most {
		t.Fatalf("answers spread over 100-300 ms: sizes %v, want it to reach %d", sizes, most)
	}

	// Slots Twilio did not answer (cut short, throttled) say nothing of
	// its pace: a fast one neither sets the base nor ends a round.
	w = newWindow(dispatcher.Rate{}, least, most)
	w.observe(50*time.Microsecond, false, time.Time{})
	sizes = rounds(t, w, baseRounds+20, true, steady(20*time.Millisecond))
	if got := sizes[len(sizes)-1]; got != most {
		t.Fatalf("after an unanswered 50 µs slot: sizes %v, want it to reach %d", sizes, most)
	}

	// Idle for a minute: the next Send starts from the least, its base to
	// learn anew; less idle, or a slot held, keeps it.
	ended := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	w.observe(20*time.Millisecond, true, ended)
	w.resume(ended.Add(adaptIdle - time.Second))
	if size, _, _ := w.state(); size != most {
		t.Fatalf("idle less than %v: size %d, want %d", adaptIdle, size, most)
	}
	if err := w.acquire(t.Context(), place{}); err != nil {
		t.Fatal(err)
	}
	w.resume(ended.Add(2 * adaptIdle))
	if size, _, _ := w.state(); size != most {
		t.Fatalf("a slot held: size %d, want %d", size, most)
	}
	w.release()
	w.resume(ended.Add(2 * adaptIdle))
	if size, _, _ := w.state(); size != least {
		t.Fatalf("idle %v: size %d, want %d", 2*adaptIdle, size, least)
	}
	if sizes = rounds(t, w, baseRounds, true, steady(time.Millisecond)); sizes[len(sizes)-2] != least {
		t.Fatalf("grown again before its new base rested on %d rounds: sizes %v", baseRounds, sizes)
	}

	// With a rate, a 20429 leaves the window to the rate limiter.
	w = newWindow(dispatcher.Rate{N: 1000, Per: time.Second}, least, most)
	w.throttled()
	if size, _, _ := w.state(); size != 189 {
		t.Fatalf("with a rate, after a 20429: size %d, want 189 (the rate's need at FirstLatency)", size)
	}
}

// TestWindowSlowStart: without a rate, against a provider answering in
// 100 ms however many are in flight, the window settles its base on two
// rounds (200 ms) rather than eight, never on one, and then doubles each
// round up to its most (from a base of 10 ms, not under it); the first
// round above the least size showing requests queueing, a shrink or a
// 20429 ends the doubling (a quarter a round from there), a slow round at
// the least size does not, and a window idle for adaptIdle doubles again.
func TestWindowSlowStart(t *testing.T) {
	t.Parallel()
	const least, most = 32, 1024

	w := newWindow(dispatcher.Rate{}, least, most)
	sizes := rounds(t, w, 7, true, steady(100*time.Millisecond))
	if want := []int{32, 64, 128, 256, 512, 1024, 1024}; !slices.Equal(sizes, want) {
		t.Fatalf("answers in 100 ms: sizes %v, want %v", sizes, want)
	}

	// A slow first round (150 ms) and then 100 ms: the same.
	w = newWindow(dispatcher.Rate{}, least, most)
	sizes = rounds(t, w, 7, true, byRound(least, 150*time.Millisecond, 100*time.Millisecond))
	if want := []int{32, 64, 128, 256, 512, 1024, 1024}; !slices.Equal(sizes, want) {
		t.Fatalf("a slow first round, then 100 ms: sizes %v, want %v", sizes, want)
	}

	// One round of 250 ms is not a base: a start's slowness alone.
	w = newWindow(dispatcher.Rate{}, least, most)
	sizes = rounds(t, w, 3, true, byRound(least, 250*time.Millisecond, 100*time.Millisecond))
	if want := []int{32, 64, 128}; !slices.Equal(sizes, want) {
		t.Fatalf("a first round of 250 ms, then 100 ms: sizes %v, want %v", sizes, want)
	}

	// A slow round at the least size (Twilio's spread, before any
	// growth) leaves the slow start on: 100, 210, 100 ms.
	w = newWindow(dispatcher.Rate{}, least, most)
	sizes = rounds(t, w, 5, true, byRound(least, 100*time.Millisecond, 210*time.Millisecond, 100*time.Millisecond))
	if want := []int{32, 32, 64, 128, 256}; !slices.Equal(sizes, want) {
		t.Fatalf("rounds of 100, 210, then 100 ms: sizes %v, want %v", sizes, want)
	}

	// A base of exactly slowStartFrom doubles.
	w = newWindow(dispatcher.Rate{}, least, most)
	sizes = rounds(t, w, baseRounds+1, true, steady(slowStartFrom))
	if got := sizes[baseRounds-1:]; !slices.Equal(got, []int{64, 128}) {
		t.Fatalf("answers in %v: sizes %v, want 64, 128 after the %dth round", slowStartFrom, sizes, baseRounds)
	}

	// A round past twice the base above the least size shrinks it by an
	// eighth and ends the doubling.
	w = newWindow(dispatcher.Rate{}, least, most)
	rounds(t, w, 4, true, steady(100*time.Millisecond)) // 256
	sizes = rounds(t, w, 1, true, steady(250*time.Millisecond))
	sizes = append(sizes, rounds(t, w, 2, true, steady(100*time.Millisecond))...)
	if want := []int{224, 280, 350}; !slices.Equal(sizes, want) {
		t.Fatalf("a round of 250 ms at 256, then 100 ms: sizes %v, want %v", sizes, want)
	}

	// Short rounds settle on eight, as before: 20 ms is 160 ms in all.
	w = newWindow(dispatcher.Rate{}, least, most)
	sizes = rounds(t, w, baseRounds+1, true, steady(20*time.Millisecond))
	if sizes[baseRounds-2] != least || sizes[baseRounds-1] != 2*least {
		t.Fatalf("answers in 20 ms: sizes %v, want %d for %d rounds, then %d", sizes, least, baseRounds, 2*least)
	}

	// A base under slowStartFrom (a stand-in answering at once, the
	// slots this host's CPU): a quarter a round, as ever.
	w = newWindow(dispatcher.Rate{}, least, most)
	sizes = rounds(t, w, baseRounds+2, true, steady(3*time.Millisecond))
	if got := sizes[baseRounds-1:]; !slices.Equal(got, []int{40, 50, 62}) {
		t.Fatalf("answers in 3 ms: sizes %v, want 40, 50, 62 after the %dth round", sizes, baseRounds)
	}

	// Queueing seen once (the provider at its limit from 128 in flight
	// on): no more doubling, a quarter a round once it answers fast again.
	w = newWindow(dispatcher.Rate{}, least, most)
	limit := func(size int) time.Duration {
		if size >= 128 {
			return 200 * time.Millisecond
		}
		return 100 * time.Millisecond
	}
	sizes = rounds(t, w, 5, true, limit)
	if want := []int{32, 64, 128, 128, 128}; !slices.Equal(sizes, want) {
		t.Fatalf("queueing from 128 on: sizes %v, want %v", sizes, want)
	}
	sizes = rounds(t, w, 3, true, steady(100*time.Millisecond))
	if want := []int{160, 200, 250}; !slices.Equal(sizes, want) {
		t.Fatalf("fast again after queueing: sizes %v, want a quarter a round, %v", sizes, want)
	}

	// A 20429 in the slow start: halved, then a quarter a round.
	w = newWindow(dispatcher.Rate{}, least, most)
	rounds(t, w, 4, true, steady(100*time.Millisecond)) // 256
	w.throttled()
	sizes = rounds(t, w, 2, true, steady(100*time.Millisecond))
	if want := []int{160, 200}; !slices.Equal(sizes, want) {
		t.Fatalf("after a 20429 at 256: sizes %v, want %v", sizes, want)
	}

	// Idle for adaptIdle: from the least, doubling again.
	ended := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	w.observe(100*time.Millisecond, true, ended)
	w.resume(ended.Add(2 * adaptIdle))
	sizes = rounds(t, w, 4, true, steady(100*time.Millisecond))
	if want := []int{32, 64, 128, 256}; !slices.Equal(sizes, want) {
		t.Fatalf("after %v idle: sizes %v, want %v", 2*adaptIdle, sizes, want)
	}
}

// state is the window's size, slots held and waiters.
func (w *window) state() (size, used, waiting int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.size, w.used, len(w.waiters)
}

// waitFor polls cond until it holds, failing after a generous deadline.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline:
			t.Fatal("condition not reached")
		case <-tick.C:
		}
	}
}

// turnsAfter is a dispatcher.Turns whose turn fails with err after d.
type turnsAfter struct {
	d   time.Duration
	err error
}

func (t turnsAfter) Turn(ctx context.Context) error {
	tm := time.NewTimer(t.d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return t.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestFailedTurnWaitIsNoSlotTime: the time a message waited for a turn
// that never came is taken out of its slot's time, as a turn's that came
// is: the window does not grow on waits for a limiter that failed.
func TestFailedTurnWaitIsNoSlotTime(t *testing.T) {
	t.Parallel()
	s := refusedPaced(t, nil)
	const wait = 200 * time.Millisecond
	ctx := dispatcher.WithTurns(t.Context(), turnsAfter{d: wait, err: errors.New("limiter down")})
	msg := oneMessage()
	if r := s.Send(ctx, []*dispatcher.Message{msg}); r[0].Err == nil {
		t.Fatalf("Send = %+v, want the failed turn's error", r[0])
	}
	slot := slotTime(s)
	if slot >= wait/2 {
		t.Errorf("slot time %v after a turn that failed after %v: its wait was counted as the request's", slot, wait)
	}
}

// TestMarkLingerIsNoSlotTime: the time a paced message's mark waited for
// company (dispatcher.HandingWithin, up to half the turns ahead, the
// journal's MaxLinger at most) is its turn's wait taken early, not
// Twilio's: it is taken out of the slot's time, so the window (what a kill
// may leave in doubt) does not grow by it; the write after it stays in.
func TestMarkLingerIsNoSlotTime(t *testing.T) {
	t.Parallel()
	// The Sender's clock moves only in HandingWithin, by what the journal
	// took: the slot's time is then exact.
	var mu sync.Mutex
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	clock := dispatcher.ClockFunc(func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	})
	s := refusedPaced(t, clock)
	const within = 200 * time.Millisecond
	const write = 100 * time.Millisecond
	p := &dispatcher.Progress{HandingWithin: func(d time.Duration, _ ...int) error {
		if d != within {
			t.Errorf("HandingWithin(%v), want %v", d, within)
		}
		// The journal's linger (MaxLinger at most), then a slow write.
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(dispatcher.MaxLinger + write)
		return nil
	}}
	ctx := dispatcher.WithTurns(dispatcher.WithProgress(t.Context(), p), AheadTurns(2*within))
	s.Send(ctx, []*dispatcher.Message{oneMessage()}) // refused by 127.0.0.1:1 at once
	if slot := slotTime(s); slot != write {
		t.Errorf("slot time %v after a mark that waited %v for company and %v for its write: want the write's %v, not the wait", slot, dispatcher.MaxLinger, write, write)
	}
}

// refusedPaced is a Sender at 100/s whose requests 127.0.0.1:1 refuses
// at once.
// Its clock is clock (nil: the system's).
func refusedPaced(t *testing.T, clock dispatcher.Clock) *Sender {
	t.Helper()
	s, err := New(Config{AccountSID: "AC" + strings.Repeat("0", 32), AuthToken: "token", From: "+15005550006",
		BaseURL: "http://127.0.0.1:1", Rate: dispatcher.Rate{N: 100, Per: time.Second}, Logger: slog.New(slog.DiscardHandler), Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func oneMessage() *dispatcher.Message {
	return &dispatcher.Message{DeliveryID: "d1", Recipient: &dispatcher.Recipient{ID: "r1", Phone: "+41791234567"}, Body: "x"}
}

// slotTime is the window's running mean slot time.
func slotTime(s *Sender) time.Duration {
	s.window.mu.Lock()
	defer s.window.mu.Unlock()
	return s.window.slot
}
