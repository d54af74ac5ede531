package main

// `tocsin broadcast show ID --wait`: polls the broadcast until it is done
// or cancelled and shows its progress as it goes, from the counters the
// server returns (audience, pending, counts per channel and status). On a
// terminal that is a progress bar redrawn in place; elsewhere (a pipe, a
// CI log) plain lines, one when something changed and at most one per ten
// polls. The last state is then printed as `broadcast show` prints it.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

const (
	// defaultPollInterval is how often --wait asks by default.
	defaultPollInterval = time.Second
	// defaultIdleTimeout is how long --wait waits by default for a
	// broadcast whose counters do not move.
	defaultIdleTimeout = 5 * time.Minute
	// linesEvery is how many polls a plain progress line stands for, at
	// most: an hour-long broadcast leaves a few hundred lines in a log,
	// not thousands.
	linesEvery = 10
	// rateWindow is how far back the delivery rate looks.
	rateWindow = 30 * time.Second
)

// waitOptions are `broadcast show --wait`'s.
type waitOptions struct {
	// interval is the time between two polls.
	interval time.Duration
	// idle is how long the broadcast may stay unchanged (state, pending
	// and counts) before --wait gives up; 0 waits for ever.
	idle time.Duration
}

// timer is what --wait paces its polls and dates its samples with:
// Main.Clock when it can wait (a test's fake moves its own time), else the
// system clock. A fixed Clock that cannot wait dates the domain only.
func (m *Main) timer() dispatcher.Timer {
	if t, ok := m.Clock.(dispatcher.Timer); ok {
		return t
	}
	return dispatcher.SystemClock.(dispatcher.Timer)
}

// waitBroadcast polls path until the broadcast is done (nil) or cancelled
// (an error), or until nothing changed for opts.idle (an error), showing
// progress on the way, then prints the broadcast's last state.
func (m *Main) waitBroadcast(ctx context.Context, c *client, path string, opts waitOptions) error {
	// With --json standard output is for the document alone: the progress
	// goes to standard error then.
	out := c.stdout
	if c.json {
		out = m.Stderr
	}
	if out == nil {
		out = io.Discard
	}
	timer := m.timer()
	var view progressView
	if isTerminal(out) && !m.dumbTerminal() {
		view = newProgressBar(out)
	} else {
		view = &progressLines{w: out, every: linesEvery * opts.interval}
	}
	var (
		meter      rateMeter
		last       string // the fingerprint of the last answer
		lastChange time.Time
	)
	for {
		var b dispatcher.Broadcast
		raw, err := c.call(ctx, http.MethodGet, path, nil, nil, &b, nil)
		if err != nil {
			view.close()
			return err
		}
		now := timer.Now()
		if fp := fingerprint(&b); fp != last || lastChange.IsZero() {
			last, lastChange = fp, now
		}
		p := progressOf(&b)
		meter.add(now, p.done)
		view.show(p, meter.rate(), now)

		finished := b.State == dispatcher.BroadcastDone || b.State == dispatcher.BroadcastCancelled
		still := now.Sub(lastChange)
		if finished || (opts.idle > 0 && still >= opts.idle) {
			view.close()
			if err := printAs(c, raw, &b, c.printBroadcast); err != nil {
				return err
			}
			switch b.State {
			case dispatcher.BroadcastDone:
				return nil
			case dispatcher.BroadcastCancelled:
				return fmt.Errorf("broadcast %s was cancelled", b.ID)
			default:
				return fmt.Errorf("broadcast %s is still %s after %s without progress (%d deliveries pending; --timeout 0 waits without limit)",
					b.ID, b.State, opts.idle, b.Pending)
			}
		}
		wait := opts.interval
		if opts.idle > 0 {
			wait = min(wait, opts.idle-still)
		}
		if err := dispatcher.Sleep(ctx, timer, wait); err != nil {
			view.close()
			return err
		}
	}
}

// fingerprint is what --wait compares to tell progress from standing
// still.
func fingerprint(b *dispatcher.Broadcast) string {
	return fmt.Sprint(b.State, b.Audience, b.Pending, b.Counts)
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	return ok && term.IsTerminal(int(f.Fd()))
}

// dumbTerminal reports TERM=dumb, a terminal that cannot redraw a line.
func (m *Main) dumbTerminal() bool {
	v, _ := m.lookupEnv("TERM")
	return v == "dumb"
}

// progress is where a broadcast is, in deliveries.
type progress struct {
	state dispatcher.BroadcastState
	// done counts the deliveries in a final status; total is done plus
	// pending: the audience, plus a delivery per channel fallback.
	done, total, failed int
	// channels is done and total per channel, in the usual order.
	channels []channelProgress
}

type channelProgress struct {
	ch          dispatcher.Channel
	done, total int
}

func progressOf(b *dispatcher.Broadcast) progress {
	p := progress{state: b.State}
	order := append(slices.Clone(dispatcher.Channels), dispatcher.ChannelNone)
	var extra []dispatcher.Channel
	for ch := range b.Counts {
		if !slices.Contains(order, ch) {
			extra = append(extra, ch)
		}
	}
	slices.Sort(extra)
	for _, ch := range append(order, extra...) {
		counts, ok := b.Counts[ch]
		if !ok {
			continue
		}
		cp := channelProgress{ch: ch}
		for s, n := range counts {
			cp.total += n
			if s.Final() {
				cp.done += n
			}
		}
		p.done += cp.done
		p.failed += counts[dispatcher.StatusFailed]
		p.channels = append(p.channels, cp)
	}
	p.total = max(p.done+b.Pending, b.Audience)
	return p
}

