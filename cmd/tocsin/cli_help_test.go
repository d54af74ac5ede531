package main

import (
	"context"
	"regexp"
	"strings"
	"testing"
)

// singleDash finds a flag written with one dash, as Go's flag package
// writes them ("-severity"), where the help must write "--severity".
var singleDash = regexp.MustCompile(`(^|[\s\[(|,'])-[A-Za-z]`)

// TestHelpEveryCommand runs every command with --help and -h: exit 0, the
// usage on standard output (nothing on standard error), the synopsis of
// the command table, and flags written --flag only. A bad flag exits 2
// with the error and the usage on standard error.
func TestHelpEveryCommand(t *testing.T) {
	t.Parallel()
	run := func(args ...string) cliResult {
		var stdout, stderr syncBuffer
		// No server and no key: help must not need them, nor connect.
		m := &Main{Stdout: &stdout, Stderr: &stderr, LookupEnv: func(string) (string, bool) { return "", false }}
		code := m.Run(context.Background(), args)
		return cliResult{code: code, stdout: stdout.String(), stderr: stderr.String()}
	}
	checkHelp := func(t *testing.T, args []string, r cliResult, wants ...string) {
		t.Helper()
		if r.code != 0 || r.stderr != "" || strings.TrimSpace(r.stdout) == "" {
			t.Fatalf("tocsin %s: exit %d, stderr %q, stdout:\n%s", strings.Join(args, " "), r.code, r.stderr, r.stdout)
		}
		mustContain(t, "tocsin "+strings.Join(args, " "), r.stdout, wants...)
		if m := singleDash.FindString(r.stdout); m != "" {
			t.Errorf("tocsin %s writes a flag with one dash (%q):\n%s", strings.Join(args, " "), m, r.stdout)
		}
	}
	top := run("--help")
	checkHelp(t, []string{"--help"}, top, "Usage: tocsin COMMAND")
	for _, args := range [][]string{{"-h"}, {"help"}} {
		if r := run(args...); r.stdout != top.stdout || r.code != 0 {
			t.Errorf("tocsin %s differs from tocsin --help (exit %d):\n%s", args[0], r.code, r.stdout)
		}
	}
	// No command: the usage on standard error, exit 2.
	if r := run(); r.code != 2 || r.stdout != "" || r.stderr != top.stdout {
		t.Errorf("tocsin alone: exit %d, stdout %q, stderr:\n%s", r.code, r.stdout, r.stderr)
	}

	docs := append(append([]cmdDoc{}, serverCommands...), clientCommands...)
	groups := map[string]bool{}
	for _, d := range docs {
		path := strings.Fields(d.path)
		// The top-level usage lists every command.
		if !regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(strings.TrimSpace(d.path+" "+d.pos)) + `\s`).MatchString(top.stdout) {
			t.Errorf("tocsin --help does not list %q:\n%s", d.path, top.stdout)
		}
		if len(path) == 2 {
			groups[path[0]] = true
		}
		for _, h := range []string{"--help", "-h"} {
			args := append(append([]string{}, path...), h)
			r := run(args...)
			want := "Usage: tocsin " + wrapSynopsis(d.synopsis(), 14, usageWidth) + "\n"
			checkHelp(t, args, r, want)
			if !strings.HasPrefix(r.stdout, want) {
				t.Errorf("tocsin %s does not start with the synopsis of the command table\n%s\ngot:\n%s", strings.Join(args, " "), want, r.stdout)
			}
			// Every command but version has flags, written --flag.
			if d.path != "version" && !regexp.MustCompile(`(?m)^  --[a-z]`).MatchString(r.stdout) {
				t.Errorf("tocsin %s lists no --flags:\n%s", strings.Join(args, " "), r.stdout)
			}
		}
		// tocsin help PATH is PATH --help.
		if r := run(append([]string{"help"}, path...)...); r.code != 0 || !strings.HasPrefix(r.stdout, "Usage: tocsin "+d.path) {
			t.Errorf("tocsin help %s: exit %d:\n%s", d.path, r.code, r.stdout)
		}
		// A flag that does not exist: exit 2, the error and the usage on
		// standard error, the flag written as it was typed.
		args := append(append([]string{}, path...), "--bogus")
		r := run(args...)
		if r.code != 2 || r.stdout != "" {
			t.Errorf("tocsin %s: exit %d, stdout %q; want 2 and nothing", strings.Join(args, " "), r.code, r.stdout)
		}
		mustContain(t, "tocsin "+strings.Join(args, " "), r.stderr, "flag provided but not defined: --bogus\n", "Usage: tocsin "+d.path, "tocsin "+d.path+" --help")
	}
	for g := range groups {
		for _, h := range []string{"--help", "-h", "help"} {
			r := run(g, h)
			checkHelp(t, []string{g, h}, r, "Usage: tocsin "+g+" ")
			for _, d := range clientCommands {
				if strings.HasPrefix(d.path, g+" ") && !strings.Contains(r.stdout, "tocsin "+d.path) {
					t.Errorf("tocsin %s %s does not list %s:\n%s", g, h, d.path, r.stdout)
				}
			}
		}
		// No verb, or an unknown one: exit 2 with the group's usage.
		for _, args := range [][]string{{g}, {g, "frobnicate"}} {
			r := run(args...)
			if r.code != 2 || r.stdout != "" {
				t.Errorf("tocsin %s: exit %d, stdout %q", strings.Join(args, " "), r.code, r.stdout)
			}
			mustContain(t, "tocsin "+strings.Join(args, " "), r.stderr, "tocsin: "+g+" needs one of", "Usage: tocsin "+g+" ")
		}
	}
	for _, g := range []string{"incident", "broadcast", "recipients", "webhooks", "deliveries"} {
		if !groups[g] {
			t.Errorf("no command of group %s in the command table", g)
		}
	}
	r := run("frobnicate")
	if r.code != 2 || !strings.HasPrefix(r.stderr, "tocsin: unknown command \"frobnicate\"\n") || !strings.Contains(r.stderr, "Usage: tocsin COMMAND") {
		t.Errorf("unknown command: exit %d, stderr:\n%s", r.code, r.stderr)
	}
	// A usage error after parsing shows the command's synopsis too.
	r = run("incident", "open", "--title", "x")
	if r.code != 2 || !strings.HasPrefix(r.stderr, "tocsin: incident open needs --severity\nUsage: tocsin incident open --title T") {
		t.Errorf("missing flag: exit %d, stderr:\n%s", r.code, r.stderr)
	}
}

