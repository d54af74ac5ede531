package config

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// vapidKeys returns a fresh VAPID key pair, base64url.
func vapidKeys(tb testing.TB) (public, private string) {
	tb.Helper()
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(k.PublicKey().Bytes()), base64.RawURLEncoding.EncodeToString(k.Bytes())
}

// keyFiles writes stand-ins for the FCM and APNs key files: Validate only
// checks that they exist (the push channel parses them).
func keyFiles(tb testing.TB) (credentials, p8 string) {
	tb.Helper()
	dir := tb.TempDir()
	credentials, p8 = filepath.Join(dir, "service-account.json"), filepath.Join(dir, "AuthKey_ABC123DEFG.p8")
	for _, p := range []string{credentials, p8} {
		if err := os.WriteFile(p, []byte("stand-in"), 0o600); err != nil {
			tb.Fatal(err)
		}
	}
	return credentials, p8
}

// configuredPush returns a valid config with every push provider on.
func configuredPush(tb testing.TB) (Config, string) {
	tb.Helper()
	c := Default()
	creds, p8 := keyFiles(tb)
	pub, priv := vapidKeys(tb)
	c.Channels.Push = Push{
		FCM:     FCM{CredentialsFile: creds, ProjectID: "tocsin-prod", Endpoint: DefaultFCMEndpoint},
		APNs:    APNs{KeyFile: p8, KeyID: "ABC123DEFG", TeamID: "DEF123GHIJ", Topic: "com.example.payments", Host: APNsHostProduction},
		WebPush: WebPush{VAPIDPublicKey: pub, VAPIDPrivateKey: Secret(priv), Subscriber: "mailto:ops@example.com"},
		Rate:    "500/s",
	}
	return c, priv
}

