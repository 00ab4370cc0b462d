package config

import "fmt"

// EgressPolicy is what a config lets its agent reach on the network: the
// one answer to "is the network on, and what is the allowlist", which
// governance admission, the egress proxy and the CLI all take from here.
type EgressPolicy struct {
	// Enabled says whether the agent may reach the network at all; its
	// traffic then leaves only through the egress proxy.
	Enabled bool
	// Off says why the network is off (empty when Enabled).
	Off string
	// AllowDomains is the agent-wide allowlist (domain patterns).
	AllowDomains []string
	// MTLS asks the proxy to present a client certificate to the origins.
	MTLS bool
	// TLSPins are the pins of :network :egress :tls_pins.
	TLSPins []string
}

// Egress returns the config's network policy. The network is on when the
// :http capability is enabled and either the config has no :network
// section (the allowlist is then :capabilities :http :egress
// :allow-domains) or its :network is enabled with :egress :via :proxy (the
// allowlist is then :network :egress :allow-domains, which validation holds
// the :http allowlist within). :via :direct and :via :none turn it off:
// ccos never lets a sandbox reach the network except through its proxy.
func (c *Config) Egress() EgressPolicy {
	http := c.Capabilities.HTTP
	if !http.Enabled {
		return EgressPolicy{Off: "the :http capability is not enabled (:capabilities :http :enabled)"}
	}
	if c.Network == nil {
		return EgressPolicy{Enabled: true, AllowDomains: http.Egress.AllowDomains, MTLS: http.Egress.MTLS}
	}
	n := c.Network
	switch {
	case !n.Enabled:
		return EgressPolicy{Off: "the network is not enabled (:network :enabled)"}
	case n.Egress.Via != EgressProxy:
		return EgressPolicy{Off: fmt.Sprintf("the network's egress is :via :%s; ccos sends traffic out only through its egress proxy (:via :proxy)", n.Egress.Via)}
	}
	return EgressPolicy{Enabled: true, AllowDomains: n.Egress.AllowDomains,
		MTLS: n.Egress.MTLS || http.Egress.MTLS, TLSPins: n.Egress.TLSPins}
}
