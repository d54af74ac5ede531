package push

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/jwt"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/internal/confcheck"
)

// FCM constants.
const (
	DefaultFCMEndpoint = "https://fcm.googleapis.com"
	// FCMScope is the OAuth 2.0 scope of FCM's send API.
	FCMScope = "https://www.googleapis.com/auth/firebase.messaging"
	// defaultTokenURI is Google's token endpoint, for a service-account
	// JSON without token_uri.
	defaultTokenURI = "https://oauth2.googleapis.com/token"
	// fcmPayloadLimit bounds notification and data together, below FCM's
	// 4096 bytes.
	fcmPayloadLimit = 4000
)

// FCMConfig configures Firebase Cloud Messaging HTTP v1.
//
// It is also the channels.push.fcm section of Tocsin's configuration file
// (package config): the yaml tags name the options, each read from
// TOCSIN_FCM_<OPTION> too; fields tagged "-" are set in code. FCM is on
// once CredentialsFile (in code, or CredentialsJSON) is set (Configured).
type FCMConfig struct {
	// CredentialsFile is the path of a service-account key file (JSON,
	// downloaded from the Firebase console: type "service_account",
	// project_id, private_key_id, private_key, client_email, token_uri) of
	// an account allowed to send (role "Firebase Cloud Messaging API
	// Admin"). Its token_uri is where access tokens are fetched (default
	// Google's). The file must exist; New reads it. Required unless
	// CredentialsJSON is set.
	CredentialsFile string `yaml:"credentials_file"`
	// ProjectID is the Firebase project messages are sent in: 6 to 30
	// lower-case letters, digits and hyphens, starting with a letter.
	// Default: the credentials' project_id.
	ProjectID string `yaml:"project_id"`
	// Endpoint is FCM's base URL, an absolute http(s) URL without query or
	// fragment; messages are posted to
	// {Endpoint}/v1/projects/{ProjectID}/messages:send. Tests point it at a
	// fake. Default "https://fcm.googleapis.com".
	Endpoint string `yaml:"endpoint"`
	// CredentialsJSON is the key file's content, for a program that holds
	// it rather than a file: it takes the place of CredentialsFile. Never
	// printed.
	CredentialsJSON []byte `yaml:"-"`
	// HTTPClient supplies the transport for sends and token requests; only
	// its Transport is used. Default: a transport of its own.
	HTTPClient *http.Client `yaml:"-"`
	// WrapTransportFunc, when set, wraps the transport of sends (not of
	// token requests), e.g. in tracing.Transport. Default: none.
	WrapTransportFunc func(http.RoundTripper) http.RoundTripper `yaml:"-"`

	// fromFile says CredentialsJSON was read from CredentialsFile (load):
	// problems with the credentials then name CredentialsFile.
	fromFile bool
}

// Configured reports whether FCM is on: CredentialsFile or CredentialsJSON
// is set.
func (c FCMConfig) Configured() bool { return c.CredentialsFile != "" || len(c.CredentialsJSON) > 0 }

// String describes c without the credentials.
func (c FCMConfig) String() string {
	return fmt.Sprintf("{CredentialsFile:%q CredentialsJSON:%s ProjectID:%q Endpoint:%q}", c.CredentialsFile, redact(c.CredentialsJSON), c.ProjectID, c.Endpoint)
}

// GoString is String, so %#v does not print the secret either.
func (c FCMConfig) GoString() string { return c.String() }

// LogValue logs c without the credentials.
func (c FCMConfig) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("credentials_file", c.CredentialsFile),
		slog.String("credentials_json", redact(c.CredentialsJSON)),
		slog.String("project_id", c.ProjectID),
		slog.String("endpoint", c.Endpoint),
	)
}

// Validate reports every problem of c at once, each a *confcheck.Problem
// naming the Go field, joined with errors.Join; nil when c is valid. New
// checks c with its defaults filled in and its file read: an empty
// Endpoint is a problem here, not there.
func (c FCMConfig) Validate() error { return c.ValidateNamed(nil) }