func TestPushConfigured(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(p *Push)
		want   bool
	}{
		{"defaults", func(p *Push) {}, false},
		{"fcm", func(p *Push) { p.FCM.CredentialsFile = "x.json" }, true},
		{"apns", func(p *Push) { p.APNs.KeyFile = "x.p8" }, true},
		{"webpush", func(p *Push) { p.WebPush.VAPIDPrivateKey = "k" }, true},
		{"other options alone", func(p *Push) {
			p.FCM.ProjectID, p.APNs.Topic, p.WebPush.VAPIDPublicKey, p.WebPush.Subscriber = "p", "t", "k", "mailto:a@b.c"
		}, false},
	}
	for _, tt := range tests {
		c := Default()
		tt.mutate(&c.Channels.Push)
		if got := c.PushConfigured(); got != tt.want {
			t.Errorf("%s: PushConfigured() = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestLoadPushAndWebhook(t *testing.T) {
	t.Parallel()
	creds, p8 := keyFiles(t)
	pub, priv := vapidKeys(t)
	file := fmt.Sprintf(`
channels:
  push:
    fcm:
      credentials_file: %q
      project_id: "tocsin-file"
      endpoint: "http://127.0.0.1:9001"
    apns:
      key_file: %q
      key_id: "ABC123DEFG"
      team_id: "DEF123GHIJ"
      topic: "com.example.payments"
      host: "https://api.sandbox.push.apple.com"
    webpush:
      vapid_public_key: %q
      subscriber: "https://status.example.com/contact"
  webhook:
    allow_http: true
    allow_networks: ["127.0.0.1", "10.0.0.0/8"]
    timeout: 20s
    connect_timeout: 2s
    max_response_bytes: 1024
    rate: 50
    retry_span: 12h
    disable_after: 96h
    rotation_overlap: 0s
`, creds, p8, pub)
	c, err := Load(mustWriteFile(t, file), mapEnv(map[string]string{"TOCSIN_WEBPUSH_VAPID_PRIVATE_KEY": priv}))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := Default()
	want.Channels.Push = Push{
		FCM:     FCM{CredentialsFile: creds, ProjectID: "tocsin-file", Endpoint: "http://127.0.0.1:9001"},
		APNs:    APNs{KeyFile: p8, KeyID: "ABC123DEFG", TeamID: "DEF123GHIJ", Topic: "com.example.payments", Host: APNsHostDevelopment},
		WebPush: WebPush{VAPIDPublicKey: pub, VAPIDPrivateKey: Secret(priv), Subscriber: "https://status.example.com/contact"},
		Rate:    "500/s",
	}
	want.Channels.Webhook = Webhook{
		AllowHTTP:        true,
		AllowNetworks:    []string{"127.0.0.1", "10.0.0.0/8"},
		Timeout:          20 * time.Second,
		ConnectTimeout:   2 * time.Second,
		MaxResponseBytes: 1024,
		Rate:             50,
		RetrySpan:        12 * time.Hour,
		DisableAfter:     96 * time.Hour,
		RotationOverlap:  0,
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got  %#v\nwant %#v", c, want)
	}
	if !c.PushConfigured() {
		t.Error("PushConfigured() = false")
	}

	// The environment overrides every option.
	creds2, p82 := keyFiles(t)
	pub2, priv2 := vapidKeys(t)
	c, err = Load(mustWriteFile(t, file), mapEnv(map[string]string{
		"TOCSIN_FCM_CREDENTIALS_FILE":       creds2,
		"TOCSIN_FCM_PROJECT_ID":             "tocsin-env",
		"TOCSIN_FCM_ENDPOINT":               "https://fcm.example.com",
		"TOCSIN_APNS_KEY_FILE":              p82,
		"TOCSIN_APNS_KEY_ID":                "ZZZ123ZZZZ",
		"TOCSIN_APNS_TEAM_ID":               "YYY123YYYY",
		"TOCSIN_APNS_TOPIC":                 "com.example.other",
		"TOCSIN_APNS_HOST":                  "https://api.push.apple.com",
		"TOCSIN_WEBPUSH_VAPID_PUBLIC_KEY":   pub2,
		"TOCSIN_WEBPUSH_VAPID_PRIVATE_KEY":  priv2,
		"TOCSIN_WEBPUSH_SUBSCRIBER":         "mailto:push@example.com",
		"TOCSIN_WEBHOOK_ALLOW_HTTP":         "false",
		"TOCSIN_WEBHOOK_ALLOW_NETWORKS":     " 192.168.0.0/16 , ,fd00::/8 ",
		"TOCSIN_WEBHOOK_TIMEOUT":            "30s",
		"TOCSIN_WEBHOOK_CONNECT_TIMEOUT":    "30s",
		"TOCSIN_WEBHOOK_MAX_RESPONSE_BYTES": "1048576",
		"TOCSIN_WEBHOOK_RATE":               "1",
		"TOCSIN_WEBHOOK_RETRY_SPAN":         "1h",
		"TOCSIN_WEBHOOK_DISABLE_AFTER":      "2h",
		"TOCSIN_WEBHOOK_ROTATION_OVERLAP":   "720h",
	}))
	if err != nil {
		t.Fatalf("Load with env: %v", err)
	}
	want.Channels.Push = Push{
		FCM:     FCM{CredentialsFile: creds2, ProjectID: "tocsin-env", Endpoint: "https://fcm.example.com"},
		APNs:    APNs{KeyFile: p82, KeyID: "ZZZ123ZZZZ", TeamID: "YYY123YYYY", Topic: "com.example.other", Host: APNsHostProduction},
		WebPush: WebPush{VAPIDPublicKey: pub2, VAPIDPrivateKey: Secret(priv2), Subscriber: "mailto:push@example.com"},
		Rate:    "500/s",
	}
	want.Channels.Webhook = Webhook{
		AllowNetworks:    []string{"192.168.0.0/16", "fd00::/8"},
		Timeout:          30 * time.Second,
		ConnectTimeout:   30 * time.Second,
		MaxResponseBytes: 1 << 20,
		Rate:             1,
		RetrySpan:        time.Hour,
		DisableAfter:     2 * time.Hour,
		RotationOverlap:  720 * time.Hour,
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("with env: got  %#v\nwant %#v", c, want)
	}

	// An empty TOCSIN_WEBHOOK_ALLOW_NETWORKS clears the file's list.
	c, err = Load(mustWriteFile(t, file), mapEnv(map[string]string{
		"TOCSIN_WEBPUSH_VAPID_PRIVATE_KEY": priv,
		"TOCSIN_WEBHOOK_ALLOW_NETWORKS":    "",
	}))
	if err != nil || c.Channels.Webhook.AllowNetworks != nil {
		t.Errorf("TOCSIN_WEBHOOK_ALLOW_NETWORKS=\"\": %v, %v; want the list cleared", c.Channels.Webhook.AllowNetworks, err)
	}
}

func TestLoadPushProblems(t *testing.T) {
	t.Parallel()
	_, priv := vapidKeys(t)
	_, err := Load("", mapEnv(map[string]string{
		"TOCSIN_WEBHOOK_ALLOW_HTTP":         "yes",
		"TOCSIN_WEBHOOK_RATE":               "fast",
		"TOCSIN_WEBHOOK_RETRY_SPAN":         "1 day",
		"TOCSIN_APNS_TOPIC":                 "com.example.payments",
		"TOCSIN_WEBPUSH_VAPID_PRIVATE_KEY":  priv,
		"TOCSIN_WEBHOOK_MAX_RESPONSE_BYTES": "0",
	}))
	if err == nil {
		t.Fatal("Load succeeded, want problems")
	}
	want := []string{
		`TOCSIN_WEBHOOK_ALLOW_HTTP: must be true or false, got "yes"`,
		`TOCSIN_WEBHOOK_RATE: must be an integer, got "fast"`,
		`TOCSIN_WEBHOOK_RETRY_SPAN: must be a duration`,
		"TOCSIN_APNS_TOPIC: set channels.push.apns.key_file or remove channels.push.apns.topic (without key_file, APNs is off)",
		"channels.push.webpush.vapid_public_key: is required with channels.push.webpush.vapid_private_key",
		"channels.push.webpush.subscriber: is required with channels.push.webpush.vapid_private_key",
		"TOCSIN_WEBHOOK_MAX_RESPONSE_BYTES: must be between 1 and 1048576, got 0",
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not mention %q; got:\n%v", w, err)
		}
	}
	if got := problemCount(err); got != len(want) {
		t.Errorf("error joins %d problems, want %d:\n%v", got, len(want), err)
	}
	if strings.Contains(err.Error(), priv) {
		t.Errorf("error repeats the VAPID private key:\n%v", err)
	}
}

func TestValidatePush(t *testing.T) {
	t.Parallel()
	const (
		fc = "channels.push.fcm"
		ap = "channels.push.apns"
		wp = "channels.push.webpush"
		wh = "channels.webhook"
	)
	otherPub, _ := vapidKeys(t)
	dir := t.TempDir()
	tests := []struct {
		name   string
		mutate func(p *Push, w *Webhook)
		want   string // "" means valid
	}{
		{"configured", func(p *Push, w *Webhook) {}, ""},
		{"fcm file missing", func(p *Push, w *Webhook) { p.FCM.CredentialsFile = filepath.Join(dir, "nope.json") }, fc + `.credentials_file: "` + filepath.Join(dir, "nope.json") + `" does not exist; it must be the service-account key file`},
		{"fcm file is a directory", func(p *Push, w *Webhook) { p.FCM.CredentialsFile = dir }, fc + `.credentials_file: "` + dir + `" is not a file`},
		{"fcm project id default", func(p *Push, w *Webhook) { p.FCM.ProjectID = "" }, ""},
		{"fcm project id upper case", func(p *Push, w *Webhook) { p.FCM.ProjectID = "Tocsin-Prod" }, fc + `.project_id: must be a project id (6 to 30 lower-case letters, digits and hyphens, starting with a letter), got "Tocsin-Prod"`},
		{"fcm project id short", func(p *Push, w *Webhook) { p.FCM.ProjectID = "abc" }, fc + ".project_id: must be a project id"},
		{"fcm endpoint fake", func(p *Push, w *Webhook) { p.FCM.Endpoint = "http://127.0.0.1:9001" }, ""},
		{"fcm endpoint empty", func(p *Push, w *Webhook) { p.FCM.Endpoint = "" }, fc + ".endpoint: is required: an absolute http or https URL like https://fcm.googleapis.com"},
		{"fcm endpoint with query", func(p *Push, w *Webhook) { p.FCM.Endpoint = "https://fcm.googleapis.com/?k=v" }, fc + ".endpoint: must not have a query"},
		{"apns file missing", func(p *Push, w *Webhook) { p.APNs.KeyFile = filepath.Join(dir, "AuthKey.p8") }, ap + `.key_file: "` + filepath.Join(dir, "AuthKey.p8") + `" does not exist; it must be the APNs authentication key (.p8)`},
		{"apns key id lower case", func(p *Push, w *Webhook) { p.APNs.KeyID = "abc123defg" }, ap + `.key_id: must be the key's id, 10 upper-case letters and digits, got "abc123defg"`},
		{"apns team id missing", func(p *Push, w *Webhook) { p.APNs.TeamID = "" }, ap + `.team_id: must be the team's id`},
		{"apns topic missing", func(p *Push, w *Webhook) { p.APNs.Topic = "" }, ap + ".topic: is required with " + ap + ".key_file: the app's bundle id"},
		{"apns topic with space", func(p *Push, w *Webhook) { p.APNs.Topic = "com.example app" }, ap + `.topic: must be the app's bundle id, like com.example.app, got "com.example app"`},
		{"apns sandbox", func(p *Push, w *Webhook) { p.APNs.Host = APNsHostDevelopment }, ""},
		{"apns fake", func(p *Push, w *Webhook) { p.APNs.Host = "https://127.0.0.1:8443" }, ""},
		{"apns http", func(p *Push, w *Webhook) { p.APNs.Host = "http://api.push.apple.com" }, ap + ".host: must be an https URL without path, like https://api.push.apple.com or https://api.sandbox.push.apple.com"},
		{"apns host with path", func(p *Push, w *Webhook) { p.APNs.Host = "https://api.push.apple.com/3/device" }, ap + ".host: must be an https URL without path"},
		{"apns host empty", func(p *Push, w *Webhook) { p.APNs.Host = "" }, ap + ".host: must be an https URL"},
		{"vapid padded", func(p *Push, w *Webhook) {
			p.WebPush.VAPIDPublicKey += "="
			p.WebPush.VAPIDPrivateKey += "="
		}, ""},
		{"vapid public key missing", func(p *Push, w *Webhook) { p.WebPush.VAPIDPublicKey = "" }, wp + ".vapid_public_key: is required with " + wp + ".vapid_private_key"},
		{"vapid public key not a point", func(p *Push, w *Webhook) { p.WebPush.VAPIDPublicKey = "BAAA" }, wp + ".vapid_public_key: must be an uncompressed P-256 public key"},
		{"vapid public key of another pair", func(p *Push, w *Webhook) { p.WebPush.VAPIDPublicKey = otherPub }, wp + ".vapid_public_key: is not the public key of " + wp + ".vapid_private_key"},
		{"vapid private key not base64url", func(p *Push, w *Webhook) { p.WebPush.VAPIDPrivateKey = "+/" + p.WebPush.VAPIDPrivateKey[2:] }, wp + ".vapid_private_key: must be a P-256 private key: 32 bytes in base64url"},
		{"vapid private key short", func(p *Push, w *Webhook) { p.WebPush.VAPIDPrivateKey = p.WebPush.VAPIDPrivateKey[:20] }, wp + ".vapid_private_key: must be a P-256 private key"},
		{"subscriber https", func(p *Push, w *Webhook) { p.WebPush.Subscriber = "https://status.example.com" }, ""},
		{"subscriber bare address", func(p *Push, w *Webhook) { p.WebPush.Subscriber = "ops@example.com" }, wp + `.subscriber: must start with mailto: or https://, like mailto:ops@example.com, got "ops@example.com"`},
		{"subscriber mailto with name", func(p *Push, w *Webhook) { p.WebPush.Subscriber = "mailto:Ops <ops@example.com>" }, wp + ".subscriber: must be mailto: and an address"},
		{"subscriber https without host", func(p *Push, w *Webhook) { p.WebPush.Subscriber = "https://" }, wp + ".subscriber: must be an https URL with a host"},

		{"allow networks", func(p *Push, w *Webhook) { w.AllowNetworks = []string{"127.0.0.1", "::1", "10.0.0.0/8", "fd00::/8"} }, ""},
		{"allow networks bad", func(p *Push, w *Webhook) { w.AllowNetworks = []string{"10.0.0.0/8", "localhost"} }, wh + `.allow_networks[1]: must be a CIDR prefix like 10.0.0.0/8 or fd00::/8, or an IP address, got "localhost"`},
		{"allow networks bad prefix", func(p *Push, w *Webhook) { w.AllowNetworks = []string{"10.0.0.0/33"} }, wh + ".allow_networks[0]: must be a CIDR prefix"},
		{"webhook timeout 0", func(p *Push, w *Webhook) { w.Timeout = 0 }, wh + ".timeout: must be greater than 0, got 0s"},
		{"connect timeout 0", func(p *Push, w *Webhook) { w.ConnectTimeout = 0 }, wh + ".connect_timeout: must be greater than 0, got 0s"},
		{"connect timeout above timeout", func(p *Push, w *Webhook) { w.ConnectTimeout = 11 * time.Second }, wh + ".connect_timeout: must not exceed " + wh + ".timeout (10s), got 11s"},
		{"max response bytes too big", func(p *Push, w *Webhook) { w.MaxResponseBytes = 1<<20 + 1 }, wh + ".max_response_bytes: must be between 1 and 1048576, got 1048577"},
		{"rate 0", func(p *Push, w *Webhook) { w.Rate = 0 }, wh + ".rate: must be between 1 and 10000, got 0"},
		{"retry span negative", func(p *Push, w *Webhook) { w.RetrySpan = -time.Hour }, wh + ".retry_span: must be greater than 0, got -1h0m0s"},
		{"disable after 0", func(p *Push, w *Webhook) { w.DisableAfter = 0 }, wh + ".disable_after: must be greater than 0, got 0s"},
		{"rotation overlap 0", func(p *Push, w *Webhook) { w.RotationOverlap = 0 }, ""},
		{"rotation overlap too long", func(p *Push, w *Webhook) { w.RotationOverlap = 721 * time.Hour }, wh + ".rotation_overlap: must be between 0s and 720h, got 721h0m0s"},
		{"rotation overlap negative", func(p *Push, w *Webhook) { w.RotationOverlap = -time.Second }, wh + ".rotation_overlap: must be between 0s and 720h"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, priv := configuredPush(t)
			tt.mutate(&c.Channels.Push, &c.Channels.Webhook)
			err := c.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate() = %q, want it to contain %q", err, tt.want)
			}
			if n := problemCount(err); n != 1 {
				t.Errorf("Validate() joins %d problems, want 1: %v", n, err)
			}
			for _, secret := range []string{priv, c.Channels.Push.WebPush.VAPIDPrivateKey.Reveal()} {
				if len(secret) > 8 && strings.Contains(err.Error(), secret) {
					t.Errorf("Validate() repeats the VAPID private key: %v", err)
				}
			}
		})
	}
}

