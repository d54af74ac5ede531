package dispatcher_test

import (
	"testing"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

func TestMatchHost(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		host string
		want bool
	}{
		{"fcm.googleapis.com", true}, {"FCM.googleapis.com.", true}, {"updates.push.services.mozilla.com", true},
		{"web.push.apple.com", true}, {"db5p.notify.windows.com", true},
		{"push.services.mozilla.com", false}, // "*.name" is its subdomains only
		{"googleapis.com", false}, {"fcm.googleapis.com.evil.example", false}, {"evilfcm.googleapis.com", false},
		{"xpush.apple.com", false}, {"", false},
	} {
		if got := dispatcher.MatchHost(dispatcher.DefaultWebPushHosts, c.host); got != c.want {
			t.Errorf("MatchHost(default, %q) = %v, want %v", c.host, got, c.want)
		}
	}
	if !dispatcher.MatchHost([]string{"*"}, "push.example.net") || dispatcher.MatchHost(nil, "fcm.googleapis.com") {
		t.Error(`"*" must match any host, and no pattern none`)
	}
}