// ValidateNamed is Validate with the fields named by name, as
// WebPushConfig.ValidateNamed. It parses CredentialsJSON when set, and
// otherwise only checks that CredentialsFile is a file. The credentials
// are never quoted.
func (c FCMConfig) ValidateNamed(name func(field string) string) error {
	_, err := c.check(name)
	return err
}

// check is ValidateNamed, returning the parsed credentials too.
func (c FCMConfig) check(name func(string) string) (serviceAccount, error) {
	v := confcheck.New(name)
	var sa serviceAccount
	if len(c.CredentialsJSON) > 0 {
		var errs []error
		sa, errs = parseServiceAccount(c.CredentialsJSON)
		field := "CredentialsJSON"
		if c.fromFile {
			field = "CredentialsFile"
		}
		for _, e := range errs {
			v.Check(field, e)
		}
	} else {
		checkFile(v, "CredentialsFile", c.CredentialsFile, credentialsFileIs)
	}
	switch {
	case c.ProjectID != "" && !gcpProjectRE.MatchString(c.ProjectID):
		v.Add("ProjectID", "must be a project id (6 to 30 lower-case letters, digits and hyphens, starting with a letter), got %q", clip(c.ProjectID))
	case c.ProjectID == "" && len(c.CredentialsJSON) > 0 && sa.ProjectID == "":
		v.Add("ProjectID", "is required: the credentials name no project_id")
	case c.ProjectID == "" && sa.ProjectID != "" && !gcpProjectRE.MatchString(sa.ProjectID):
		v.Add("ProjectID", "must be set: the credentials' project_id is not a project id (6 to 30 lower-case letters, digits and hyphens, starting with a letter), got %q", clip(sa.ProjectID))
	}
	if c.Endpoint == "" {
		v.Add("Endpoint", "is required: an absolute http or https URL like %s", DefaultFCMEndpoint)
	} else {
		v.URL("Endpoint", c.Endpoint, DefaultFCMEndpoint)
	}
	return sa, v.Err()
}

// load fills in c's defaults and reads CredentialsFile into
// CredentialsJSON, when that is not set.
func (c FCMConfig) load() (FCMConfig, error) {
	c.Endpoint = cmp.Or(c.Endpoint, DefaultFCMEndpoint)
	if len(c.CredentialsJSON) > 0 || c.CredentialsFile == "" {
		return c, nil
	}
	b, err := readFile(c.CredentialsFile, credentialsFileIs)
	if err != nil {
		return c, &confcheck.Problem{Field: "CredentialsFile", Message: err.Error()}
	}
	c.CredentialsJSON, c.fromFile = b, true
	return c, nil
}

// credentialsFileIs says what FCMConfig.CredentialsFile must be.
const credentialsFileIs = "the service-account key file (JSON) from the Firebase console"

// gcpProjectRE is a Google Cloud (Firebase) project id.
var gcpProjectRE = regexp.MustCompile(`^[a-z][a-z0-9-]{4,28}[a-z0-9]$`)

// serviceAccount is the part of a service-account key file FCM needs.
type serviceAccount struct {
	Type         string `json:"type"`
	ProjectID    string `json:"project_id"`
	PrivateKeyID string `json:"private_key_id"`
	PrivateKey   string `json:"private_key"`
	ClientEmail  string `json:"client_email"`
	TokenURI     string `json:"token_uri"`
}

// parseServiceAccount checks a service-account key file. Its errors never
// quote the file: it holds the private key.
func parseServiceAccount(b []byte) (serviceAccount, []error) {
	var sa serviceAccount
	if err := json.Unmarshal(b, &sa); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return sa, []error{fmt.Errorf("is not JSON (syntax error at byte %d)", se.Offset)}
		}
		return sa, []error{errors.New("is not a service-account key file (a field has the wrong type)")}
	}
	var errs []error
	if sa.Type != "service_account" {
		errs = append(errs, fmt.Errorf("type is %q, want \"service_account\" (download a key of a service account, not OAuth client credentials)", clip(sa.Type)))
	}
	if sa.ClientEmail == "" {
		errs = append(errs, errors.New("client_email is missing"))
	}
	if err := checkRSAKey(sa.PrivateKey); err != nil {
		errs = append(errs, fmt.Errorf("private_key %w", err))
	}
	if sa.TokenURI == "" {
		sa.TokenURI = defaultTokenURI
	} else if err := confcheck.AbsoluteURL(sa.TokenURI, defaultTokenURI); err != nil {
		errs = append(errs, fmt.Errorf("token_uri %w", err))
	}
	return sa, errs
}

