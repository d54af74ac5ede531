package api

import (
	"reflect"

	"github.com/danielgtaylor/huma/v2"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// registerPolicySchema describes dispatcher.ChannelPolicy (a channel
// policy on an incident, an update, a preview and a broadcast) for the
// OpenAPI document. Types and enums are checked by the schema; dispatcher
// checks the rest and names each bad field by its path.
func registerPolicySchema(api huma.API) {
	api.OpenAPI().Components.Schemas.RegisterTypeAlias(reflect.TypeFor[dispatcher.ChannelPolicy](), reflect.TypeFor[policySchema]())
}

type policySchema struct{}

// nullablePolicy is the policy's schema with null allowed (a PATCH
// removes the policy so) and doc as its description.
func nullablePolicy(reg huma.Registry, doc string) *huma.Schema {
	s := *reg.Schema(reflect.TypeFor[dispatcher.ChannelPolicy](), true, "ChannelPolicy")
	if s.Ref != "" { // a named component: described beside the reference
		return &huma.Schema{Ref: s.Ref, Description: doc}
	}
	s.Nullable, s.Description = true, doc
	return &s
}

// channelEnum lists the real channels for a schema's enum.
func channelEnum() []any {
	out := make([]any, len(dispatcher.Channels))
	for i, c := range dispatcher.Channels {
		out[i] = string(c)
	}
	return out
}

// Schema implements huma.SchemaProvider.
func (policySchema) Schema(huma.Registry) *huma.Schema {
	channel := &huma.Schema{Type: huma.TypeString, Enum: channelEnum()}
	rule := &huma.Schema{
		Type: huma.TypeObject,
		Properties: map[string]*huma.Schema{
			"channel": {Type: huma.TypeString, Enum: channelEnum(), Description: "The channel not to use."},
			"services": {OneOf: []*huma.Schema{
				{Type: huma.TypeArray, Items: &huma.Schema{Type: huma.TypeString}, Nullable: true},
				{Type: huma.TypeString, Enum: []any{"affected"}},
			}, Description: "Only for recipients who use any of these services (a recipient that lists none uses all). \"affected\" is the same as affected: true."},
			"affected": {Type: huma.TypeBoolean,
				Description: "Only for recipients who use any of the incident's own services, as they stand when the update is sent. With neither services nor affected: every recipient."},
			"until": {Type: huma.TypeString, Enum: []any{"identified", "monitoring", "resolved", "never"},
				Description: "The first state the rule no longer applies to; default resolved (the resolution goes out on the channel again). never: every update."},
		},
		Required:             []string{"channel"},
		AdditionalProperties: false,
		Examples:             []any{map[string]any{"channel": "sms", "affected": true}},
	}
	return &huma.Schema{
		Type: huma.TypeObject,
		Description: "Channel policy (docs/api.md, \"Channel policy\"). A field left out (or null) inherits: the update's policy over the incident's " +
			"over the configured default (channels.policy); an empty list is given and clears what would be inherited.",
		Properties: map[string]*huma.Schema{
			"order": {Type: huma.TypeArray, Items: channel, Nullable: true,
				Description: "Reorders each recipient's own preferences: its channels listed here first, in this order, then its others in its own order (not dropped; channels restricts, exclude drops)."},
			"exclude": {Type: huma.TypeArray, Items: rule, Nullable: true,
				Description: "Channels kept from the recipients each rule names, while the update's state is before the rule's until. A recipient whose every reachable channel is excluded is suppressed with reason policy_excluded."},
			"mode": {Type: huma.TypeString, Enum: []any{string(dispatcher.ModeFirstReachable), string(dispatcher.ModeAll)},
				Description: "first_reachable (default): the first channel the recipient can be reached on, the next one if it fails. all: every such channel, one delivery each (no fallback)."},
		},
		AdditionalProperties: false,
		Examples:             []any{map[string]any{"order": []string{"push", "email", "sms"}, "exclude": []any{map[string]any{"channel": "sms", "affected": true}}, "mode": "all"}},
	}
}
