package config

import (
	"bytes"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Test credentials: well-formed, fake, and distinct from one another so a
// leak of one is never mistaken for another.
const (
	testAccountSID          = "AC0123456789abcdef0123456789abcdef"
	testAPIKeySID           = "SKfedcba9876543210fedcba9876543210"
	testMessagingServiceSID = "MG00112233445566778899aabbccddeeff"
	testAuthToken           = "9e107d9d372bb6826bd81d3542a419d6"
	testAPISecret           = "apiSecretT0ps3cr3tZx81Qw"
	testSMTPPassword        = "smtp-pa55word-Kq93Lm"
	testLinkSecret          = "link-secret-Vb27Nc-0123456789-abcdef"
)

var testSecrets = []string{testAuthToken, testAPISecret, testSMTPPassword, testLinkSecret}

// configuredChannels returns a valid config with both providers configured
// (Twilio with the auth token and a From number, SMTP with credentials) and
// a link secret.
func configuredChannels() Config {
	c := Default()
	c.Auth.LinkSecret = testLinkSecret
	c.Channels.SMS.Twilio.AccountSID = testAccountSID
	c.Channels.SMS.Twilio.AuthToken = testAuthToken
	c.Channels.SMS.Twilio.From = "+14155550100"
	c.Channels.Email.SMTP.Host = "smtp.example.com"
	c.Channels.Email.SMTP.Username = "tocsin"
	c.Channels.Email.SMTP.Password = testSMTPPassword
	c.Channels.Email.SMTP.From = "Tocsin <alerts@example.com>"
	return c
}

// assertNoSecret fails when s contains any of the test secrets.
func assertNoSecret(t *testing.T, what, s string) {
	t.Helper()
	for _, secret := range testSecrets {
		if strings.Contains(s, secret) {
			t.Errorf("%s contains secret %q:\n%s", what, secret, s)
		}
	}
}

func TestConfigured(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name             string
		mutate           func(c *Config)
		wantSMS, wantEml bool
	}{
		{"defaults", func(c *Config) {}, false, false},
		{"account sid", func(c *Config) { c.Channels.SMS.Twilio.AccountSID = testAccountSID }, true, false},
		{"smtp host", func(c *Config) { c.Channels.Email.SMTP.Host = "smtp.example.com" }, false, true},
		{"other twilio options alone", func(c *Config) {
			c.Channels.SMS.Twilio.AuthToken = testAuthToken
			c.Channels.SMS.Twilio.From = "+14155550100"
		}, false, false},
		{"other smtp options alone", func(c *Config) {
			c.Channels.Email.SMTP.From = "alerts@example.com"
			c.Channels.Email.SMTP.Username = "tocsin"
		}, false, false},
		{"both", func(c *Config) {
			c.Channels.SMS.Twilio.AccountSID = testAccountSID
			c.Channels.Email.SMTP.Host = "smtp.example.com"
		}, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := Default()
			tt.mutate(&c)
			if got := c.SMSConfigured(); got != tt.wantSMS {
				t.Errorf("SMSConfigured() = %v, want %v", got, tt.wantSMS)
			}
			if got := c.EmailConfigured(); got != tt.wantEml {
				t.Errorf("EmailConfigured() = %v, want %v", got, tt.wantEml)
			}
		})
	}
}

