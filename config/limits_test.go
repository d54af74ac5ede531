package config

import (
	"strings"
	"testing"
	"time"
)

func TestParseRate(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]struct {
		n   int
		per time.Duration
	}{
		"100/s":        {100, time.Second},
		"10/min":       {10, time.Minute},
		"5/h":          {5, time.Hour},
		" 7 / second ": {7, time.Second},
		"3/m":          {3, time.Minute},
		"2/hour":       {2, time.Hour},
		"1000000/sec":  {1_000_000, time.Second},
		"0":            {0, 0},
		"0/min":        {0, 0},
	} {
		n, per, err := parseRate(in)
		if err != nil || n != want.n || per != want.per {
			t.Errorf("parseRate(%q) = %d, %v, %v; want %d, %v", in, n, per, err, want.n, want.per)
		}
	}
	for _, in := range []string{"", "fast", "100", "100/", "/s", "100/d", "100/ms", "-5/s", "1.5/s", "100/S", "1000001/s", "10/s/s"} {
		if n, per, err := parseRate(in); err == nil {
			t.Errorf("parseRate(%q) = %d, %v; want an error", in, n, per)
		}
	}
}

func TestLoadRates(t *testing.T) {
	t.Parallel()
	file := `
channels:
  sms:
    rate: "1/s"
  email:
    rate: "600/min"
  push:
    rate: "10000/s"
limits:
  per_recipient: "0"
`
	c, err := Load(mustWriteFile(t, file), nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if got := []string{c.Channels.SMS.Rate, c.Channels.Email.Rate, c.Channels.Push.Rate, c.Limits.PerRecipient}; strings.Join(got, " ") != "1/s 600/min 10000/s 0" {
		t.Errorf("from the file: %q", got)
	}

	c, err = Load(mustWriteFile(t, file), mapEnv(map[string]string{
		"TOCSIN_SMS_RATE":             "100/s",
		"TOCSIN_EMAIL_RATE":           "20/s",
		"TOCSIN_PUSH_RATE":            "600000/min",
		"TOCSIN_LIMITS_PER_RECIPIENT": "3/h",
	}))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if got := []string{c.Channels.SMS.Rate, c.Channels.Email.Rate, c.Channels.Push.Rate, c.Limits.PerRecipient}; strings.Join(got, " ") != "100/s 20/s 600000/min 3/h" {
		t.Errorf("from the environment: %q", got)
	}
}

func TestValidateRates(t *testing.T) {
	t.Parallel()
	c := Default()
	c.Channels.SMS.Rate = "100"
	c.Channels.Email.Rate = "0"
	c.Channels.Push.Rate = ""
	c.Limits.PerRecipient = "10/day"
	err := c.Validate()
	want := []string{
		`channels.sms.rate: must be events per unit, like 100/s, 10/min or 5/h, got "100"`,
		`channels.email.rate: must be at least 1 event per unit, got "0"`,
		`channels.push.rate: is required: events per unit, like 100/s, 10/min or 5/h`,
		`limits.per_recipient: must be events per unit, like 100/s, 10/min or 5/h, got "10/day"`,
	}
	if got := problemCount(err); got != len(want) {
		t.Fatalf("Validate() joins %d problems, want %d: %v", got, len(want), err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("Validate() does not say %q:\n%v", w, err)
		}
	}

	// The guard may be off; a channel may not be stopped by its rate.
	c = Default()
	c.Limits.PerRecipient = "0"
	if err := c.Validate(); err != nil {
		t.Errorf("per_recipient 0: %v", err)
	}
	c.Channels.SMS.Rate = "1000001/s"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "channels.sms.rate: must be at most 1000000") {
		t.Errorf("a rate over the maximum: %v", err)
	}
}
