package config_test

import (
	"fmt"
	"time"

	"github.com/tocsin-dev/tocsin/config"
)

func ExampleLoad() {
	env := map[string]string{
		"TOCSIN_REDIS_ADDR": "redis:6379",
		"TOCSIN_REDIS_DB":   "256",
		"TOCSIN_LOG_LEVEL":  "loud",
		"TOCSIN_OUTBOX_CAP": "many",
	}
	_, err := config.Load("", func(name string) (string, bool) {
		v, ok := env[name]
		return v, ok
	})
	fmt.Println(err)
	// Output:
	// TOCSIN_OUTBOX_CAP: must be an integer, got "many"
	// TOCSIN_REDIS_DB: must be between 0 and 255, got 256
	// TOCSIN_LOG_LEVEL: must be debug, info, warn or error, got "loud"
}

func ExampleHTTP_BaseURL() {
	c := config.Default()
	fmt.Println(c.HTTP.BaseURL())
	c.HTTP.PublicURL = "https://status.example.com/"
	fmt.Println(c.HTTP.BaseURL())
	// Output:
	// http://localhost:8080
	// https://status.example.com
}

func ExampleConfig_Validate() {
	c := config.Default()
	c.Channels.SMS.Twilio.From = "+14155550100" // without account_sid
	c.Channels.Email.SMTP = config.SMTP{
		Host:     "smtp.example.com",
		Port:     587,
		Username: "tocsin",
		Password: "never printed",
		TLS:      config.SMTPTLSNone,
		From:     "Tocsin <alerts@example.com>",
		PoolSize: 4,
		Timeout:  15 * time.Second,
	}
	fmt.Println(c.SMSConfigured(), c.EmailConfigured())
	fmt.Println(c.Validate())
	// Output:
	// false true
	// channels.sms.twilio.from: set channels.sms.twilio.account_sid or remove channels.sms.twilio.from (without account_sid, the outbox serves SMS)
	// channels.email.smtp.tls: none would send the credentials in clear: use starttls or implicit (none with a username is allowed only for localhost, 127.0.0.1 or ::1)
}