func TestLoadChannelsFile(t *testing.T) {
	t.Parallel()
	path := mustWriteFile(t, `
http:
  public_url: "https://status.example.com"
auth:
  link_secret: "`+testLinkSecret+`"
channels:
  sms:
    twilio:
      account_sid: "`+testAccountSID+`"
      auth_token: "`+testAuthToken+`"
      api_key: "`+testAPIKeySID+`"
      api_secret: "`+testAPISecret+`"
      messaging_service_sid: "`+testMessagingServiceSID+`"
      base_url: "https://api.dublin.ie1.twilio.com"
      timeout: 5s
      validity_period: 1h
      max_in_flight: 200
  email:
    smtp:
      host: "smtp.example.com"
      port: 465
      username: "tocsin@example.com"
      password: "`+testSMTPPassword+`"
      tls: implicit
      from: "Example Status <status@example.com>"
      pool_size: 8
      timeout: 30s
`)
	c, err := Load(path, nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := Default()
	want.HTTP.PublicURL = "https://status.example.com"
	want.Auth.LinkSecret = testLinkSecret
	want.Channels = Channels{
		SMS: SMS{Twilio: Twilio{
			AccountSID:          testAccountSID,
			AuthToken:           testAuthToken,
			APIKey:              testAPIKeySID,
			APISecret:           testAPISecret,
			MessagingServiceSID: testMessagingServiceSID,
			BaseURL:             "https://api.dublin.ie1.twilio.com",
			Timeout:             5 * time.Second,
			ValidityPeriod:      time.Hour,
			MaxConcurrency:      200,
		}, MaxSegments: 2},
		Email: Email{SMTP: SMTP{
			Host:     "smtp.example.com",
			Port:     465,
			Username: "tocsin@example.com",
			Password: testSMTPPassword,
			TLS:      SMTPTLSImplicit,
			From:     "Example Status <status@example.com>",
			PoolSize: 8,
			Timeout:  30 * time.Second,
		}},
		Push:    Default().Channels.Push,
		Webhook: Default().Channels.Webhook,
	}
	want.Channels.SMS.Rate = Default().Channels.SMS.Rate
	want.Channels.Email.Rate = Default().Channels.Email.Rate
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got  %#v\nwant %#v", c, want)
	}
	if !c.SMSConfigured() || !c.EmailConfigured() {
		t.Errorf("SMSConfigured() = %v, EmailConfigured() = %v; want both true", c.SMSConfigured(), c.EmailConfigured())
	}
}

func TestLoadChannelsFromEnv(t *testing.T) {
	t.Parallel()
	// The file configures SMS with From and email without credentials;
	// the environment overrides every channel option and the link secret.
	file := `
auth:
  link_secret: "file-link-secret-0123456789abcdefghij"
channels:
  sms:
    twilio:
      account_sid: "AC00000000000000000000000000000000"
      auth_token: "fileAuthToken0"
      from: "+14155550100"
  email:
    smtp:
      host: "file.example.com"
      from: "file@example.com"
`
	env := map[string]string{
		"TOCSIN_LINK_SECRET":                  testLinkSecret,
		"TOCSIN_TWILIO_ACCOUNT_SID":           testAccountSID,
		"TOCSIN_TWILIO_AUTH_TOKEN":            testAuthToken,
		"TOCSIN_TWILIO_API_KEY":               testAPIKeySID,
		"TOCSIN_TWILIO_API_SECRET":            testAPISecret,
		"TOCSIN_TWILIO_FROM":                  "", // set but empty: clears the file's from
		"TOCSIN_TWILIO_MESSAGING_SERVICE_SID": testMessagingServiceSID,
		"TOCSIN_TWILIO_BASE_URL":              "http://127.0.0.1:8999",
		"TOCSIN_TWILIO_TIMEOUT":               "2s",
		"TOCSIN_TWILIO_VALIDITY_PERIOD":       "10h",
		"TOCSIN_TWILIO_MAX_IN_FLIGHT":         "300",
		"TOCSIN_SMTP_HOST":                    "localhost",
		"TOCSIN_SMTP_PORT":                    " 2525 ",
		"TOCSIN_SMTP_USERNAME":                "relay-user",
		"TOCSIN_SMTP_PASSWORD":                testSMTPPassword,
		"TOCSIN_SMTP_TLS":                     "none",
		"TOCSIN_SMTP_FROM":                    "Tocsin <alerts@example.com>",
		"TOCSIN_SMTP_POOL_SIZE":               "64",
		"TOCSIN_SMTP_TIMEOUT":                 "1m",
	}
	c, err := Load(mustWriteFile(t, file), mapEnv(env))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := Default()
	want.Auth.LinkSecret = testLinkSecret
	want.Channels = Channels{
		SMS: SMS{Twilio: Twilio{
			AccountSID:          testAccountSID,
			AuthToken:           testAuthToken,
			APIKey:              testAPIKeySID,
			APISecret:           testAPISecret,
			MessagingServiceSID: testMessagingServiceSID,
			BaseURL:             "http://127.0.0.1:8999",
			Timeout:             2 * time.Second,
			ValidityPeriod:      10 * time.Hour,
			MaxConcurrency:      300,
		}, MaxSegments: 2},
		Email: Email{SMTP: SMTP{
			Host:     "localhost",
			Port:     2525,
			Username: "relay-user",
			Password: testSMTPPassword,
			TLS:      SMTPTLSNone,
			From:     "Tocsin <alerts@example.com>",
			PoolSize: 64,
			Timeout:  time.Minute,
		}},
		Push:    Default().Channels.Push,
		Webhook: Default().Channels.Webhook,
	}
	want.Channels.SMS.Rate = Default().Channels.SMS.Rate
	want.Channels.Email.Rate = Default().Channels.Email.Rate
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got  %#v\nwant %#v", c, want)
	}

	// TOCSIN_TWILIO_FROM with a value, and clearing the host turns email off.
	c, err = Load(mustWriteFile(t, file), mapEnv(map[string]string{
		"TOCSIN_TWILIO_FROM": "Tocsin",
		"TOCSIN_SMTP_HOST":   "",
		"TOCSIN_SMTP_FROM":   "",
	}))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if got := c.Channels.SMS.Twilio.From; got != "Tocsin" {
		t.Errorf("channels.sms.twilio.from = %q, want Tocsin from TOCSIN_TWILIO_FROM", got)
	}
	if c.EmailConfigured() {
		t.Errorf("EmailConfigured() = true after TOCSIN_SMTP_HOST=\"\"")
	}
}

