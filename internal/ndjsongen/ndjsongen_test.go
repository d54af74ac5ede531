package ndjsongen

import (
	"bufio"
	"encoding/json"
	"io"
	"strings"
	"testing"
)

// TestReader reads a small stream in odd-sized pieces: N lines, each
// valid JSON but every BadEvery-th, the marks called once each in order.
func TestReader(t *testing.T) {
	t.Parallel()
	var at []int
	g := &Reader{N: 10, BadEvery: 4, Marks: []int{0, 5, 10}, At: func(n int) { at = append(at, n) }}
	var sb strings.Builder
	buf := make([]byte, 7)
	if _, err := io.CopyBuffer(&sb, struct{ io.Reader }{g}, buf); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(strings.NewReader(sb.String()))
	lines := 0
	for sc.Scan() {
		var v map[string]any
		err := json.Unmarshal(sc.Bytes(), &v)
		if bad := lines%4 == 3; bad != (err != nil) {
			t.Errorf("line %d %q: JSON error %v, want bad %v", lines, sc.Text(), err, bad)
		}
		lines++
	}
	if lines != 10 || g.Lines() != 10 {
		t.Errorf("lines %d (Lines() %d), want 10", lines, g.Lines())
	}
	if len(at) != 2 || at[0] != 0 || at[1] != 5 {
		t.Errorf("marks called at %v, want [0 5] (10 is past the end)", at)
	}
	if !strings.HasPrefix(sb.String(), `{"id":"c0","kind":"customer","locale":"en-US",`) {
		t.Errorf("first line: %.60s", sb.String())
	}
}
