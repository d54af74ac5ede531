package config

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// PolicyRule is one default channel policy (channels.policy): it applies
// to an update whose incident's severity is in Severity, whose state is in
// State and whose Opening (the incident's first update or not) matches;
// an empty list or an unset opening matches any. The first rule that
// matches gives the default; an incident's and an update's own
// channel_policy override it field by field (docs/api.md).
type PolicyRule struct {
	// Severity lists severities (minor, major, critical).
	Severity []string `yaml:"severity"`
	// State lists states (investigating, identified, monitoring, resolved).
	State []string `yaml:"state"`
	// Opening: true matches only an incident's first update, false only
	// the later ones; unset matches both.
	Opening *bool `yaml:"opening"`
	// Maintenance makes the rule one for the notices of scheduled
	// maintenance of these events (scheduled, reminder, started, update,
	// completed, cancelled) instead of incident updates.
	Maintenance []string `yaml:"maintenance"`
	// Order, Exclude and Mode are the policy (dispatcher.ChannelPolicy).
	Order   []string        `yaml:"order"`
	Exclude []PolicyExclude `yaml:"exclude"`
	Mode    string          `yaml:"mode"`
}

// PolicyRules are the rules of channels.policy, in order.
type PolicyRules []PolicyRule

// logAttrs shows each rule on one line, by its place in the list.
func (rs PolicyRules) logAttrs() []slog.Attr {
	attrs := make([]slog.Attr, len(rs))
	for i, r := range rs {
		var b strings.Builder
		fmt.Fprintf(&b, "severity=%s state=%s maintenance=%s", strings.Join(r.Severity, ","), strings.Join(r.State, ","), strings.Join(r.Maintenance, ","))
		if r.Opening != nil {
			fmt.Fprintf(&b, " opening=%t", *r.Opening)
		}
		fmt.Fprintf(&b, " order=%s mode=%s", strings.Join(r.Order, ","), r.Mode)
		for _, x := range r.Exclude {
			fmt.Fprintf(&b, " exclude=%s:services=%s:affected=%t:until=%s", x.Channel, strings.Join(x.Services, ","), x.Affected, x.Until)
		}
		attrs[i] = slog.String(strconv.Itoa(i), b.String())
	}
	return attrs
}

// PolicyExclude is one exclude rule of a default policy
// (dispatcher.ExcludeRule).
type PolicyExclude struct {
	Channel  string   `yaml:"channel"`
	Services []string `yaml:"services"`
	Affected bool     `yaml:"affected"`
	Until    string   `yaml:"until"`
}

// Policies returns the default channel policies (none when no rule is
// configured); Validate reports what it refuses.
func (c Channels) Policies() (dispatcher.PolicyDefaults, error) {
	if len(c.Policy) == 0 {
		return nil, nil
	}
	ds := make([]dispatcher.PolicyDefault, len(c.Policy))
	for i, r := range c.Policy {
		d := dispatcher.PolicyDefault{Opening: r.Opening, Maintenance: r.Maintenance, Policy: dispatcher.ChannelPolicy{Mode: dispatcher.PolicyMode(r.Mode)}}
		for _, s := range r.Severity {
			d.Severities = append(d.Severities, dispatcher.Severity(s))
		}
		for _, s := range r.State {
			d.States = append(d.States, dispatcher.State(s))
		}
		for _, ch := range r.Order {
			d.Policy.Order = append(d.Policy.Order, dispatcher.Channel(ch))
		}
		for _, x := range r.Exclude {
			d.Policy.Exclude = append(d.Policy.Exclude, dispatcher.ExcludeRule{
				Channel: dispatcher.Channel(x.Channel), Services: x.Services, Affected: x.Affected, Until: dispatcher.State(x.Until)})
		}
		ds[i] = d
	}
	return dispatcher.NewPolicyDefaults("channels.policy", ds)
}

func (v validator) policy(c Channels) {
	_, err := c.Policies()
	var ve *dispatcher.ValidationError
	switch {
	case errors.As(err, &ve):
		for _, f := range ve.Fields {
			if f.Value != nil {
				v.Add(f.Field, "%s, got %q", f.Message, f.Value)
			} else {
				v.Add(f.Field, "%s", f.Message)
			}
		}
	case err != nil:
		v.Add("channels.policy", "%v", err)
	}
}