// checkRSAKey checks that key is an RSA private key in PEM (PKCS #8 or
// PKCS #1), without quoting it.
func checkRSAKey(key string) error {
	if key == "" {
		return errors.New("is missing")
	}
	block, _ := pem.Decode([]byte(key))
	if block == nil {
		return errors.New("is not PEM")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		if k1, err1 := x509.ParsePKCS1PrivateKey(block.Bytes); err1 == nil {
			k, err = k1, nil
		}
	}
	if err != nil {
		return errors.New("is not a PKCS #8 or PKCS #1 private key")
	}
	if _, ok := k.(*rsa.PrivateKey); !ok {
		return errors.New("is not an RSA key")
	}
	return nil
}

// fcm sends through FCM HTTP v1.
type fcm struct {
	sendURL string
	client  *http.Client
	timeout time.Duration
	auth    *fcmAuth
	now     func() time.Time
}

func newFCM(cfg FCMConfig, timeout time.Duration, concurrency int, now func() time.Time) (*fcm, error) {
	cfg, err := cfg.load()
	if err != nil {
		return nil, err
	}
	sa, err := cfg.check(nil)
	if err != nil {
		return nil, err
	}
	project := cmp.Or(cfg.ProjectID, sa.ProjectID)
	rt := baseTransport(cfg.HTTPClient, concurrency)
	tokenClient := &http.Client{Transport: rt, Timeout: timeout, CheckRedirect: noRedirect}
	return &fcm{
		sendURL: strings.TrimRight(cfg.Endpoint, "/") + "/v1/projects/" + project + "/messages:send",
		client:  &http.Client{Transport: wrapTransport(rt, cfg.WrapTransportFunc), CheckRedirect: noRedirect},
		timeout: timeout,
		auth: &fcmAuth{
			conf: &jwt.Config{
				Email:        sa.ClientEmail,
				PrivateKey:   []byte(sa.PrivateKey),
				PrivateKeyID: sa.PrivateKeyID,
				Scopes:       []string{FCMScope},
				TokenURL:     sa.TokenURI,
			},
			hctx: context.WithValue(context.Background(), oauth2.HTTPClient, tokenClient),
		},
		now: now,
	}, nil
}

// fcmAuth caches the service account's access token. A token request
// runs once however many sends wait for it, and a send whose context ends
// stops waiting at once (oauth2's own token sources cannot be cancelled).
type fcmAuth struct {
	conf *jwt.Config
	hctx context.Context // carries the token requests' HTTP client

	mu       sync.Mutex
	tok      *oauth2.Token
	inflight *tokenFetch
}

type tokenFetch struct {
	done chan struct{}
	tok  *oauth2.Token
	err  error
}

