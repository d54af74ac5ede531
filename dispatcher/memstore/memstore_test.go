package memstore_test

import (
	"testing"

	"github.com/tocsin-dev/tocsin/dispatcher/memstore"
	"github.com/tocsin-dev/tocsin/dispatcher/storetest"
)

// TestConformance runs the stores' conformance suite on memstore.
func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(*testing.T) storetest.Store { return memstore.New() })
}
