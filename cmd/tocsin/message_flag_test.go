package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestMessageFlag: --message keys name a language and, optionally, a kind
// and/or a channel; they nest as the API's object forms, and a key that
// names neither is refused before anything is sent.
func TestMessageFlag(t *testing.T) {
	t.Parallel()
	f := messageFlag{mapFlag{}}
	for _, v := range []string{
		"en=Card payments fail.",
		"de=Kartenzahlungen fallen aus.",
		"de.sms=Kartenzahlung gestört.",
		"de.merchant=Ihr Terminal nimmt bald wieder Karten an.",
		"de.merchant.sms=Terminal: Karten bald wieder.",
		"fr.business.email=Vos lignes = coupées.", // '=' in the text
	} {
		if err := f.Set(v); err != nil {
			t.Fatalf("Set(%q): %v", v, err)
		}
	}
	got, err := json.Marshal(messageTexts(f.mapFlag))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(got, &doc); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"en": "Card payments fail.",
		"de": map[string]any{
			"text": "Kartenzahlungen fallen aus.",
			"sms":  "Kartenzahlung gestört.",
			"merchant": map[string]any{
				"text": "Ihr Terminal nimmt bald wieder Karten an.",
				"sms":  "Terminal: Karten bald wieder.",
			},
		},
		"fr": map[string]any{"business": map[string]any{"email": "Vos lignes = coupées."}},
	}
	wantJSON, _ := json.Marshal(want)
	gotJSON, _ := json.Marshal(doc)
	if string(gotJSON) != string(wantJSON) {
		t.Errorf("messageTexts = %s\nwant %s", gotJSON, wantJSON)
	}
	if messageTexts(mapFlag{}) != nil {
		t.Error("no --message must send no message")
	}

	for _, bad := range []struct{ in, says string }{
		{"de.merchnat=x", `"merchnat" is no recipient kind`},
		{"de.sms.merchant=x", `"sms" is no recipient kind`},
		{"de.merchant.fax=x", `"fax" is no recipient kind`},
		{"de.merchant.sms.x=y", "at most a kind and a channel"},
		{".sms=x", "want locale[.kind][.channel]=text"},
	} {
		if err := (messageFlag{mapFlag{}}).Set(bad.in); err == nil || !strings.Contains(err.Error(), bad.says) {
			t.Errorf("Set(%q) = %v, want an error saying %q", bad.in, err, bad.says)
		}
	}
}