func (a *fcmAuth) token(ctx context.Context) (*oauth2.Token, error) {
	a.mu.Lock()
	if a.tok.Valid() {
		t := a.tok
		a.mu.Unlock()
		return t, nil
	}
	f := a.inflight
	if f == nil {
		f = &tokenFetch{done: make(chan struct{})}
		a.inflight = f
		go a.fetch(f)
	}
	a.mu.Unlock()
	select {
	case <-f.done:
		return f.tok, f.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// fetch requests a token; the token client's timeout bounds it.
func (a *fcmAuth) fetch(f *tokenFetch) {
	t, err := a.conf.TokenSource(a.hctx).Token()
	if err == nil && t.AccessToken == "" {
		t, err = nil, errors.New("the token endpoint answered no access_token")
	}
	a.mu.Lock()
	a.inflight = nil
	if err == nil {
		a.tok = t
	}
	a.mu.Unlock()
	f.tok, f.err = t, err
	close(f.done)
}

// invalidate drops t if it is still the cached token, so the next send
// fetches a new one.
func (a *fcmAuth) invalidate(t *oauth2.Token) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.tok == t {
		a.tok = nil
	}
}

// FCM's request body.
type (
	fcmRequest struct {
		Message fcmMessage `json:"message"`
	}
	fcmMessage struct {
		Token        string            `json:"token"`
		Notification fcmNotification   `json:"notification"`
		Data         map[string]string `json:"data,omitempty"`
		Android      fcmAndroid        `json:"android"`
		APNs         fcmAPNs           `json:"apns"`
	}
	fcmNotification struct {
		Title string `json:"title"`
		Body  string `json:"body"`
	}
	fcmAndroid struct {
		Priority    string `json:"priority"`
		CollapseKey string `json:"collapse_key,omitempty"`
		TTL         string `json:"ttl"`
	}
	fcmAPNs struct {
		Headers map[string]string `json:"headers"`
	}
)

func (f *fcm) body(n *notice, token string) []byte {
	dataSize := 0
	for k, v := range n.data {
		dataSize += len(k) + len(v)
	}
	title, body := fit(n.title, n.body, fcmPayloadLimit, func(t, b string) int { return len(t) + len(b) + dataSize })
	priority, apnsPriority := "normal", "5"
	if n.critical {
		priority, apnsPriority = "high", "10"
	}
	headers := map[string]string{
		"apns-priority":   apnsPriority,
		"apns-expiration": strconv.FormatInt(f.now().Add(Expiration).Unix(), 10),
	}
	if n.collapseID != "" {
		headers["apns-collapse-id"] = n.collapseID
	}
	return marshal(fcmRequest{Message: fcmMessage{
		Token:        token,
		Notification: fcmNotification{Title: title, Body: body},
		Data:         n.data,
		Android: fcmAndroid{
			Priority:    priority,
			CollapseKey: n.collapseID,
			TTL:         strconv.Itoa(int(Expiration/time.Second)) + "s",
		},
		APNs: fcmAPNs{Headers: headers},
	}})
}

func (f *fcm) deliver(ctx context.Context, n *notice, tok dispatcher.PushToken) outcome {
	rctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	t, err := f.auth.token(rctx)
	if err != nil {
		return outcome{err: f.tokenFailure(err, n.attempt)}
	}
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, f.sendURL, bytes.NewReader(f.body(n, tok.Token)))
	if err != nil {
		return outcome{err: dispatcher.Permanent("fcm:request", fmt.Errorf("push: fcm %s: %w", MaskToken(tok), err))}
	}
	req.Header.Set("Authorization", "Bearer "+t.AccessToken)
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	resp, err := f.client.Do(req)
	if err != nil {
		return outcome{err: dispatcher.Transient("", 0, fmt.Errorf("push: fcm %s: %s", MaskToken(tok), scrub(err.Error(), tok)))}
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode == http.StatusOK {
		// Accepted, even if the answer cannot be read: a retry would send
		// it twice.
		var ok struct {
			Name string `json:"name"`
		}
		_ = json.Unmarshal(raw, &ok)
		return outcome{id: ok.Name, status: resp.StatusCode}
	}
	return f.failure(resp.StatusCode, resp.Header, raw, n, tok, t)
}

// fcmError is FCM's error answer.
type fcmError struct {
	Error struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Status  string `json:"status"`
		Details []struct {
			Type            string `json:"@type"`
			ErrorCode       string `json:"errorCode"`
			FieldViolations []struct {
				Field       string `json:"field"`
				Description string `json:"description"`
			} `json:"fieldViolations"`
		} `json:"details"`
	} `json:"error"`
}

const fcmErrorType = "type.googleapis.com/google.firebase.fcm.v1.FcmError"

