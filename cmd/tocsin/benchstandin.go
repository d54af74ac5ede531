package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"
)

// `bench --e2e` runs its Twilio stand-in (standIn) in a process of its
// own, `tocsin bench --serve-stand-in`, as a provider is: in the bench's
// process it shared the bench's garbage collector, whose pauses held its
// handlers back 10-20 ms now and then and stamped a burst of arrivals
// that the requests, sent evenly, never were (a sliding second over the
// rate at the stand-in while the starts kept under it). The child serves
// the stand-in and two control routes, and stops when its standard input
// closes: when the bench ends, however it ends.

// Control routes of the child stand-in, beside Twilio's.
const (
	standInReset  = "/_bench/reset"
	standInReport = "/_bench/report"
)

// standInReportBody is what the child stand-in reports: when each request
// arrived since the last reset (Unix nanoseconds, sorted), the connections
// opened, the requests it refused, and its CPU time.
type standInReportBody struct {
	Arrivals []int64  `json:"arrivals"`
	Conns    int64    `json:"conns"`
	Refused  []string `json:"refused"`
	CPU      int64    `json:"cpu_ns"`
}

// serveStandIn is `tocsin bench --serve-stand-in`: it serves the stand-in
// on a free loopback port, writes "stand-in: URL" on w, and serves until
// stdin closes or ctx ends.
func serveStandIn(ctx context.Context, w io.Writer, stdin io.Reader, latency time.Duration) error {
	s := newStandIn(benchTwilioSID, benchTwilioToken, latency)
	defer s.Close()
	s.control = func(rw http.ResponseWriter, r *http.Request) bool {
		switch {
		case r.Method == http.MethodPost && r.URL.Path == standInReset:
			s.reset()
			rw.WriteHeader(http.StatusNoContent)
		case r.Method == http.MethodGet && r.URL.Path == standInReport:
			rep := standInReportBody{Conns: s.conns.Load(), CPU: int64(processCPU() - s.cpuAtReset())}
			for _, t := range s.arrivals() {
				rep.Arrivals = append(rep.Arrivals, t.UnixNano())
			}
			if err := s.err(); err != nil {
				rep.Refused = strings.Split(err.Error(), "\n")
			}
			rw.Header().Set("Content-Type", "application/json")
			json.NewEncoder(rw).Encode(rep)
		default:
			return false
		}
		return true
	}
	if _, err := fmt.Fprintf(w, "stand-in: %s\n", s.URL); err != nil {
		return err
	}
	closed := make(chan struct{})
	if stdin != nil {
		go func() {
			io.Copy(io.Discard, stdin)
			close(closed)
		}()
	}
	select {
	case <-closed:
	case <-ctx.Done():
	}
	return nil
}

// childStandIn is the bench's handle on its stand-in process.
type childStandIn struct {
	URL    string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	client *http.Client
}

// startStandIn starts `<this binary> bench --serve-stand-in` and waits
// for its URL.
func startStandIn(ctx context.Context, latency time.Duration, stderr io.Writer) (*childStandIn, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("stand-in: %w", err)
	}
	cmd := exec.Command(exe, "bench", "--serve-stand-in", "--provider-latency", latency.String())
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("stand-in: %w", err)
	}
	// The control requests keep to one keep-alive connection, opened
	// before the first reset: the connections the stand-in counts are the
	// bench's.
	tr := &http.Transport{MaxIdleConnsPerHost: 1, MaxConnsPerHost: 1}
	c := &childStandIn{cmd: cmd, stdin: stdin, client: &http.Client{Transport: tr, Timeout: time.Minute}}
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			line <- sc.Text()
		}
		close(line)
		io.Copy(io.Discard, stdout)
	}()
	select {
	case l, ok := <-line:
		url, found := strings.CutPrefix(l, "stand-in: ")
		if !ok || !found {
			c.Close()
			return nil, fmt.Errorf("stand-in: it said %q, want its URL", l)
		}
		c.URL = url
	case <-ctx.Done():
		c.Close()
		return nil, ctx.Err()
	case <-time.After(30 * time.Second):
		c.Close()
		return nil, errors.New("stand-in: no URL within 30 s")
	}
	return c, nil
}

// reset forgets the arrivals, connections and refusals so far.
func (c *childStandIn) reset(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL+standInReset, nil)
	if err != nil {
		return err
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return fmt.Errorf("stand-in reset: %w", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("stand-in reset: HTTP %d", resp.StatusCode)
	}
	return nil
}

// report is what the stand-in saw since the last reset.
func (c *childStandIn) report(ctx context.Context) (standInSeen, error) {
	var seen standInSeen
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL+standInReport, nil)
	if err != nil {
		return seen, err
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return seen, fmt.Errorf("stand-in report: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return seen, fmt.Errorf("stand-in report: HTTP %d", resp.StatusCode)
	}
	var body standInReportBody
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return seen, fmt.Errorf("stand-in report: %w", err)
	}
	seen.arrivals = make([]time.Time, len(body.Arrivals))
	for i, ns := range body.Arrivals {
		seen.arrivals[i] = time.Unix(0, ns)
	}
	seen.conns, seen.cpu = body.Conns, time.Duration(body.CPU)
	if len(body.Refused) > 0 {
		seen.err = errors.New(strings.Join(body.Refused, "\n"))
	}
	return seen, nil
}

// standInSeen is a stand-in's report, read.
type standInSeen struct {
	arrivals []time.Time // sorted; on the wall clock, which both processes share
	conns    int64
	cpu      time.Duration
	err      error // the requests it refused
}

// Close stops the stand-in process: it closes its standard input and
// waits for it to exit, killing it after 5 s. The error is how it ended.
func (c *childStandIn) Close() error {
	c.stdin.Close()
	done := make(chan error, 1)
	go func() { done <- c.cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(5 * time.Second):
		c.cmd.Process.Kill()
		<-done
		return errors.New("stand-in: still running 5 s after its input closed: killed")
	}
}