func TestLoadChannelProblems(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		file string
		env  map[string]string
		want []string
	}{
		{
			name: "malformed env values",
			env: map[string]string{
				"TOCSIN_SMTP_PORT":              "smtp",
				"TOCSIN_SMTP_POOL_SIZE":         "",
				"TOCSIN_TWILIO_TIMEOUT":         "10",
				"TOCSIN_TWILIO_VALIDITY_PERIOD": "1 hour",
				"TOCSIN_SMTP_TIMEOUT":           "x",
			},
			want: []string{
				`TOCSIN_SMTP_PORT: must be an integer, got "smtp"`,
				`TOCSIN_SMTP_POOL_SIZE: must be an integer`,
				`TOCSIN_TWILIO_TIMEOUT: must be a duration`,
				`TOCSIN_TWILIO_VALIDITY_PERIOD: must be a duration`,
				`TOCSIN_SMTP_TIMEOUT: must be a duration`,
			},
		},
		{
			name: "unknown fields name their section",
			file: "channels:\n  sms:\n    twilio:\n      sid: x\n  email:\n    smtp:\n      starttls: true\n  pager: {}\n" +
				"  push:\n    fcm:\n      key: x\n    apns:\n      p8: x\n    webpush:\n      vapid: x\n    hms: {}\n  webhook:\n      allow_https: true\n",
			want: []string{
				`line 4: unknown field "sid" in channels.sms.twilio`,
				`line 7: unknown field "starttls" in channels.email.smtp`,
				`line 8: unknown field "pager" in channels`,
				`line 11: unknown field "key" in channels.push.fcm`,
				`line 13: unknown field "p8" in channels.push.apns`,
				`line 15: unknown field "vapid" in channels.push.webpush`,
				`line 16: unknown field "hms" in channels.push`,
				`line 18: unknown field "allow_https" in channels.webhook`,
			},
		},
		{
			name: "env completes a provider the file leaves unconfigured",
			file: "channels:\n  sms:\n    twilio:\n      from: \"+14155550100\"\n",
			env:  map[string]string{"TOCSIN_TWILIO_AUTH_TOKEN": testAuthToken},
			want: []string{
				"TOCSIN_TWILIO_AUTH_TOKEN: set channels.sms.twilio.account_sid or remove channels.sms.twilio.auth_token",
				"channels.sms.twilio.from: set channels.sms.twilio.account_sid or remove channels.sms.twilio.from",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := ""
			if tt.file != "" {
				path = mustWriteFile(t, tt.file)
			}
			_, err := Load(path, mapEnv(tt.env))
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q; got:\n%v", w, err)
				}
			}
			if got := problemCount(err); got != len(tt.want) {
				t.Errorf("error joins %d problems, want %d:\n%v", got, len(tt.want), err)
			}
			assertNoSecret(t, "error", err.Error())
		})
	}
}

