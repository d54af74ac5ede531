package statuspage

import (
	"testing"

	"github.com/tocsin-dev/tocsin/internal/redistest"
)

func TestMain(m *testing.M) { redistest.Main(m) }
