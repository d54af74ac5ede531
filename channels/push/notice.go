package push

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"unicode/utf8"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// Data keys every notification carries (when the message has a value).
const (
	KeyIncidentID  = "incident_id"
	KeyState       = "state"
	KeySeq         = "seq"
	KeyBroadcastID = "broadcast_id"
	KeyDeliveryID  = "delivery_id"
	KeySeverity    = "severity"
	// KeyManageURL and KeyUnsubscribeURL are a self-service subscriber's
	// links (absent for everyone else).
	KeyManageURL      = "manage_url"
	KeyUnsubscribeURL = "unsubscribe_url"
)

// maxCollapseID is APNs' limit for apns-collapse-id, in bytes.
const maxCollapseID = 64

// notice is a message as every platform sends it.
type notice struct {
	title, body string
	data        map[string]string
	critical    bool
	// collapseID groups the notices of one incident (FCM collapse_key,
	// apns-collapse-id); "" when the message is about no incident.
	collapseID string
	// topic is the Web Push Topic (RFC 8030 §5.4): at most 32 base64url
	// characters, the incident id hashed.
	topic string
	// attempt is the message's attempt, 1 for the first.
	attempt int
}

func newNotice(m *dispatcher.Message) *notice {
	incident, state, severity, seq := m.IncidentID, m.State, m.Severity, m.Seq
	if inc := m.Incident; inc != nil {
		incident = cmp.Or(incident, inc.ID)
		state = cmp.Or(state, inc.State)
		severity = cmp.Or(severity, inc.Severity)
	}
	if up := m.Update; up != nil {
		incident = cmp.Or(incident, up.IncidentID)
		state = cmp.Or(state, up.State)
		seq = cmp.Or(seq, up.Seq)
	}
	n := &notice{
		title:    m.Title,
		body:     m.Body,
		data:     map[string]string{},
		critical: severity == dispatcher.SeverityCritical,
		attempt:  m.Attempt,
	}
	set := func(k, v string) {
		if v != "" {
			n.data[k] = v
		}
	}
	set(KeyIncidentID, incident)
	set(KeyState, string(state))
	if seq > 0 {
		set(KeySeq, strconv.Itoa(seq))
	}
	set(KeyBroadcastID, m.BroadcastID)
	set(KeyDeliveryID, m.DeliveryID)
	set(KeySeverity, string(severity))
	set(KeyManageURL, m.ManageURL)
	set(KeyUnsubscribeURL, m.UnsubscribeURL)
	if incident != "" {
		n.collapseID = CollapseID(incident)
		n.topic = Topic(incident)
	}
	return n
}

// CollapseID returns the FCM collapse key and apns-collapse-id of an
// incident's notices: the incident id, or, when longer than APNs' 64
// bytes, "sha256:" and 43 base64url characters of its hash.
func CollapseID(incidentID string) string {
	if len(incidentID) <= maxCollapseID {
		return incidentID
	}
	h := sha256.Sum256([]byte(incidentID))
	return "sha256:" + base64.RawURLEncoding.EncodeToString(h[:])
}

// Topic returns the Web Push Topic of an incident's notices: 32 base64url
// characters of the incident id's SHA-256 (a Topic holds at most 32).
func Topic(incidentID string) string {
	h := sha256.Sum256([]byte(incidentID))
	return base64.RawURLEncoding.EncodeToString(h[:])[:32]
}

// ellipsis marks shortened text.
const ellipsis = "…"

// fit shortens body, then title, until size(title, body) <= limit,
// keeping as much text as fits: it cuts at a rune boundary and marks the
// cut with an ellipsis. size is the encoded size, which escaping may make
// larger than the text.
func fit(title, body string, limit int, size func(title, body string) int) (string, string) {
	if size(title, body) <= limit {
		return title, body
	}
	if size(title, "") <= limit {
		return title, longest(body, func(b string) bool { return size(title, b) <= limit })
	}
	return longest(title, func(t string) bool { return size(t, "") <= limit }), ""
}

// longest returns the longest shortening of s that ok accepts ("" when
// none is); ok must accept shorter text whenever it accepts longer.
func longest(s string, ok func(string) bool) string {
	lo, hi := 0, len(s) // shorten(s, lo) is accepted; shorten(s, hi) is not
	if !ok(shorten(s, lo)) {
		return ""
	}
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if ok(shorten(s, mid)) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return shorten(s, lo)
}

// shorten cuts s to at most n bytes, ellipsis included, at a rune
// boundary; it returns "" when not even the ellipsis fits.
func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	n -= len(ellipsis)
	if n <= 0 {
		return ""
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + ellipsis
}

// marshal encodes v as JSON without HTML escaping (<, > and & stay as they
// are, as the text was written) and without a trailing newline.
func marshal(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Only strings and maps of strings are encoded: cannot happen.
		panic(err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}