func TestValidatePushOrphans(t *testing.T) {
	t.Parallel()
	pub, _ := vapidKeys(t)
	c := Default()
	c.Channels.Push = Push{
		FCM:     FCM{ProjectID: "tocsin-prod", Endpoint: "http://127.0.0.1:9001"},
		APNs:    APNs{KeyID: "ABC123DEFG", TeamID: "DEF123GHIJ", Topic: "com.example.payments", Host: APNsHostDevelopment},
		WebPush: WebPush{VAPIDPublicKey: pub, Subscriber: "mailto:ops@example.com"},
		Rate:    "500/s",
	}
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate() = nil, want every option set without its provider reported")
	}
	var want []string
	for _, f := range []string{"project_id", "endpoint"} {
		want = append(want, fmt.Sprintf("channels.push.fcm.%s: set channels.push.fcm.credentials_file or remove channels.push.fcm.%s (without credentials_file, FCM is off)", f, f))
	}
	for _, f := range []string{"key_id", "team_id", "topic", "host"} {
		want = append(want, fmt.Sprintf("channels.push.apns.%s: set channels.push.apns.key_file or remove channels.push.apns.%s (without key_file, APNs is off)", f, f))
	}
	for _, f := range []string{"vapid_public_key", "subscriber"} {
		want = append(want, fmt.Sprintf("channels.push.webpush.%s: set channels.push.webpush.vapid_private_key or remove channels.push.webpush.%s (without vapid_private_key, Web Push is off)", f, f))
	}
	if got := strings.Split(err.Error(), "\n"); !reflect.DeepEqual(got, want) {
		t.Errorf("Validate() =\n%s\nwant\n%s", err, strings.Join(want, "\n"))
	}
}

