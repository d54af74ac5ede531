package config

import (
	"strings"
	"testing"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// TestPolicy: channels.policy read from the file and from
// TOCSIN_CHANNELS_POLICY gives the dispatcher's default policies, first
// match wins; every bad field is a problem at its path.
func TestPolicy(t *testing.T) {
	t.Parallel()
	path := mustWriteFile(t, `
channels:
  policy:
    - opening: false
      state: [investigating, identified, monitoring]
      exclude: [{channel: sms}]
    - severity: [critical]
      order: [push, email]
      mode: all
    - maintenance: [scheduled, reminder, update, completed, cancelled]
      exclude: [{channel: sms}]
`)
	c, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := c.Channels.Policies()
	if err != nil || len(ds) != 3 {
		t.Fatalf("Policies() = %v, %v", ds, err)
	}
	if p := ds.For(dispatcher.SeverityMajor, dispatcher.StateIdentified, false); p == nil || len(p.Exclude) != 1 || p.Exclude[0].Channel != dispatcher.ChannelSMS {
		t.Errorf("a major update's default = %+v, want no SMS", p)
	}
	if p := ds.For(dispatcher.SeverityCritical, dispatcher.StateInvestigating, true); p == nil || p.Mode != dispatcher.ModeAll {
		t.Errorf("a critical opening's default = %+v, want mode all", p)
	}
	if p := ds.For(dispatcher.SeverityMajor, dispatcher.StateResolved, false); p != nil {
		t.Errorf("a major resolution's default = %+v, want none", p)
	}
	if p := ds.ForMaintenance("reminder_1h0m0s"); p == nil || len(p.Exclude) != 1 {
		t.Errorf("a maintenance reminder's default = %+v, want no SMS", p)
	}
	if p := ds.ForMaintenance("started"); p != nil {
		t.Errorf("a maintenance start's default = %+v, want none (SMS allowed)", p)
	}

	c, err = Load("", mapEnv(map[string]string{"TOCSIN_CHANNELS_POLICY": `[{"severity": ["critical"], "mode": "all"}]`}))
	if err != nil {
		t.Fatal(err)
	}
	if ds, err := c.Channels.Policies(); err != nil || len(ds) != 1 || ds[0].Policy.Mode != dispatcher.ModeAll {
		t.Errorf("from the environment: %+v, %v", ds, err)
	}

	bad := Default()
	bad.Channels.Policy = PolicyRules{{Severity: []string{"huge"}, State: []string{"over"}, Order: []string{"fax"}, Mode: "some",
		Exclude: []PolicyExclude{{Channel: "pigeon", Until: "later"}}}, {Maintenance: []string{"begun"}}}
	err = bad.Validate()
	for _, want := range []string{"channels.policy[0].severity[0]", "channels.policy[0].state[0]", "channels.policy[0].order[0]",
		"channels.policy[0].mode", "channels.policy[0].exclude[0].channel", "channels.policy[0].exclude[0].until", "channels.policy[1].maintenance[0]"} {
		if err == nil || !strings.Contains(err.Error(), want+":") {
			t.Errorf("Validate() = %v, want a problem at %s", err, want)
		}
	}
	_, err = Load("", mapEnv(map[string]string{"TOCSIN_CHANNELS_POLICY": `[{"mode": "some"}]`}))
	if err == nil || !strings.Contains(err.Error(), "TOCSIN_CHANNELS_POLICY (channels.policy[0].mode)") {
		t.Errorf("a bad rule from the environment: %v, want it named by its variable and path", err)
	}
}
