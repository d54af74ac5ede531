package main

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/dispatcher/redisstore"
)

const (
	// seedChunk is how many recipients one PutRecipients call stores (one
	// pipelined round trip).
	seedChunk = 1000
	// seedWorkers is how many chunks are stored at once: while Redis runs
	// one chunk's scripts the others are being encoded and sent.
	seedWorkers = 4
)

// The lists every bench recipient shares (read only).
var (
	benchServices = []string{"cards"}
	benchRegions  = []string{"CH"}
	benchChannels = []dispatcher.Channel{dispatcher.ChannelSMS}
)

// seedRecipients stores n bench recipients, r0 to r<n-1> (five locales in
// turn, a Swiss mobile number, service cards, region CH, SMS), through
// PutRecipients in chunks of seedChunk, seedWorkers chunks at a time. Each
// worker reuses its chunk, so the bench holds at most seedWorkers ×
// seedChunk recipients whatever n is (10M takes no more than 1,000).
func seedRecipients(ctx context.Context, store *redisstore.Store, n int, now time.Time) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next     atomic.Int64 // the next chunk to store
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	for range min(seedWorkers, (n+seedChunk-1)/seedChunk) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			recs := make([]dispatcher.Recipient, seedChunk)
			chunk := make([]*dispatcher.Recipient, 0, seedChunk)
			for {
				lo := int(next.Add(1)-1) * seedChunk
				if lo >= n || ctx.Err() != nil {
					return
				}
				chunk = chunk[:0]
				for i := lo; i < min(lo+seedChunk, n); i++ {
					r := &recs[i-lo]
					*r = benchRecipient(i, now)
					chunk = append(chunk, r)
				}
				if err := store.PutRecipients(ctx, chunk); err != nil {
					errOnce.Do(func() { firstErr = fmt.Errorf("seed recipients %d to %d: %w", lo, lo+len(chunk)-1, err) })
					cancel()
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

// benchRecipient is bench recipient i.
func benchRecipient(i int, now time.Time) dispatcher.Recipient {
	phone := strconv.Itoa(i % 10000000)
	for len(phone) < 7 {
		phone = "0" + phone
	}
	return dispatcher.Recipient{
		ID:        "r" + strconv.Itoa(i),
		Kind:      dispatcher.KindCustomer,
		Locale:    benchLocales[i%len(benchLocales)],
		Timezone:  "Europe/Zurich",
		Phone:     "+4179" + phone,
		Services:  benchServices,
		Regions:   benchRegions,
		Channels:  benchChannels,
		UpdatedAt: now,
	}
}
