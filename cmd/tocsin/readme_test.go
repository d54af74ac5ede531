package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// A tourBlock is one ```sh block of the README's tour and the output the
// README shows after it, if any.
type tourBlock struct {
	line  int    // the README line of the block's opening fence
	code  string // the shell commands
	shown string // the output block that follows, "" when none
	skip  string // why the README marks it not to be run, "" to run it
}

var skipMark = regexp.MustCompile(`^<!-- readme-test: skip \((.+)\) -->$`)

// readTour returns the shell blocks of the README's "A tour with curl"
// section, in order.
func readTour(t *testing.T) []tourBlock {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(raw), "\n")
	var blocks []tourBlock
	in := false
	skip := ""
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		switch {
		case l == "## A tour with curl":
			in = true
			continue
		case in && strings.HasPrefix(l, "## "):
			in = false
		}
		if !in {
			continue
		}
		if m := skipMark.FindStringSubmatch(l); m != nil {
			skip = m[1]
			continue
		}
		if !strings.HasPrefix(l, "```") {
			continue
		}
		// A fenced block: read to its end.
		lang, start := strings.TrimPrefix(l, "```"), i
		var body []string
		for i++; i < len(lines) && lines[i] != "```"; i++ {
			body = append(body, lines[i])
		}
		text := strings.Join(body, "\n")
		if lang == "sh" {
			blocks = append(blocks, tourBlock{line: start + 1, code: text, skip: skip})
			skip = ""
		} else if n := len(blocks); n > 0 && blocks[n-1].shown == "" && lines[start-1] == "```" {
			// An output block right after a shell block's closing fence.
			blocks[n-1].shown = text
		}
	}
	return blocks
}

var (
	shownMember = regexp.MustCompile(`"([a-z_]+)":`)
	shownStatus = regexp.MustCompile(`(?m)^HTTP/1\.1 (\d{3}) `)
)

// TestReadmeTour pastes the README's tour, block by block, into one bash
// against the zero-config server `make run` starts, as a newcomer would,
// with the key the server printed. Each block must succeed, and what it
// prints must have every member name and HTTP status the README shows
// after it.
func TestReadmeTour(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "jq", "date"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the README tour needs %s: %v", tool, err)
		}
	}
	blocks := readTour(t)
	if len(blocks) < 10 {
		t.Fatalf("found %d shell blocks in the README's tour, want the whole tour", len(blocks))
	}
	// The tour gives times relative to now (`date -u -d '+2 hours'`), so the
	// server runs on the system clock, as `make run` does.
	a := startAppWith(t, map[string]string{"TOCSIN_HTTP_ADDR": "127.0.0.1:0"}, func(m *Main) { m.Clock = dispatcher.SystemClock })
	key := regexp.MustCompile(`tk_[A-Za-z0-9_-]{32}`).FindString(a.stdout.String())
	if key == "" {
		t.Fatalf("no generated key on stdout:\n%s", a.stdout.String())
	}
	host := strings.TrimPrefix(a.base, "http://")

	// One script: each block, then a marker that splits the output.
	var script strings.Builder
	script.WriteString("set -eu -o pipefail\n")
	ran := 0
	for i, b := range blocks {
		if b.skip != "" {
			t.Logf("README line %d not run: %s", b.line, b.skip)
			continue
		}
		ran++
		code := regexp.MustCompile(`(?m)^export TOCSIN_KEY=.*$`).ReplaceAllString(b.code, "")
		code = strings.ReplaceAll(code, "localhost:8080", host)
		fmt.Fprintf(&script, "%s\necho\necho '::block %d::'\n", code, i)
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script.String())
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "TOCSIN_KEY="+key)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()

	outputs := map[int]string{}
	rest := out.String()
	for i := range blocks {
		marker := fmt.Sprintf("::block %d::\n", i)
		before, after, ok := strings.Cut(rest, marker)
		if !ok {
			continue
		}
		outputs[i], rest = before, after
	}
	if err != nil {
		t.Fatalf("the tour failed: %v\nstderr:\n%s\nstdout:\n%s", err, errOut.String(), out.String())
	}
	if errOut.Len() > 0 {
		t.Errorf("the tour wrote to stderr:\n%s", errOut.String())
	}
	for i, b := range blocks {
		if b.skip != "" {
			continue
		}
		got, ok := outputs[i]
		if !ok {
			t.Errorf("README line %d: the block did not finish", b.line)
			continue
		}
		if strings.Contains(got, `"status":5`) {
			t.Errorf("README line %d: a 5xx problem:\n%s", b.line, got)
		}
		for _, m := range shownStatus.FindAllStringSubmatch(b.shown, -1) {
			if !strings.Contains(got, "HTTP/1.1 "+m[1]+" ") {
				t.Errorf("README line %d shows HTTP %s; got:\n%s", b.line, m[1], got)
			}
		}
		if !strings.Contains(b.shown, `"status":4`) && strings.Contains(got, `"status":4`) {
			t.Errorf("README line %d: a problem the README does not show:\n%s", b.line, got)
		}
		for _, m := range shownMember.FindAllStringSubmatch(b.shown, -1) {
			if !strings.Contains(got, `"`+m[1]+`":`) {
				t.Errorf("README line %d shows %q, which the answer does not have:\n%s", b.line, m[1], got)
			}
		}
	}
	if ran < 10 {
		t.Errorf("ran %d blocks, want the whole tour", ran)
	}
	if t.Failed() {
		t.Logf("full output:\n%s", out.String())
	}
}