func TestValidateChannels(t *testing.T) {
	t.Parallel()
	const (
		tw = "channels.sms.twilio"
		sm = "channels.email.smtp"
	)
	twilio := func(f func(t *Twilio)) func(c *Config) {
		return func(c *Config) { f(&c.Channels.SMS.Twilio) }
	}
	smtp := func(f func(s *SMTP)) func(c *Config) {
		return func(c *Config) { f(&c.Channels.Email.SMTP) }
	}
	messagingService := func(t *Twilio) {
		t.From = ""
		t.MessagingServiceSID = testMessagingServiceSID
	}
	tests := []struct {
		name   string
		mutate func(c *Config)
		want   string // "" means valid
	}{
		{"configured", func(c *Config) {}, ""},

		{"link secret 32 characters", func(c *Config) { c.Auth.LinkSecret = Secret(strings.Repeat("x", 32)) }, ""},
		{"link secret 31 characters", func(c *Config) { c.Auth.LinkSecret = Secret(strings.Repeat("x", 31)) }, "auth.link_secret: must be at least 32 characters"},
		{"link secret empty: generated", func(c *Config) { c.Auth.LinkSecret = "" }, ""},

		{"account sid upper-case hex", twilio(func(t *Twilio) { t.AccountSID = "AC" + strings.Repeat("ABCDEF01", 4) }), ""},
		{"account sid lower-case prefix", twilio(func(t *Twilio) { t.AccountSID = "ac" + testAccountSID[2:] }), tw + ".account_sid: must be AC followed by 32 hexadecimal characters"},
		{"account sid short", twilio(func(t *Twilio) { t.AccountSID = testAccountSID[:33] }), tw + ".account_sid: must be AC followed by 32"},
		{"account sid not hex", twilio(func(t *Twilio) { t.AccountSID = "AC" + strings.Repeat("g", 32) }), tw + ".account_sid: must be AC followed by 32"},
		{"account sid is the auth token", twilio(func(t *Twilio) { t.AccountSID = testAuthToken }), tw + ".account_sid: must be AC followed by 32"},
		{"auth token missing", twilio(func(t *Twilio) { t.AuthToken = "" }), tw + ".auth_token: is required with " + tw + ".account_sid"},
		{"auth token missing with api key", twilio(func(t *Twilio) {
			t.AuthToken = ""
			t.APIKey, t.APISecret = testAPIKeySID, testAPISecret
		}), tw + ".auth_token: is required with " + tw + ".account_sid: it also validates the signatures"},
		{"auth token any letters and digits", twilio(func(t *Twilio) { t.AuthToken = "NotHexButAccepted0" }), ""},
		{"auth token with punctuation", twilio(func(t *Twilio) { t.AuthToken = "abc-def_123" }), tw + ".auth_token: must be letters and digits only"},
		{"auth token trailing newline", twilio(func(t *Twilio) { t.AuthToken = testAuthToken + "\n" }), tw + ".auth_token: must be letters and digits only (check for a stray space or newline)"},
		{"auth token with punctuation beside an api key", twilio(func(t *Twilio) {
			t.AuthToken = "abc-def_123"
			t.APIKey, t.APISecret = testAPIKeySID, testAPISecret
		}), tw + ".auth_token: must be letters and digits only"},
		{"api key and secret", twilio(func(t *Twilio) { t.APIKey, t.APISecret = testAPIKeySID, testAPISecret }), ""},
		{"api key without secret", twilio(func(t *Twilio) { t.APIKey = testAPIKeySID }), tw + ".api_secret: is required with " + tw + ".api_key"},
		{"api key malformed", twilio(func(t *Twilio) { t.APIKey, t.APISecret = "SK123", testAPISecret }), tw + ".api_key: must be SK followed by 32 hexadecimal characters"},
		{"api key is an account sid", twilio(func(t *Twilio) { t.APIKey, t.APISecret = testAccountSID, testAPISecret }), tw + ".api_key: must be SK followed by 32"},
		{"api secret without key", twilio(func(t *Twilio) { t.APISecret = testAPISecret }), tw + ".api_secret: set " + tw + ".api_key or remove " + tw + ".api_secret"},
		{"api secret with a space", twilio(func(t *Twilio) { t.APIKey, t.APISecret = testAPIKeySID, " "+testAPISecret }), tw + ".api_secret: must be letters and digits only (check for a stray space or newline)"},

		{"messaging service", twilio(messagingService), ""},
		{"messaging service malformed", twilio(func(t *Twilio) {
			messagingService(t)
			t.MessagingServiceSID = "MG" + testAccountSID[2:33]
		}), tw + ".messaging_service_sid: must be MG followed by 32 hexadecimal characters"},
		{"from and messaging service", twilio(func(t *Twilio) { t.MessagingServiceSID = testMessagingServiceSID }), tw + ": must set exactly one of " + tw + ".from and " + tw + ".messaging_service_sid, not both"},
		{"neither from nor messaging service", twilio(func(t *Twilio) { t.From = "" }), tw + ": must set exactly one of " + tw + ".from and " + tw + ".messaging_service_sid, got neither"},
		{"from e164 short", twilio(func(t *Twilio) { t.From = "+44" }), ""},
		{"from e164 15 digits", twilio(func(t *Twilio) { t.From = "+123456789012345" }), ""},
		{"from e164 16 digits", twilio(func(t *Twilio) { t.From = "+1234567890123456" }), tw + ".from: must be an E.164 number like +14155550100, a short code (3 to 8 digits) or an alphanumeric sender ID"},
		{"from e164 leading zero", twilio(func(t *Twilio) { t.From = "+04155550100" }), tw + ".from: must be an E.164 number"},
		{"from e164 with spaces", twilio(func(t *Twilio) { t.From = "+1 415 555 0100" }), tw + ".from: must be an E.164 number"},
		{"from without plus", twilio(func(t *Twilio) { t.From = "4915112345678" }), tw + ".from: must be an E.164 number"},
		{"from alphanumeric", twilio(func(t *Twilio) { t.From = "Tocsin" }), ""},
		{"from alphanumeric 11 with space and digit", twilio(func(t *Twilio) { t.From = "Shop 24 Ops" }), ""},
		{"from alphanumeric one letter", twilio(func(t *Twilio) { t.From = "A" }), ""},
		{"from alphanumeric 12", twilio(func(t *Twilio) { t.From = "ABCDEFGHIJKL" }), tw + ".from: must be an E.164 number"},
		{"from short code", twilio(func(t *Twilio) { t.From = "12345" }), ""},
		{"from digits only, too short for a short code", twilio(func(t *Twilio) { t.From = "12" }), tw + ".from: must be an E.164 number"},
		{"from digits only, too long for a short code", twilio(func(t *Twilio) { t.From = "123456789" }), tw + ".from: must be an E.164 number"},
		{"from alphanumeric non-ASCII", twilio(func(t *Twilio) { t.From = "Tocsín" }), tw + ".from: must be an E.164 number"},
		{"from alphanumeric punctuation", twilio(func(t *Twilio) { t.From = "Tocsin!" }), tw + ".from: must be an E.164 number"},
		{"from is not repeated", twilio(func(t *Twilio) { t.From = "+4479460000000000" }), tw + ".from: must be an E.164 number"},

		{"base url local fake", twilio(func(t *Twilio) { t.BaseURL = "http://127.0.0.1:8999" }), ""},
		{"base url trailing slash", twilio(func(t *Twilio) { t.BaseURL = "https://api.dublin.ie1.twilio.com/" }), ""},
		{"base url with path", twilio(func(t *Twilio) { t.BaseURL = "https://proxy.example.com/twilio/" }), tw + `.base_url: must be scheme and host only, without a path (requests keep their own), got "https://proxy.example.com/twilio/"`},
		{"base url empty: the default", twilio(func(t *Twilio) { t.BaseURL = "" }), ""},
		{"base url without scheme", twilio(func(t *Twilio) { t.BaseURL = "api.twilio.com" }), tw + `.base_url: must be an absolute http or https URL like https://api.twilio.com, got "api.twilio.com"`},
		{"base url with query", twilio(func(t *Twilio) { t.BaseURL = "https://api.twilio.com/?region=ie1" }), tw + ".base_url: must not have a query"},
		{"base url with credentials", twilio(func(t *Twilio) { t.BaseURL = "https://AC:" + testAuthToken + "@api.twilio.com" }), tw + ".base_url: must not contain credentials"},
		{"twilio timeout 0: the default", twilio(func(t *Twilio) { t.Timeout = 0 }), ""},
		{"twilio max_in_flight over 10000", twilio(func(t *Twilio) { t.MaxConcurrency = 10001 }), tw + ".max_in_flight: must be from 0 (1024) to 10000, got 10001"},
		{"twilio timeout negative", twilio(func(t *Twilio) { t.Timeout = -time.Second }), tw + ".timeout: must not be negative (0: 10s), got -1s"},

		{"validity 1s", twilio(func(t *Twilio) { messagingService(t); t.ValidityPeriod = time.Second }), ""},
		{"validity 10h", twilio(func(t *Twilio) { messagingService(t); t.ValidityPeriod = 10 * time.Hour }), ""},
		{"validity 10h1s", twilio(func(t *Twilio) { messagingService(t); t.ValidityPeriod = 10*time.Hour + time.Second }), tw + ".validity_period: must be from 0 (Twilio's default) to 10h (36000 s, Twilio's maximum), got 10h0m1s"},
		{"validity 500ms: rounded up", twilio(func(t *Twilio) { messagingService(t); t.ValidityPeriod = 500 * time.Millisecond }), ""},
		{"validity 1.5s: rounded up", twilio(func(t *Twilio) { messagingService(t); t.ValidityPeriod = 1500 * time.Millisecond }), ""},
		{"validity negative", twilio(func(t *Twilio) { messagingService(t); t.ValidityPeriod = -time.Minute }), tw + ".validity_period: must be from 0 (Twilio's default) to 10h"},
		{"validity with from", twilio(func(t *Twilio) { t.ValidityPeriod = time.Hour }), ""},

		{"smtp ipv4", smtp(func(s *SMTP) { s.Host = "192.0.2.25" }), ""},
		{"smtp ipv6", smtp(func(s *SMTP) { s.Host = "2001:db8::25" }), ""},
		{"smtp host with port", smtp(func(s *SMTP) { s.Host = "smtp.example.com:587" }), sm + ".host: must be a host name or IP address, without scheme, credentials or port (set " + sm + ".port)"},
		{"smtp host bracketed", smtp(func(s *SMTP) { s.Host = "[::1]" }), sm + ".host: must be a host name or IP address"},
		{"smtp host url", smtp(func(s *SMTP) { s.Host = "smtps://smtp.example.com" }), sm + ".host: must be a host name or IP address"},
		{"smtp host with credentials", smtp(func(s *SMTP) { s.Host = "tocsin:" + testSMTPPassword + "@smtp.example.com" }), sm + ".host: must be a host name or IP address"},
		{"smtp host with space", smtp(func(s *SMTP) { s.Host = "smtp.example.com " }), sm + ".host: must be a host name or IP address"},
		{"smtp port 465", smtp(func(s *SMTP) { s.Port = 465 }), ""},
		{"smtp port 0", smtp(func(s *SMTP) { s.Port = 0 }), sm + ".port: must be between 1 and 65535, got 0"},
		{"smtp port 65536", smtp(func(s *SMTP) { s.Port = 65536 }), sm + ".port: must be between 1 and 65535, got 65536"},
		{"smtp without auth", smtp(func(s *SMTP) { s.Username, s.Password = "", "" }), ""},
		{"smtp username without password", smtp(func(s *SMTP) { s.Password = "" }), sm + ".password: is required with " + sm + ".username"},
		{"smtp password without username", smtp(func(s *SMTP) { s.Username = "" }), sm + ".username: is required with " + sm + ".password"},
		{"smtp tls implicit", smtp(func(s *SMTP) { s.TLS = SMTPTLSImplicit }), ""},
		{"smtp tls empty", smtp(func(s *SMTP) { s.TLS = "" }), sm + ".tls: is required: must be starttls, implicit or none"},
		{"smtp tls unknown", smtp(func(s *SMTP) { s.TLS = "ssl" }), sm + `.tls: must be starttls, implicit or none, got "ssl"`},
		{"smtp tls none with credentials", smtp(func(s *SMTP) { s.TLS = SMTPTLSNone }), sm + ".tls: none would send the credentials in clear"},
		{"smtp tls none without credentials", smtp(func(s *SMTP) { s.TLS, s.Username, s.Password = SMTPTLSNone, "", "" }), ""},
		{"smtp tls none with credentials to localhost", smtp(func(s *SMTP) { s.TLS, s.Host = SMTPTLSNone, "localhost" }), ""},
		{"smtp tls none with credentials to LOCALHOST", smtp(func(s *SMTP) { s.TLS, s.Host = SMTPTLSNone, "LOCALHOST" }), ""},
		{"smtp tls none with credentials to 127.0.0.1", smtp(func(s *SMTP) { s.TLS, s.Host = SMTPTLSNone, "127.0.0.1" }), ""},
		{"smtp tls none with credentials to ::1", smtp(func(s *SMTP) { s.TLS, s.Host = SMTPTLSNone, "::1" }), ""},
		{"smtp tls none with credentials to a look-alike", smtp(func(s *SMTP) { s.TLS, s.Host = SMTPTLSNone, "localhost.example.com" }), sm + ".tls: none would send the credentials in clear"},
		{"smtp from bare address", smtp(func(s *SMTP) { s.From = "alerts@example.com" }), ""},
		{"smtp from missing", smtp(func(s *SMTP) { s.From = "" }), sm + `.from: is required with ` + sm + `.host: an address like "Tocsin <alerts@example.com>"`},
		{"smtp from not an address", smtp(func(s *SMTP) { s.From = "Tocsin alerts" }), sm + `.from: must be an address like "Tocsin <alerts@example.com>": mail:`},
		{"smtp from two addresses", smtp(func(s *SMTP) { s.From = "a@example.com, b@example.com" }), sm + ".from: must be an address like"},
		{"smtp pool 64", smtp(func(s *SMTP) { s.PoolSize = 64 }), ""},
		{"smtp pool 0", smtp(func(s *SMTP) { s.PoolSize = 0 }), sm + ".pool_size: must be between 1 and 64, got 0"},
		{"smtp pool 65", smtp(func(s *SMTP) { s.PoolSize = 65 }), sm + ".pool_size: must be between 1 and 64, got 65"},
		{"smtp timeout negative", smtp(func(s *SMTP) { s.Timeout = -time.Second }), sm + ".timeout: must be greater than 0, got -1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := configuredChannels()
			tt.mutate(&c)
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
			assertNoSecret(t, "Validate() error", err.Error())
			// SIDs may be secrets pasted into the wrong option, and from
			// may be a phone number: none is repeated.
			tw := c.Channels.SMS.Twilio
			for _, v := range []string{tw.AccountSID, tw.APIKey, tw.MessagingServiceSID, tw.From} {
				if v != "" && strings.Contains(err.Error(), v) {
					t.Errorf("Validate() error repeats %q: %v", v, err)
				}
			}
		})
	}
}

