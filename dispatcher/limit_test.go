package dispatcher_test

import (
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

func TestParseRate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want dispatcher.Rate
		str  string
	}{
		{"100/s", dispatcher.Rate{N: 100, Per: time.Second}, "100/s"},
		{"10/min", dispatcher.Rate{N: 10, Per: time.Minute}, "10/min"},
		{"5/h", dispatcher.Rate{N: 5, Per: time.Hour}, "5/h"},
		{" 7 / second ", dispatcher.Rate{N: 7, Per: time.Second}, "7/s"},
		{"1/sec", dispatcher.Rate{N: 1, Per: time.Second}, "1/s"},
		{"3/m", dispatcher.Rate{N: 3, Per: time.Minute}, "3/min"},
		{"3/minute", dispatcher.Rate{N: 3, Per: time.Minute}, "3/min"},
		{"2/hour", dispatcher.Rate{N: 2, Per: time.Hour}, "2/h"},
		{"1000000/s", dispatcher.Rate{N: 1_000_000, Per: time.Second}, "1000000/s"},
		{"0", dispatcher.Rate{}, "0"},
		{"0/h", dispatcher.Rate{}, "0"},
	} {
		got, err := dispatcher.ParseRate(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseRate(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			continue
		}
		if s := got.String(); s != tc.str {
			t.Errorf("ParseRate(%q).String() = %q, want %q", tc.in, s, tc.str)
		}
	}
	for _, in := range []string{"", "abc", "10", "10/", "/s", "10/d", "10/ms", "-1/s", "1.5/s", "1e3/s", "10/S", "1000001/s", "99999999999999999999/s", "10/s/s"} {
		if got, err := dispatcher.ParseRate(in); err == nil {
			t.Errorf("ParseRate(%q) = %+v, want an error", in, got)
		}
	}
}

func FuzzParseRate(f *testing.F) {
	for _, s := range []string{"100/s", "10/min", "5/h", "0", "1/hour", " 3 / m "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := dispatcher.ParseRate(s)
		if err != nil {
			return
		}
		if r.IsZero() {
			if r != (dispatcher.Rate{}) {
				t.Fatalf("ParseRate(%q) = %+v: a zero rate that is not Rate{}", s, r)
			}
			return
		}
		if r.N < 1 || r.N > dispatcher.MaxRateN || r.Interval() <= 0 {
			t.Fatalf("ParseRate(%q) = %+v", s, r)
		}
		back, err := dispatcher.ParseRate(r.String())
		if err != nil || back != r {
			t.Fatalf("ParseRate(%q) = %+v, but ParseRate(%q) = %+v, %v", s, r, r.String(), back, err)
		}
	})
}

func TestRateInterval(t *testing.T) {
	t.Parallel()
	for r, want := range map[dispatcher.Rate]time.Duration{
		{N: 50, Per: time.Second}: 20 * time.Millisecond,
		{N: 10, Per: time.Hour}:   6 * time.Minute,
		{}:                        0,
	} {
		if got := r.Interval(); got != want {
			t.Errorf("%v.Interval() = %v, want %v", r, got, want)
		}
	}
	if s := (dispatcher.Rate{N: 3, Per: 10 * time.Second}).String(); s != "3/10s" {
		t.Errorf("String() = %q, want 3/10s", s)
	}
}

func TestRecipientKey(t *testing.T) {
	t.Parallel()
	if got := dispatcher.RecipientKey(dispatcher.ChannelSMS, "r1"); got != "recipient:sms:r1" {
		t.Errorf("RecipientKey = %q", got)
	}
}
