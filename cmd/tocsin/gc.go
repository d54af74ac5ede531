package main

import (
	"runtime/debug"
	"runtime/metrics"
)

// setGC sets the garbage collector's target of this process to percent
// (runtime.gc_percent) unless the GOGC environment variable is set: Go has
// applied that one already, and it wins. It returns the target in force
// and what set it, for the start-up log.
func setGC(percent int, lookup func(string) (string, bool)) (int, string) {
	if lookup != nil {
		if v, ok := lookup("GOGC"); ok && v != "" {
			return gcPercent(), "GOGC"
		}
	}
	debug.SetGCPercent(percent)
	return percent, "runtime.gc_percent"
}

// gcPercent is the garbage collector's target in force (-1: off), read
// without setting it.
func gcPercent() int {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	if v := s[0].Value.Uint64(); v <= 1<<31 {
		return int(v)
	}
	return -1
}
