package dispatcher_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

func TestRecipientFilterNormalize(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		in   dispatcher.RecipientFilter
		want dispatcher.RecipientFilter // when valid
		bad  []string                   // fields, when not
	}{
		{name: "empty", want: dispatcher.RecipientFilter{Limit: dispatcher.DefaultRecipientPage}},
		{name: "all set",
			in:   dispatcher.RecipientFilter{Service: "twint", Region: "CH", Kind: dispatcher.KindMerchant, Locale: "de-ch", Channel: dispatcher.ChannelWebhook, Cursor: "abc", Limit: 1000},
			want: dispatcher.RecipientFilter{Service: "twint", Region: "CH", Kind: dispatcher.KindMerchant, Locale: "de-CH", Channel: dispatcher.ChannelWebhook, Cursor: "abc", Limit: 1000}},
		{name: "locale canonicalized", in: dispatcher.RecipientFilter{Locale: "ZH-hant-tw", Limit: 1},
			want: dispatcher.RecipientFilter{Locale: "zh-Hant-TW", Limit: 1}},
		{name: "service", in: dispatcher.RecipientFilter{Service: "a b"}, bad: []string{"query.service"}},
		{name: "service *", in: dispatcher.RecipientFilter{Service: "*"}, bad: []string{"query.service"}},
		{name: "region", in: dispatcher.RecipientFilter{Region: "CH{"}, bad: []string{"query.region"}},
		{name: "kind", in: dispatcher.RecipientFilter{Kind: "robot"}, bad: []string{"query.kind"}},
		{name: "locale", in: dispatcher.RecipientFilter{Locale: "xx-!!"}, bad: []string{"query.locale"}},
		{name: "channel none", in: dispatcher.RecipientFilter{Channel: dispatcher.ChannelNone}, bad: []string{"query.channel"}},
		{name: "limit over", in: dispatcher.RecipientFilter{Limit: dispatcher.MaxRecipientPage + 1}, bad: []string{"query.limit"}},
		{name: "limit negative", in: dispatcher.RecipientFilter{Limit: -1}, bad: []string{"query.limit"}},
		{name: "every field",
			in:  dispatcher.RecipientFilter{Service: "*", Region: "*", Kind: "x", Locale: "!", Channel: "fax", Limit: -1},
			bad: []string{"query.service", "query.region", "query.kind", "query.locale", "query.channel", "query.limit"}},
	} {
		f := tc.in
		err := f.Normalize()
		if tc.bad == nil {
			if err != nil || f != tc.want {
				t.Errorf("%s: %+v, %v; want %+v", tc.name, f, err, tc.want)
			}
			continue
		}
		var ve *dispatcher.ValidationError
		if !errors.As(err, &ve) {
			t.Errorf("%s: %v, want a ValidationError", tc.name, err)
			continue
		}
		var fields []string
		for _, fe := range ve.Fields {
			fields = append(fields, fe.Field)
		}
		if !slices.Equal(fields, tc.bad) {
			t.Errorf("%s: fields %v, want %v", tc.name, fields, tc.bad)
		}
	}
}
