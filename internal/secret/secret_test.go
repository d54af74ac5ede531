package secret_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/tocsin-dev/tocsin/internal/secret"
)

// TestSecretNeverPrints: every way of printing a struct that holds a Secret
// shows "[redacted]" (or "" when unset), and Reveal gives the value.
func TestSecretNeverPrints(t *testing.T) {
	t.Parallel()
	const value = "hunter2-Xq81"
	type options struct {
		Name     string        `json:"name" yaml:"name"`
		Password secret.Secret `json:"password" yaml:"password"`
		Unset    secret.Secret `json:"unset" yaml:"unset"`
	}
	o := options{Name: "n", Password: value}

	js, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	ym, err := yaml.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "options", o, "password", o.Password)
	var text bytes.Buffer
	slog.New(slog.NewTextHandler(&text, nil)).Info("x", "password", o.Password)

	for name, s := range map[string]string{
		"%v": fmt.Sprintf("%v", o), "%+v": fmt.Sprintf("%+v", o), "%#v": fmt.Sprintf("%#v", o),
		"%s": fmt.Sprintf("%s", o.Password), "%q": fmt.Sprintf("%q", o.Password), "%x": fmt.Sprintf("%x", o.Password),
		"json": string(js), "yaml": string(ym), "slog json": logs.String(), "slog text": text.String(),
	} {
		if strings.Contains(s, value) {
			t.Errorf("%s prints the secret: %s", name, s)
		}
		if !strings.Contains(s, "[redacted]") && name != "%x" {
			t.Errorf("%s does not show [redacted]: %s", name, s)
		}
	}
	if !strings.Contains(string(js), `"unset":""`) || !strings.Contains(string(ym), `unset: ""`) {
		t.Errorf("an unset secret must encode empty: %s %s", js, ym)
	}
	if got := fmt.Sprintf("%#v", o); !strings.Contains(got, `Password:"[redacted]", Unset:""`) {
		t.Errorf("%%#v = %s", got)
	}
	if o.Password.Reveal() != value {
		t.Errorf("Reveal() = %q", o.Password.Reveal())
	}

	// Decoding still reads the value itself.
	var back options
	if err := yaml.Unmarshal([]byte("password: "+value), &back); err != nil || back.Password.Reveal() != value {
		t.Errorf("yaml decoding: %q, %v", back.Password.Reveal(), err)
	}
	if err := json.Unmarshal([]byte(`{"password":"`+value+`"}`), &back); err != nil || back.Password.Reveal() != value {
		t.Errorf("json decoding: %q, %v", back.Password.Reveal(), err)
	}
}
