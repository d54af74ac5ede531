package config

// Runtime tunes the Go runtime of a Tocsin process.
type Runtime struct {
	// GCPercent is the garbage collector's target, as GOGC sets it: a
	// collection starts when the heap has grown this many percent past
	// what the last one left live. Default 400: a worker's live heap is
	// small (tens of MB: records and snapshots live in Redis) and its
	// garbage is per message, so a collection a quarter as often costs
	// little memory and spares the CPU and the stop-the-world pauses that
	// make the rate pacer late (docs/BENCHMARKS.md). 10 to 10000; the
	// GOGC environment variable, when set, wins. Env
	// TOCSIN_RUNTIME_GC_PERCENT.
	GCPercent int `yaml:"gc_percent"`
}

// DefaultGCPercent is Runtime.GCPercent's default.
const DefaultGCPercent = 400

func defaultRuntime() Runtime { return Runtime{GCPercent: DefaultGCPercent} }

func (v validator) runtime(c Runtime) {
	v.Between("runtime.gc_percent", c.GCPercent, 10, 10000)
}