// failure classifies a non-200 answer.
func (f *fcm) failure(status int, h http.Header, raw []byte, n *notice, tok dispatcher.PushToken, t *oauth2.Token) outcome {
	var e fcmError
	_ = json.Unmarshal(raw, &e)
	errorCode := ""
	for _, d := range e.Error.Details {
		if d.Type == fcmErrorType && d.ErrorCode != "" {
			errorCode = d.ErrorCode
		}
	}
	name := cmp.Or(errorCode, e.Error.Status, "HTTP_"+strconv.Itoa(status))
	code := "fcm:" + name
	text := cmp.Or(e.Error.Message, http.StatusText(status))
	err := fmt.Errorf("push: fcm %s: HTTP %d %s: %s", MaskToken(tok), status, name, scrub(clip(text), tok))
	o := outcome{status: status}
	switch {
	case errorCode == "UNREGISTERED":
		o.dead, o.err = true, dispatcher.Permanent(code, err)
	case status == http.StatusBadRequest && name == "INVALID_ARGUMENT" && aboutToken(e):
		o.dead, o.err = true, dispatcher.Permanent(code, err)
	case status == http.StatusTooManyRequests || errorCode == "QUOTA_EXCEEDED":
		o.err = dispatcher.Throttled(code, dispatcher.RetryAfter(h, f.now(), defaultRateLimitDelay, maxRetryAfter), err)
	case status == http.StatusServiceUnavailable || errorCode == "UNAVAILABLE":
		o.err = dispatcher.Transient(code, dispatcher.RetryAfter(h, f.now(), defaultUnavailableDelay, maxRetryAfter), err)
	case status >= 500:
		o.err = dispatcher.Transient(code, dispatcher.RetryAfter(h, f.now(), 0, maxRetryAfter), err)
	case status == http.StatusUnauthorized,
		status == http.StatusForbidden && errorCode != "SENDER_ID_MISMATCH":
		f.auth.invalidate(t)
		o.err = authFailure(n.attempt, code, err)
	default:
		o.err = dispatcher.Permanent(code, err)
	}
	return o
}

// aboutToken reports whether an INVALID_ARGUMENT answer is about the
// registration token rather than the payload: a field violation on
// message.token, or, without field violations on other fields, a message
// naming the registration token ("The registration token is not a valid
// FCM registration token").
func aboutToken(e fcmError) bool {
	other := false
	for _, d := range e.Error.Details {
		for _, v := range d.FieldViolations {
			if v.Field == "message.token" {
				return true
			}
			other = true
		}
	}
	return !other && strings.Contains(strings.ToLower(e.Error.Message), "registration token")
}

// tokenFailure classifies a failed access-token request.
func (f *fcm) tokenFailure(err error, attempt int) error {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.Response == nil {
		return dispatcher.Transient("", 0, fmt.Errorf("push: fcm access token: %w", err))
	}
	var body struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	_ = json.Unmarshal(re.Body, &body)
	status := re.Response.StatusCode
	name := cmp.Or(body.Error, "HTTP_"+strconv.Itoa(status))
	code := "fcm:token_" + name
	e := fmt.Errorf("push: fcm access token: HTTP %d %s: %s", status, name, clip(body.Description))
	switch {
	case status == http.StatusTooManyRequests:
		return dispatcher.Transient(code, dispatcher.RetryAfter(re.Response.Header, f.now(), defaultRateLimitDelay, maxRetryAfter), e)
	case status >= 500:
		return dispatcher.Transient(code, dispatcher.RetryAfter(re.Response.Header, f.now(), 0, maxRetryAfter), e)
	}
	// invalid_grant (a deleted or disabled key, a wrong client_email),
	// invalid_client, unauthorized_client.
	return authFailure(attempt, code, e)
}

// wrapTransport is rt wrapped by wrap, when set.
func wrapTransport(rt http.RoundTripper, wrap func(http.RoundTripper) http.RoundTripper) http.RoundTripper {
	if wrap == nil {
		return rt
	}
	return wrap(rt)
}
