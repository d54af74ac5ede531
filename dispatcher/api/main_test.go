package api

import (
	"testing"

	"github.com/tocsin-dev/tocsin/internal/redistest"
)

// TestMain starts the redis-server the package's tests share.
func TestMain(m *testing.M) { redistest.Main(m) }
