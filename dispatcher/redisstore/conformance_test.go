package redisstore

import (
	"testing"

	"github.com/tocsin-dev/tocsin/dispatcher/storetest"
)

// TestConformance runs the stores' conformance suite on a real
// redis-server and on miniredis.
func TestConformance(t *testing.T) {
	t.Parallel()
	for _, b := range storeBackends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			storetest.Run(t, func(t *testing.T) storetest.Store { return New(b.open(t)) })
		})
	}
}
