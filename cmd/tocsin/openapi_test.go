package main

import (
	"strconv"
	"testing"

	"github.com/tocsin-dev/tocsin/internal/redistest"
)

// TestServedDocument checks what serve wires into the OpenAPI document:
// the binary's version and http.public_url as its server.
func TestServedDocument(t *testing.T) {
	t.Parallel()
	_, opts := redistest.New(t)
	a := startApp(t, map[string]string{
		"TOCSIN_HTTP_ADDR": "127.0.0.1:0", "TOCSIN_REDIS_ADDR": opts.Addr, "TOCSIN_REDIS_DB": strconv.Itoa(opts.DB),
		"TOCSIN_API_KEY": "test-operator-key-openapi-0123456789", "TOCSIN_LOG_LEVEL": "warn",
		"TOCSIN_HTTP_PUBLIC_URL": "https://alerts.example.net/tocsin",
	})
	var doc struct {
		Info struct {
			Version string `json:"version"`
		} `json:"info"`
		Servers []struct {
			URL string `json:"url"`
		} `json:"servers"`
	}
	a.mustDo("GET", "/openapi.json", nil, &doc, 200)
	if doc.Info.Version != Version {
		t.Errorf("info.version = %q, want main.Version %q", doc.Info.Version, Version)
	}
	if len(doc.Servers) != 1 || doc.Servers[0].URL != "https://alerts.example.net/tocsin" {
		t.Errorf("servers = %+v, want http.public_url", doc.Servers)
	}
}
