package main

import (
	"runtime/debug"
	"testing"
)

// TestSetGC: runtime.gc_percent sets the collector's target, unless GOGC
// is set, which wins.
func TestSetGC(t *testing.T) {
	before := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(before) })

	env := map[string]string{}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	if got, from := setGC(250, lookup); got != 250 || from != "runtime.gc_percent" {
		t.Errorf("setGC(250) without GOGC = %d, %q; want 250, runtime.gc_percent", got, from)
	}
	if got := gcPercent(); got != 250 {
		t.Errorf("target after setGC(250) = %d, want 250", got)
	}
	env["GOGC"] = "50" // Go applied it at start; here the target stays as it is
	if got, from := setGC(400, lookup); got != 250 || from != "GOGC" {
		t.Errorf("setGC(400) with GOGC set = %d, %q; want 250 (left alone), GOGC", got, from)
	}
	if got := gcPercent(); got != 250 {
		t.Errorf("target after setGC with GOGC set = %d, want 250 (left alone)", got)
	}
	if got, _ := setGC(120, nil); got != 120 || gcPercent() != 120 {
		t.Errorf("setGC(120) with no environment: %d, target %d; want 120", got, gcPercent())
	}
}
