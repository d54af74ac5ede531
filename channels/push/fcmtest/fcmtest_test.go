package fcmtest_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/jwt"

	"github.com/tocsin-dev/tocsin/channels/push/fcmtest"
)

// conf is the JWT bearer flow of s's service account, as a client builds it.
func conf(s *fcmtest.Server) *jwt.Config {
	return &jwt.Config{
		Email:        s.ClientEmail,
		PrivateKey:   s.PrivateKeyPEM(),
		PrivateKeyID: s.KeyID,
		Scopes:       []string{fcmtest.Scope},
		TokenURL:     s.TokenURI(),
	}
}

func token(t *testing.T, s *fcmtest.Server, c *jwt.Config) (*oauth2.Token, error) {
	t.Helper()
	ctx := context.WithValue(t.Context(), oauth2.HTTPClient, s.Client())
	return c.TokenSource(ctx).Token()
}

func TestTokenEndpointChecksTheAssertion(t *testing.T) {
	t.Parallel()
	s := fcmtest.New(t)
	if tok, err := token(t, s, conf(s)); err != nil || tok.AccessToken == "" || tok.TokenType != "Bearer" || time.Until(tok.Expiry) < 50*time.Minute {
		t.Fatalf("a good assertion: %+v, %v", tok, err)
	}
	other := fcmtest.New(t)
	bad := map[string]func(c *jwt.Config){
		"another key":    func(c *jwt.Config) { c.PrivateKey = other.PrivateKeyPEM() },
		"another kid":    func(c *jwt.Config) { c.PrivateKeyID = other.KeyID },
		"another issuer": func(c *jwt.Config) { c.Email = "someone@example.iam.gserviceaccount.com" },
		"another scope":  func(c *jwt.Config) { c.Scopes = []string{"https://www.googleapis.com/auth/cloud-platform.read-only"} },
		"another aud":    func(c *jwt.Config) { c.Audience = "https://oauth2.googleapis.com/token" },
		"too long":       func(c *jwt.Config) { c.Expires = 2 * time.Hour },
	}
	for name, mutate := range bad {
		c := conf(s)
		mutate(c)
		_, err := token(t, s, c)
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) || !strings.Contains(string(re.Body), "invalid_grant") {
			t.Errorf("%s: %v, want invalid_grant", name, err)
		}
	}
}

func send(t *testing.T, s *fcmtest.Server, bearer, project, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, s.URL+"/v1/projects/"+project+"/messages:send", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return resp.StatusCode, m
}

func TestSendChecksAuthAndSchema(t *testing.T) {
	t.Parallel()
	s := fcmtest.New(t)
	tok, err := token(t, s, conf(s))
	if err != nil {
		t.Fatal(err)
	}
	good := `{"message":{"token":"abc","notification":{"title":"T","body":"B"},"data":{"k":"v"},"android":{"priority":"high","ttl":"86400s"},"apns":{"headers":{"apns-priority":"10"}}}}`
	if st, m := send(t, s, tok.AccessToken, s.ProjectID, good); st != http.StatusOK || !strings.HasPrefix(m["name"].(string), "projects/tocsin-test/messages/") {
		t.Fatalf("a good message: %d %v", st, m)
	}
	tests := []struct {
		name, bearer, project, body string
		status                      int
	}{
		{"no token", "", s.ProjectID, good, http.StatusUnauthorized},
		{"forged token", "ya29.forged", s.ProjectID, good, http.StatusUnauthorized},
		{"another project", tok.AccessToken, "other", good, http.StatusNotFound},
		{"unknown field", tok.AccessToken, s.ProjectID, `{"message":{"token":"abc","colour":"red"}}`, http.StatusBadRequest},
		{"no target", tok.AccessToken, s.ProjectID, `{"message":{"notification":{"title":"T"}}}`, http.StatusBadRequest},
		{"number in data", tok.AccessToken, s.ProjectID, `{"message":{"token":"abc","data":{"seq":3}}}`, http.StatusBadRequest},
		{"reserved data key", tok.AccessToken, s.ProjectID, `{"message":{"token":"abc","data":{"from":"x"}}}`, http.StatusBadRequest},
		{"bad priority", tok.AccessToken, s.ProjectID, `{"message":{"token":"abc","android":{"priority":"urgent"}}}`, http.StatusBadRequest},
		{"bad ttl", tok.AccessToken, s.ProjectID, `{"message":{"token":"abc","android":{"ttl":"1d"}}}`, http.StatusBadRequest},
		{"bad apns priority", tok.AccessToken, s.ProjectID, `{"message":{"token":"abc","apns":{"headers":{"apns-priority":"7"}}}}`, http.StatusBadRequest},
		{"too big", tok.AccessToken, s.ProjectID, `{"message":{"token":"abc","notification":{"body":"` + strings.Repeat("x", 4097) + `"}}}`, http.StatusBadRequest},
	}
	for _, tt := range tests {
		if st, m := send(t, s, tt.bearer, tt.project, tt.body); st != tt.status || m["error"] == nil {
			t.Errorf("%s: %d %v, want %d with an error", tt.name, st, m, tt.status)
		}
	}
	s.MarkUnregistered("gone")
	st, m := send(t, s, tok.AccessToken, s.ProjectID, `{"message":{"token":"gone"}}`)
	details, _ := m["error"].(map[string]any)["details"].([]any)
	if st != http.StatusNotFound || len(details) != 1 || details[0].(map[string]any)["errorCode"] != "UNREGISTERED" {
		t.Errorf("an unregistered token: %d %v, want 404 with errorCode UNREGISTERED", st, m)
	}
	if n := len(s.Messages()); n != 1 {
		t.Errorf("%d messages accepted, want 1", n)
	}
}