func TestValidateChannelOrphans(t *testing.T) {
	t.Parallel()
	c := Default()
	c.Channels.SMS.Twilio = Twilio{
		AuthToken:           testAuthToken,
		APIKey:              testAPIKeySID,
		APISecret:           testAPISecret,
		From:                "+14155550100",
		MessagingServiceSID: testMessagingServiceSID,
		BaseURL:             "http://127.0.0.1:8999",
		Timeout:             time.Second,
		ValidityPeriod:      time.Hour,
	}
	c.Channels.Email.SMTP = SMTP{
		Port:     25,
		Username: "tocsin",
		Password: testSMTPPassword,
		TLS:      SMTPTLSNone,
		From:     "alerts@example.com",
		PoolSize: 1,
		Timeout:  time.Second,
	}
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate() = nil, want every option set without its provider reported")
	}
	var want []string
	for _, f := range []string{"auth_token", "api_key", "api_secret", "from", "messaging_service_sid", "base_url", "timeout", "validity_period"} {
		want = append(want, fmt.Sprintf("channels.sms.twilio.%s: set channels.sms.twilio.account_sid or remove channels.sms.twilio.%s (without account_sid, the outbox serves SMS)", f, f))
	}
	for _, f := range []string{"port", "username", "password", "tls", "from", "pool_size", "timeout"} {
		want = append(want, fmt.Sprintf("channels.email.smtp.%s: set channels.email.smtp.host or remove channels.email.smtp.%s (without host, the outbox serves email)", f, f))
	}
	got := strings.Split(err.Error(), "\n")
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Validate() =\n%s\nwant\n%s", err, strings.Join(want, "\n"))
	}
	assertNoSecret(t, "Validate() error", err.Error())

	// Options at their defaults, or zero, are not "set".
	if err := Default().Validate(); err != nil {
		t.Errorf("Default().Validate() = %v", err)
	}
	// The webhook options and the rates have no off switch: a Config built
	// in code needs them (Default has them).
	c = Default()
	d := Default().Channels
	c.Channels = Channels{Webhook: d.Webhook, SMS: SMS{Rate: d.SMS.Rate}, Email: Email{Rate: d.Email.Rate}, Push: Push{Rate: d.Push.Rate}}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate() with zero providers = %v, want nil", err)
	}
}

