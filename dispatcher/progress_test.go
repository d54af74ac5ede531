package dispatcher_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// TestRemapHandingWithin: a Progress remapped for a sub-slice of the
// messages (dispatcher.Remap) reports Handing and HandingWithin with the
// parent's indexes, the within kept; without a parent HandingWithin,
// HandingWithin falls back to Handing, as it does for a zero within.
func TestRemapHandingWithin(t *testing.T) {
	var handed, within []int
	var withins []time.Duration
	parent := &dispatcher.Progress{
		Handing: func(idx ...int) error { handed = append(handed, idx...); return nil },
		HandingWithin: func(d time.Duration, idx ...int) error {
			withins = append(withins, d)
			within = append(within, idx...)
			return nil
		},
	}
	ctx := dispatcher.Remap(dispatcher.WithProgress(context.Background(), parent), []int{7, 3, 9})
	if err := dispatcher.HandingWithin(ctx, 4*time.Millisecond, 0, 2); err != nil {
		t.Fatal(err)
	}
	if err := dispatcher.HandingWithin(ctx, 0, 1); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(within, []int{7, 9}) || !slices.Equal(withins, []time.Duration{4 * time.Millisecond}) || !slices.Equal(handed, []int{3}) {
		t.Errorf("HandingWithin %v (within %v), Handing %v; want [7 9] (4ms), then [3] by Handing", within, withins, handed)
	}

	handed = nil
	plain := &dispatcher.Progress{Handing: parent.Handing}
	ctx = dispatcher.Remap(dispatcher.WithProgress(context.Background(), plain), []int{7, 3, 9})
	if err := dispatcher.HandingWithin(ctx, 4*time.Millisecond, 2); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(handed, []int{9}) {
		t.Errorf("without a HandingWithin: Handing %v, want [9]", handed)
	}
}
