package push

import (
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// AgeAPNsToken makes s's APNs provider token d older, as if signed d ago
// by the system clock (apns2 stamps IssuedAt with it).
func AgeAPNsToken(s *Sender, d time.Duration) {
	a := s.platforms[dispatcher.PlatformAPNs].(*apns)
	a.token.Lock()
	defer a.token.Unlock()
	a.token.IssuedAt -= int64(d / time.Second)
}

// RouteWebPush makes every Web Push connection of a Sender built from c go
// to addr (a fake's listener) whatever the endpoint's host, still through
// the guard: the fake is refused unless c.AllowNetworks allows it.
func RouteWebPush(c *WebPushConfig, addr string) { c.route = addr }
