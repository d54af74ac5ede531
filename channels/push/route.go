package push

// RouteWebPushTo makes every Web Push connection of a Sender built from c
// go to addr (a local fake push service's listener, webpushtest) whatever
// the endpoint's host, still through the guard: the fake is refused unless
// c.AllowNetworks allows it. For the end-to-end tests of the program that
// builds the Sender (cmd/tocsin); a configuration cannot set it.
func RouteWebPushTo(c *WebPushConfig, addr string) { c.route = addr }