// detail is the progress past the bar: per channel, failures, rate and
// the time left at that rate.
func (p progress) detail(rate float64) string {
	var parts []string
	for _, c := range p.channels {
		parts = append(parts, fmt.Sprintf("%s %d/%d", c.ch, c.done, c.total))
	}
	if p.failed > 0 {
		parts = append(parts, fmt.Sprintf("%d failed", p.failed))
	}
	if rate > 0 && p.state == dispatcher.BroadcastSending {
		parts = append(parts, formatRate(rate))
		if left := p.total - p.done; left > 0 {
			parts = append(parts, "about "+formatLeft(float64(left)/rate)+" left")
		}
	}
	return strings.Join(parts, ", ")
}

func formatRate(r float64) string {
	if r >= 1 {
		return fmt.Sprintf("%.0f/s", r)
	}
	return fmt.Sprintf("%.0f/min", r*60)
}

// formatLeft rounds a time left in seconds to what a person reads: whole
// seconds under a minute, then minutes.
func formatLeft(sec float64) string {
	d := time.Duration(sec * float64(time.Second))
	switch {
	case d < time.Second:
		return "1s"
	case d < time.Minute:
		return d.Round(time.Second).String()
	default:
		return strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
	}
}

// rateMeter is the delivery rate over the last rateWindow of samples.
type rateMeter struct {
	samples []rateSample
}

type rateSample struct {
	at   time.Time
	done int
}

func (m *rateMeter) add(at time.Time, done int) {
	m.samples = append(m.samples, rateSample{at, done})
	// Keep one sample older than the window, so the rate spans it whole.
	for len(m.samples) > 2 && at.Sub(m.samples[1].at) >= rateWindow {
		m.samples = m.samples[1:]
	}
}

// rate is deliveries finished per second; 0 until two samples differ in
// time.
func (m *rateMeter) rate() float64 {
	if len(m.samples) < 2 {
		return 0
	}
	first, last := m.samples[0], m.samples[len(m.samples)-1]
	dt := last.at.Sub(first.at).Seconds()
	if dt <= 0 || last.done <= first.done {
		return 0
	}
	return float64(last.done-first.done) / dt
}

// progressView shows progress as it comes.
type progressView interface {
	show(p progress, rate float64, now time.Time)
	// close ends the view: what follows starts on a line of its own.
	close()
}

// progressLines is the view for a pipe or a log: a line when the state
// changes, else at most one per every while the counters move, and the
// last one when the wait ends.
type progressLines struct {
	w        io.Writer
	every    time.Duration
	last     progress // as of the last line
	lastLine string
	lastAt   time.Time
	next     string // the line of the latest answer
}

func (v *progressLines) show(p progress, rate float64, now time.Time) {
	v.next = v.line(p, rate)
	due := v.lastLine == "" || p.state != v.last.state ||
		(p.done != v.last.done || p.total != v.last.total) && now.Sub(v.lastAt) >= v.every
	if !due || v.next == v.lastLine {
		return
	}
	fmt.Fprintln(v.w, v.next)
	v.last, v.lastLine, v.lastAt = p, v.next, now
}

func (v *progressLines) line(p progress, rate float64) string {
	if p.state == dispatcher.BroadcastPlanning && p.total == 0 {
		return "planning: choosing the audience"
	}
	s := fmt.Sprintf("%s: %d/%d deliveries (%d%%)", p.state, p.done, p.total, percent(p.done, p.total))
	if d := p.detail(rate); d != "" {
		s += "; " + d
	}
	return s
}

// close writes the latest line if it was not, and a blank line before the
// broadcast's last state.
func (v *progressLines) close() {
	if v.next != v.lastLine {
		fmt.Fprintln(v.w, v.next)
		v.lastLine = v.next
	}
	if v.lastLine != "" {
		fmt.Fprintln(v.w)
	}
}

func percent(done, total int) int {
	if total <= 0 {
		return 100
	}
	return done * 100 / total
}

// progressBar is the view for a terminal: one line redrawn in place.
type progressBar struct {
	w   io.Writer
	bar *progressbar.ProgressBar
	max int64
}

// newProgressBar draws on w. The library draws the bar and the count;
// rate and time left are ours, from the samples dated by the injected
// clock, so that a test renders the same bar every time.
func newProgressBar(w io.Writer) *progressBar {
	return &progressBar{w: w}
}

func (v *progressBar) show(p progress, rate float64, _ time.Time) {
	desc := string(p.state)
	if d := p.detail(rate); d != "" {
		desc += ": " + d
	}
	if v.bar == nil {
		v.bar = progressbar.NewOptions64(-1,
			progressbar.OptionSetWriter(v.w),
			progressbar.OptionSetWidth(30),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(false),
			progressbar.OptionSetElapsedTime(false),
			progressbar.OptionSpinnerType(14),
			// The spinner turns once per poll, not on a timer of its own.
			progressbar.OptionSetSpinnerChangeInterval(0),
			progressbar.OptionShowDescriptionAtLineEnd(),
			progressbar.OptionSetDescription(desc),
		)
		v.max = -1
	}
	if p.total > 0 && int64(p.total) != v.max {
		v.max = int64(p.total)
		v.bar.ChangeMax64(v.max)
	}
	v.bar.Describe(desc)
	if v.max > 0 {
		_ = v.bar.Set(p.done)
	} else {
		_ = v.bar.Add(0)
	}
}

func (v *progressBar) close() {
	if v.bar != nil {
		fmt.Fprint(v.w, "\n\n")
	}
}