func TestValidateReportsEveryChannelProblem(t *testing.T) {
	t.Parallel()
	c := configuredChannels()
	c.Auth.LinkSecret = "short"
	c.Channels.SMS.Twilio = Twilio{
		AccountSID:          "AC-not-a-sid",
		APISecret:           testAPISecret,
		From:                "+14155550100",
		MessagingServiceSID: testMessagingServiceSID,
		BaseURL:             "https://api.twilio.com?x=1",
		Timeout:             -time.Second,
		ValidityPeriod:      11 * time.Hour,
	}
	c.Channels.Email.SMTP.Port = 0
	c.Channels.Email.SMTP.TLS = SMTPTLSNone
	c.Channels.Email.SMTP.From = "not an address"
	c.Channels.Email.SMTP.PoolSize = 100

	err := c.Validate()
	if err == nil {
		t.Fatal("Validate() = nil, want every problem")
	}
	want := []string{
		"auth.link_secret: must be at least 32 characters",
		"channels.sms.twilio.account_sid: must be AC followed by 32 hexadecimal characters",
		"channels.sms.twilio.auth_token: is required",
		"channels.sms.twilio.api_secret: set channels.sms.twilio.api_key or remove channels.sms.twilio.api_secret",
		"channels.sms.twilio: must set exactly one of channels.sms.twilio.from and channels.sms.twilio.messaging_service_sid, not both",
		"channels.sms.twilio.base_url: must not have a query",
		"channels.sms.twilio.timeout: must not be negative (0: 10s), got -1s",
		"channels.sms.twilio.validity_period: must be from 0 (Twilio's default) to 10h",
		"channels.email.smtp.port: must be between 1 and 65535, got 0",
		"channels.email.smtp.tls: none would send the credentials in clear",
		"channels.email.smtp.from: must be an address like",
		"channels.email.smtp.pool_size: must be between 1 and 64, got 100",
	}
	msg := err.Error()
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("error does not mention %q; got:\n%s", w, msg)
		}
	}
	if got := problemCount(err); got != len(want) {
		t.Errorf("error joins %d problems, want %d:\n%s", got, len(want), msg)
	}
	assertNoSecret(t, "Validate() error", msg)
}

