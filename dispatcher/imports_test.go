package dispatcher_test

import (
	"go/build"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/tocsin-dev/tocsin/"

// importRules keep the import direction one way (docs/architecture.md):
// the domain imports no adapter and no transport, and the adapters do not
// lean on each other. A path ending in "/" forbids every package under it.
var importRules = []struct {
	dir    string   // relative to this package
	forbid []string // import paths, or prefixes ending in "/"
	allow  []string // exceptions to forbid
	why    string
}{
	{
		dir: ".",
		forbid: []string{"net/http", "net/http/", module + "channels/", module + "dispatcher/", module + "config", "github.com/redis/", "github.com/hibiken/asynq",
			"go.opentelemetry.io/otel/sdk", "go.opentelemetry.io/otel/sdk/", "go.opentelemetry.io/otel/exporters/"},
		why: "the domain holds types, rules and decisions: no transport, adapter or store, and no dispatcher/* package (they import it); of OpenTelemetry only the trace API",
	},
	{
		dir:    "api",
		forbid: []string{module + "channels/", module + "dispatcher/redisstore", module + "dispatcher/queue"},
		// Twilio calls the API with webhooks whose fields and answers
		// channels/sms defines (ParseStatusCallback, InboundReply).
		allow: []string{module + "channels/sms"},
		why:   "the API adapter talks to the domain only",
	},
	{
		dir:    "redisstore",
		forbid: []string{module + "channels/", module + "dispatcher/api", module + "dispatcher/queue"},
		why:    "the store adapter keeps domain types (dispatcher.OutboxEntry, not channels/outbox's)",
	},
	{
		dir:    "ratelimit",
		forbid: []string{"net/http", "net/http/", module + "channels/", module + "dispatcher/", module + "config", "github.com/redis/", "github.com/hibiken/asynq"},
		why:    "the rate-limited Sender wraps the domain's Sender and Limiter: no transport, adapter or store of its own",
	},
}

// TestImportDirection reads the imports of each package's non-test files
// (as go build selects them) and fails on a forbidden one.
func TestImportDirection(t *testing.T) {
	t.Parallel()
	for _, rule := range importRules {
		pkg, err := build.ImportDir(filepath.FromSlash(rule.dir), 0)
		if err != nil {
			t.Fatalf("%s: %v", rule.dir, err)
		}
		if len(pkg.Imports) == 0 {
			t.Fatalf("%s: no imports read", rule.dir)
		}
		for _, imp := range pkg.Imports {
			if forbidden(imp, rule.forbid) && !slices.Contains(rule.allow, imp) {
				t.Errorf("%s imports %s: %s", path.Join("dispatcher", rule.dir), imp, rule.why)
			}
		}
	}
}

func forbidden(imp string, rules []string) bool {
	for _, r := range rules {
		if imp == r || strings.HasSuffix(r, "/") && strings.HasPrefix(imp, r) {
			return true
		}
	}
	return false
}
