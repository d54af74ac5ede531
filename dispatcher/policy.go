package dispatcher

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Channel policy (issue "reach everyone who matters", item 1): which of a
// recipient's channels an update goes out on, and in which order. A policy
// is given on an update, on its incident (kept with it, for all its
// updates) and by default in configuration per severity, state and opening
// (PolicyDefaults); EffectivePolicy folds them, field by field, and the
// broadcast keeps the result (Broadcast.Policy). Decide applies it.

// PolicyMode says how many channels a recipient is sent an update on.
type PolicyMode string

const (
	// ModeFirstReachable sends on the first channel, in the recipient's
	// (reordered) preference order, that the recipient can be reached on;
	// a channel that fails for good falls back to the next. The default.
	ModeFirstReachable PolicyMode = "first_reachable"
	// ModeAll sends on every channel the recipient can be reached on: one
	// delivery per channel, each guarded on its own (nobody gets an older
	// update after a newer one on any channel). A failed channel has no
	// fallback: every other reachable channel has a delivery already.
	ModeAll PolicyMode = "all"
)

// UntilNever is ExcludeRule.Until for a rule that applies to every update,
// the resolution included.
const UntilNever State = "never"

// ChannelPolicy is an update's channel policy. In an input (an update's or
// an incident's channel_policy) a nil field inherits the next policy's
// (update > incident > configured default); an empty list ("order": [] or
// "exclude": []) is given, and clears what would be inherited. The lists
// are encoded without omitempty so that a stored empty list stays one.
type ChannelPolicy struct {
	// Order reorders each recipient's own preference list: its channels
	// listed here come first, in this order, then its other channels in
	// its own order. A channel not listed is kept (after), not dropped:
	// the update's channels list or an exclude rule drops channels. A
	// channel listed that the recipient has not chosen is not added.
	Order []Channel `json:"order"`
	// Exclude lists channels not used for some recipients (see
	// ExcludeRule).
	Exclude []ExcludeRule `json:"exclude"`
	// Mode is first_reachable (""; the default) or all.
	Mode PolicyMode `json:"mode,omitempty"`
}

// ExcludeRule keeps a channel from the recipients it names while the
// update's state is before Until: {"channel": "sms", "affected": true}
// sends no SMS to users of the incident's own services until it is
// resolved, so the resolution goes by SMS once the network is back.
type ExcludeRule struct {
	Channel Channel `json:"channel"`
	// Services names recipients who use any of these services (a
	// recipient that lists none uses all). With neither Services nor
	// Affected the rule names every recipient.
	Services []string `json:"services,omitempty"`
	// Affected names recipients who use any of the incident's own
	// services (as they stand when the update is sent): the rule is
	// written once, on the incident, and follows its services.
	Affected bool `json:"affected,omitempty"`
	// Until is the first state the rule no longer applies to: identified,
	// monitoring or resolved ("" is resolved), or never (it applies to
	// every update, the resolution too).
	Until State `json:"until,omitempty"`
}

// UnmarshalJSON reads a rule, taking "services": "affected" as
// "affected": true (the incident's own services, written as a value of
// services).
func (x *ExcludeRule) UnmarshalJSON(b []byte) error {
	type plain ExcludeRule
	var raw struct {
		plain
		Services json.RawMessage `json:"services,omitempty"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	*x = ExcludeRule(raw.plain)
	switch s := bytes.TrimSpace(raw.Services); {
	case len(s) == 0 || bytes.Equal(s, []byte("null")):
	case s[0] == '"':
		var word string
		if err := json.Unmarshal(s, &word); err != nil || word != "affected" {
			return fmt.Errorf(`exclude: services is a list of services, or "affected" (the incident's own), got %s`, s)
		}
		x.Affected = true
	default:
		return json.Unmarshal(s, &x.Services)
	}
	return nil
}

// All reports whether p is in mode all.
func (p *ChannelPolicy) All() bool { return p != nil && p.Mode == ModeAll }

// IsZero reports whether p says nothing (today's behaviour).
func (p *ChannelPolicy) IsZero() bool {
	return p == nil || (len(p.Order) == 0 && len(p.Exclude) == 0 && (p.Mode == "" || p.Mode == ModeFirstReachable))
}