func TestPushRedaction(t *testing.T) {
	t.Parallel()
	c, priv := configuredPush(t)
	c.Channels.Webhook.AllowNetworks = []string{"127.0.0.1"}
	var jsonLog, textLog bytes.Buffer
	slog.New(slog.NewJSONHandler(&jsonLog, nil)).Info("starting", "config", c)
	slog.New(slog.NewTextHandler(&textLog, nil)).Info("starting", "webpush", c.Channels.Push.WebPush)
	for name, s := range map[string]string{
		"String":            c.String(),
		"%+v":               fmt.Sprintf("%+v", c),
		"%#v":               fmt.Sprintf("%#v", c),
		"%+v of Channels":   fmt.Sprintf("%+v", c.Channels),
		"%#v of Push":       fmt.Sprintf("%#v", c.Channels.Push),
		"%v of WebPush":     fmt.Sprintf("%v", c.Channels.Push.WebPush),
		"%#v of WebPush":    fmt.Sprintf("%#v", c.Channels.Push.WebPush),
		"slog JSON handler": jsonLog.String(),
		"slog text handler": textLog.String(),
	} {
		if strings.Contains(s, priv) {
			t.Errorf("%s prints the VAPID private key:\n%s", name, s)
		}
		if !strings.Contains(s, "[redacted]") {
			t.Errorf("%s does not show [redacted]:\n%s", name, s)
		}
	}
	for _, want := range []string{
		`"push":{"configured":true,"fcm":{"configured":true,"credentials_file":"` + c.Channels.Push.FCM.CredentialsFile + `"`,
		`"apns":{"configured":true,"key_file":"` + c.Channels.Push.APNs.KeyFile + `","key_id":"ABC123DEFG","team_id":"DEF123GHIJ","topic":"com.example.payments"`,
		`"vapid_private_key":"[redacted]","subscriber":"mailto:ops@example.com"`,
		`"webhook":{"allow_http":false,"allow_networks":"127.0.0.1","timeout":10000000000`,
	} {
		if !strings.Contains(jsonLog.String(), want) {
			t.Errorf("slog output lacks %s:\n%s", want, jsonLog.String())
		}
	}
}
