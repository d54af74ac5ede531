package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// policyFlags are the channel policy flags of incident open and incident
// update: --policy-file, then --channels-order, --exclude and --mode over
// its fields. The server checks channels, services and states and names a
// wrong one.
type policyFlags struct {
	file    string
	order   listFlag
	exclude excludeFlag
	mode    string
}

// policyFlagsOn registers the policy flags on fs.
func policyFlagsOn(fs *flagSet) *policyFlags {
	p := &policyFlags{order: listFlag{split: true}}
	fs.StringVar(&p.file, "policy-file", "", "a channel policy as JSON ({\"order\": [...], \"exclude\": [...], \"mode\": ...}; - reads stdin); the flags below override its fields")
	fs.Var(&p.order, "channels-order", "channels each recipient gets first, in this order, before its other preferences (e.g. push,email,sms)")
	fs.Var(&p.exclude, "exclude", "keep a channel from recipients until a state: CHANNEL[:affected|SERVICE,...][@identified|monitoring|resolved|never], e.g. sms:affected (default until resolved); repeatable; none: no exclusions (clears the incident's)")
	fs.StringVar(&p.mode, "mode", "", "first_reachable (default) or all: every channel a recipient can be reached on")
	return p
}

// policy returns the channel policy the flags give; nil when none is set.
func (p *policyFlags) policy() (*dispatcher.ChannelPolicy, error) {
	var out *dispatcher.ChannelPolicy
	if p.file != "" {
		raw, err := readInput(p.file)
		if err != nil {
			return nil, usageError{fmt.Errorf("--policy-file: %w", err)}
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		out = &dispatcher.ChannelPolicy{}
		if err := dec.Decode(out); err != nil {
			return nil, usageError{fmt.Errorf("--policy-file %s: %w", p.file, err)}
		}
	}
	if !p.order.set && !p.exclude.set && p.mode == "" {
		return out, nil
	}
	if out == nil {
		out = &dispatcher.ChannelPolicy{}
	}
	if p.order.set {
		out.Order = toChannels(p.order.vals)
	}
	if p.exclude.set {
		out.Exclude = p.exclude.rules
		if out.Exclude == nil {
			out.Exclude = []dispatcher.ExcludeRule{}
		}
	}
	if p.mode != "" {
		out.Mode = dispatcher.PolicyMode(p.mode)
	}
	return out, nil
}

// readInput reads a file, or stdin for "-".
func readInput(name string) ([]byte, error) {
	if name == "-" {
		var b bytes.Buffer
		_, err := b.ReadFrom(os.Stdin)
		return b.Bytes(), err
	}
	return os.ReadFile(name)
}

// excludeFlag is --exclude: CHANNEL[:WHO][@UNTIL], WHO being affected
// and/or services separated by commas; "none" gives an empty list.
type excludeFlag struct {
	rules []dispatcher.ExcludeRule
	set   bool
}

func (e *excludeFlag) String() string { return fmt.Sprint(e.rules) }

func (e *excludeFlag) Set(s string) error {
	e.set = true
	s = strings.TrimSpace(s)
	if s == "none" {
		e.rules = nil
		return nil
	}
	rest, until, _ := strings.Cut(s, "@")
	ch, who, _ := strings.Cut(rest, ":")
	if ch == "" {
		return fmt.Errorf("want CHANNEL[:affected|SERVICE,...][@UNTIL], such as sms:affected, got %q", s)
	}
	x := dispatcher.ExcludeRule{Channel: dispatcher.Channel(ch), Until: dispatcher.State(until)}
	if who != "" {
		for part := range strings.SplitSeq(who, ",") {
			switch part = strings.TrimSpace(part); part {
			case "":
				return fmt.Errorf("%q: an empty service", s)
			case "affected":
				x.Affected = true
			default:
				x.Services = append(x.Services, part)
			}
		}
	}
	e.rules = append(e.rules, x)
	return nil
}
