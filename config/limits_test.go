package config

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

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
	if got := []Rate{c.Channels.SMS.Rate, c.Channels.Email.Rate, c.Channels.Push.Rate, c.Limits.PerRecipient}; fmt.Sprint(got) != "[1/s 600/min 10000/s 0]" {
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
	if got := []Rate{c.Channels.SMS.Rate, c.Channels.Email.Rate, c.Channels.Push.Rate, c.Limits.PerRecipient}; fmt.Sprint(got) != "[100/s 20/s 600000/min 3/h]" {
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
		`channels.sms.rate: must be events per unit, from 1 to 1000000, like 100/s, 10/min or 5/h, got "100"`,
		`channels.email.rate: must be at least 1 event per unit, got "0"`,
		`channels.push.rate: is required: events per unit, like 100/s, 10/min or 5/h`,
		`limits.per_recipient: must be events per unit, from 1 to 1000000, like 100/s, 10/min or 5/h, got "10/day"`,
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
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), `channels.sms.rate: must be events per unit, from 1 to 1000000, like 100/s, 10/min or 5/h, got "1000001/s"`) {
		t.Errorf("a rate over the maximum: %v", err)
	}
}

// TestValidateQuietHours: Validate refuses what the dispatcher cannot read,
// so that `tocsin serve` never starts on quiet hours it then refuses.
func TestValidateQuietHours(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   QuietHours
		want *dispatcher.QuietHours // nil: invalid, or off
	}{
		{"", nil},
		{"22:00-07:00", &dispatcher.QuietHours{Start: 22 * time.Hour, End: 7 * time.Hour}},
		{"09:30-17:45", &dispatcher.QuietHours{Start: 9*time.Hour + 30*time.Minute, End: 17*time.Hour + 45*time.Minute}},
		{"22:00-22:00", nil},
		{"24:00-07:00", nil},
		{"22:00", nil},
		{"late", nil},
	} {
		c := Default()
		c.Limits.QuietHours = tc.in
		err := c.Validate()
		switch {
		case tc.want != nil || tc.in == "":
			if err != nil {
				t.Errorf("quiet_hours %q: Validate() = %v, want nil", tc.in, err)
			}
		case problemCount(err) != 1 || !strings.Contains(err.Error(), fmt.Sprintf("limits.quiet_hours: must be HH:MM-HH:MM in 24-hour time, with a start and an end that differ, like 22:00-07:00, got %q", tc.in)):
			t.Errorf("quiet_hours %q: Validate() = %v, want the one problem of limits.quiet_hours", tc.in, err)
		}
		if got := c.Limits.QuietHours.Value(); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("quiet_hours %q: QuietHours.Value() = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

// TestParsedRates: the rates app.go runs with are the ones Validate read.
func TestParsedRates(t *testing.T) {
	t.Parallel()
	c := Default()
	c.Channels.SMS.Rate = " 7 / second "
	c.Limits.PerRecipient = "0"
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	got := []dispatcher.Rate{c.Channels.SMS.Rate.Value(), c.Channels.Email.Rate.Value(), c.Channels.Push.Rate.Value(), c.Limits.PerRecipient.Value()}
	want := []dispatcher.Rate{{N: 7, Per: time.Second}, {N: 50, Per: time.Second}, {N: 500, Per: time.Second}, {}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parsed rates %v, want %v", got, want)
	}
	c.Channels.SMS.Rate = "fast"
	if r := c.Channels.SMS.Rate.Value(); !r.IsZero() {
		t.Errorf("an invalid rate parses as %v, want the zero Rate", r)
	}
}
