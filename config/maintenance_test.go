package config

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestMaintenanceReminders(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		env  string
		want Durations
		err  string
	}{
		{"30m, 12h", Durations{30 * time.Minute, 12 * time.Hour}, ""},
		{"", nil, ""}, // none
		{"1h,soon", nil, "TOCSIN_MAINTENANCE_REMINDERS"},
		{"10s", nil, "between 1m and 720h"},
		{"1000h", nil, "between 1m and 720h"},
	} {
		env := map[string]string{"TOCSIN_MAINTENANCE_REMINDERS": tt.env}
		c, err := Load("", func(k string) (string, bool) { v, ok := env[k]; return v, ok })
		switch {
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("%q: %v, want an error naming %s", tt.env, err, tt.err)
		case tt.err == "" && (err != nil || !slices.Equal(c.Maintenance.Reminders, tt.want)):
			t.Errorf("%q: %v, %v; want %v", tt.env, c.Maintenance.Reminders, err, tt.want)
		}
	}
	if got := Default().Maintenance.Reminders.String(); got != "24h, 1h" {
		t.Errorf("default reminders read %q", got)
	}
}