func TestChannelRedaction(t *testing.T) {
	t.Parallel()
	const redisPassword = "redis-password-Hh55"
	c := configuredChannels()
	c.Redis.Password = redisPassword
	c.Channels.SMS.Twilio.APIKey = testAPIKeySID
	c.Channels.SMS.Twilio.APISecret = testAPISecret

	var jsonLog, textLog bytes.Buffer
	slog.New(slog.NewJSONHandler(&jsonLog, nil)).Info("starting", "config", c)
	slog.New(slog.NewTextHandler(&textLog, nil)).Info("starting", "config", c, "twilio", c.Channels.SMS.Twilio)
	renderings := map[string]string{
		"String":            c.String(),
		"%v":                fmt.Sprintf("%v", c),
		"%+v":               fmt.Sprintf("%+v", c),
		"%#v":               fmt.Sprintf("%#v", c),
		"%+v of Channels":   fmt.Sprintf("%+v", c.Channels),
		"%#v of Channels":   fmt.Sprintf("%#v", c.Channels),
		"%v of Twilio":      fmt.Sprintf("%v", c.Channels.SMS.Twilio),
		"%#v of Twilio":     fmt.Sprintf("%#v", c.Channels.SMS.Twilio),
		"%v of SMTP":        fmt.Sprintf("%v", c.Channels.Email.SMTP),
		"%#v of SMTP":       fmt.Sprintf("%#v", c.Channels.Email.SMTP),
		"%+v of Auth":       fmt.Sprintf("%+v", c.Auth),
		"%#v of Auth":       fmt.Sprintf("%#v", c.Auth),
		"%#v of Redis":      fmt.Sprintf("%#v", c.Redis),
		"slog JSON handler": jsonLog.String(),
		"slog text handler": textLog.String(),
	}
	for name, s := range renderings {
		assertNoSecret(t, name, s)
		if strings.Contains(s, redisPassword) {
			t.Errorf("%s prints the Redis password:\n%s", name, s)
		}
		if !strings.Contains(s, "[redacted]") {
			t.Errorf("%s does not show [redacted]:\n%s", name, s)
		}
	}
	for _, want := range []string{
		`"link_secret":"[redacted]"`,
		`"twilio":{"configured":true,"account_sid":"` + testAccountSID + `","auth_token":"[redacted]","api_key":"` + testAPIKeySID + `","api_secret":"[redacted]"`,
		`"smtp":{"configured":true,"host":"smtp.example.com","port":587,"username":"tocsin","password":"[redacted]","tls":"starttls"`,
	} {
		if !strings.Contains(jsonLog.String(), want) {
			t.Errorf("slog output lacks %s:\n%s", want, jsonLog.String())
		}
	}
	for _, want := range []string{"auth_token: '[redacted]'", "password: '[redacted]'", "link_secret: '[redacted]'", "account_sid: " + testAccountSID} {
		if !strings.Contains(c.String(), want) {
			t.Errorf("String() lacks %q:\n%s", want, c.String())
		}
	}
}