// TestBenchHelpAgrees checks that bench's help says what its flags do:
// --naive is on by default (so the synopsis offers --naive=false), and
// the flags of one mode say so.
func TestBenchHelpAgrees(t *testing.T) {
	t.Parallel()
	code, stdout, _ := runMain(t.Context(), nil, "bench", "--help")
	if code != 0 {
		t.Fatalf("bench --help exited %d", code)
	}
	mustContain(t, "bench --help", stdout, "[--naive=false]", "--naive=false turns it off", "--flush", "(--rates only)", "(--latency only)")
	if strings.Contains(stdout, "--naive=true") {
		t.Errorf("bench --help offers --naive=true, the default:\n%s", stdout)
	}
	// Every flag of the synopsis exists, and every flag is in the synopsis.
	d, _ := docOf("bench")
	for _, f := range regexp.MustCompile(`--([a-z-]+)`).FindAllStringSubmatch(d.args, -1) {
		if !strings.Contains(stdout, "\n  --"+f[1]) {
			t.Errorf("the synopsis names --%s, which bench does not take", f[1])
		}
	}
	for _, f := range regexp.MustCompile(`(?m)^  --([a-z-]+)`).FindAllStringSubmatch(stdout, -1) {
		if !strings.Contains(d.args, "--"+f[1]) {
			t.Errorf("bench takes --%s, which its synopsis does not name", f[1])
		}
	}
}