// active reports whether rule x applies to an update in state st.
func (x ExcludeRule) active(st State) bool {
	until := cmp0(x.Until, StateResolved)
	if until == UntilNever {
		return true
	}
	if st.rank() < 0 { // a maintenance notice: until is about incident states
		return true
	}
	return st.rank() < until.rank()
}

// names reports whether rule x names r, of an incident with services
// affected.
func (x ExcludeRule) names(r *Recipient, affected []string) bool {
	if len(x.Services) == 0 && !x.Affected {
		return true
	}
	if len(x.Services) > 0 && intersects(x.Services, r.Services) {
		return true
	}
	return x.Affected && intersects(affected, r.Services)
}

func cmp0[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// validatePolicy checks a policy given at field (body.channel_policy) and
// returns it canonical (channels and services deduplicated, services in
// their stored form, until and mode spelt out); nil stays nil. Services
// are free labels, as an incident's are: a service no recipient uses
// names nobody.
func validatePolicy(v *ValidationError, field string, p *ChannelPolicy) *ChannelPolicy {
	if p == nil {
		return nil
	}
	out := &ChannelPolicy{Mode: p.Mode}
	if p.Order != nil {
		out.Order = validateChannels(v, field+".order", slices.Clone(p.Order))
	}
	switch p.Mode {
	case "", ModeFirstReachable, ModeAll:
	default:
		v.add(field+".mode", "must be first_reachable or all", p.Mode)
	}
	if p.Exclude != nil {
		out.Exclude = make([]ExcludeRule, 0, len(p.Exclude))
	}
	if len(p.Exclude) > maxExcludeRules {
		v.add(field+".exclude", fmt.Sprintf("at most %d rules", maxExcludeRules), nil)
	}
	for i, x := range p.Exclude {
		at := fmt.Sprintf("%s.exclude[%d]", field, i)
		if !x.Channel.Valid() {
			v.add(at+".channel", "must be one of push, sms, email, webhook", x.Channel)
		}
		x.Services = validateServices(v, at+".services", slices.Clone(x.Services))
		if len(x.Services) == 0 {
			x.Services = nil
		}
		switch x.Until {
		case "":
			x.Until = StateResolved
		case StateIdentified, StateMonitoring, StateResolved, UntilNever:
		default:
			v.add(at+".until", "must be identified, monitoring, resolved (the default) or never", x.Until)
		}
		out.Exclude = append(out.Exclude, x)
	}
	return out
}

// maxExcludeRules caps a policy's exclude rules.
const maxExcludeRules = 16

// Over returns p with every field base has that p leaves unset (nil): the
// per-field inheritance of update > incident > configured default. Either
// may be nil.
func (p *ChannelPolicy) Over(base *ChannelPolicy) *ChannelPolicy {
	if p == nil {
		return base
	}
	if base == nil {
		return p
	}
	out := *p
	if out.Order == nil {
		out.Order = base.Order
	}
	if out.Exclude == nil {
		out.Exclude = base.Exclude
	}
	if out.Mode == "" {
		out.Mode = base.Mode
	}
	return &out
}

// PolicyDefault is one rule of the configured default policies: it matches
// an update by its incident's severity, its state and whether it is the
// incident's opening (empty lists and a nil Opening match any). A rule
// with Maintenance matches instead the notices of scheduled maintenance of
// those events (MaintenanceEvents), and no incident update.
type PolicyDefault struct {
	Severities  []Severity
	States      []State
	Opening     *bool
	Maintenance []string
	Policy      ChannelPolicy
}

// MaintenanceEvents are the notices of a maintenance a default policy may
// match: reminder stands for every reminder, update for every update.
var MaintenanceEvents = []string{"scheduled", "reminder", "started", "update", "completed", "cancelled"}

// maintenanceEventKind is the MaintenanceEvents entry of a notice's event
// ("reminder_24h0m0s" is reminder, "update_3" update).
func maintenanceEventKind(event string) string {
	kind, _, _ := strings.Cut(event, "_")
	return kind
}

// PolicyDefaults are the configured default policies; the first rule that
// matches an update gives its default policy.
type PolicyDefaults []PolicyDefault

// For returns the default policy of an update in state st of an incident
// of severity sev (opening: its first update); nil when no rule matches.
func (ds PolicyDefaults) For(sev Severity, st State, opening bool) *ChannelPolicy {
	for i := range ds {
		d := &ds[i]
		if len(d.Maintenance) == 0 && (len(d.Severities) == 0 || slices.Contains(d.Severities, sev)) &&
			(len(d.States) == 0 || slices.Contains(d.States, st)) &&
			(d.Opening == nil || *d.Opening == opening) {
			return &d.Policy
		}
	}
	return nil
}

// ForMaintenance returns the policy of a maintenance notice of event
// (MaintenanceNotice.Event), its mode spelt out: the first rule whose
// Maintenance names the event's kind; nil when none does. Its exclude
// rules apply whatever their until (a notice has no incident state).
func (ds PolicyDefaults) ForMaintenance(event string) *ChannelPolicy {
	kind := maintenanceEventKind(event)
	for i := range ds {
		if d := &ds[i]; slices.Contains(d.Maintenance, kind) {
			p := d.Policy
			p.Mode = cmp0(p.Mode, ModeFirstReachable)
			return &p
		}
	}
	return nil
}

// NewPolicyDefaults checks configured rules, naming a bad one by its place
// under field ("channels.policy[2].exclude[0].channel"), and returns them
// canonical.
func NewPolicyDefaults(field string, ds []PolicyDefault) (PolicyDefaults, error) {
	v := &ValidationError{}
	out := make(PolicyDefaults, len(ds))
	for i, d := range ds {
		at := fmt.Sprintf("%s[%d]", field, i)
		for j, s := range d.Severities {
			if !s.Valid() {
				v.add(fmt.Sprintf("%s.severity[%d]", at, j), "must be one of minor, major, critical", s)
			}
		}
		for j, s := range d.States {
			if !s.Valid() {
				v.add(fmt.Sprintf("%s.state[%d]", at, j), "must be one of investigating, identified, monitoring, resolved", s)
			}
		}
		for j, e := range d.Maintenance {
			if !slices.Contains(MaintenanceEvents, e) {
				v.add(fmt.Sprintf("%s.maintenance[%d]", at, j), "must be one of "+strings.Join(MaintenanceEvents, ", "), e)
			}
		}
		if len(d.Maintenance) > 0 && (len(d.Severities) > 0 || len(d.States) > 0 || d.Opening != nil) {
			v.add(at+".maintenance", "a rule for maintenance notices takes no severity, state or opening", nil)
		}
		p := validatePolicy(v, at, &d.Policy)
		d.Policy = *p
		out[i] = d
	}
	if err := v.orNil(); err != nil {
		return nil, err
	}
	return out, nil
}

// EffectivePolicy is the policy an update in state st of inc is sent
// with: the update's own (up, nil for none) over the incident's
// (inc.ChannelPolicy) over the first configured default that matches. Nil
// when none says anything.
func (ds PolicyDefaults) EffectivePolicy(inc *Incident, up *ChannelPolicy, st State, opening bool) *ChannelPolicy {
	p := up.Over(inc.ChannelPolicy).Over(ds.For(inc.Severity, st, opening))
	if p.IsZero() {
		return nil
	}
	out := *p
	out.Mode = cmp0(out.Mode, ModeFirstReachable)
	return &out
}

// String writes p for logs: "order=push,email exclude=sms:affected mode=all".
func (p *ChannelPolicy) String() string {
	if p == nil {
		return "default"
	}
	var parts []string
	if len(p.Order) > 0 {
		parts = append(parts, "order="+joinChannels(p.Order))
	}
	for _, x := range p.Exclude {
		who := "all"
		switch {
		case x.Affected && len(x.Services) > 0:
			who = "affected+" + strings.Join(x.Services, "+")
		case x.Affected:
			who = "affected"
		case len(x.Services) > 0:
			who = strings.Join(x.Services, "+")
		}
		parts = append(parts, "exclude="+string(x.Channel)+":"+who+":until="+string(cmp0(x.Until, StateResolved)))
	}
	parts = append(parts, "mode="+string(cmp0(p.Mode, ModeFirstReachable)))
	return strings.Join(parts, " ")
}

func joinChannels(chs []Channel) string {
	s := make([]string, len(chs))
	for i, c := range chs {
		s[i] = string(c)
	}
	return strings.Join(s, ",")
}
