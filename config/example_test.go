package config_test

import (
	"fmt"

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
	// redis.db: must be between 0 and 255, got 256
	// log.level: must be debug, info, warn or error, got "loud"
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
