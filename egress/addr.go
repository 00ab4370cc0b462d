package egress

import (
	"net/netip"
)

// AddrClass names why an address is special. The empty class is an ordinary
// global unicast address.
type AddrClass string

// The address classes the proxy refuses unless a policy range allows them.
const (
	ClassGlobal        AddrClass = ""
	ClassUnspecified   AddrClass = "unspecified"
	ClassLoopback      AddrClass = "loopback"
	ClassPrivate       AddrClass = "private"
	ClassLinkLocal     AddrClass = "link-local"
	ClassCGNAT         AddrClass = "cgnat"
	ClassMulticast     AddrClass = "multicast"
	ClassBroadcast     AddrClass = "broadcast"
	ClassReserved      AddrClass = "reserved"
	ClassMetadata      AddrClass = "metadata"
	ClassDocumentation AddrClass = "documentation"
)

type classRange struct {
	prefix netip.Prefix
	class  AddrClass
}

// The table is ordered: the first matching range wins, so the metadata
// addresses come before the link-local and private ranges that hold them.
var classTable = func() []classRange {
	rows := []struct {
		p string
		c AddrClass
	}{
		{"169.254.169.254/32", ClassMetadata},
		{"169.254.170.2/32", ClassMetadata}, // ECS task metadata
		{"100.100.100.200/32", ClassMetadata},
		{"fd00:ec2::254/128", ClassMetadata},
		{"255.255.255.255/32", ClassBroadcast},
		{"0.0.0.0/8", ClassUnspecified},
		{"127.0.0.0/8", ClassLoopback},
		{"10.0.0.0/8", ClassPrivate},
		{"172.16.0.0/12", ClassPrivate},
		{"192.168.0.0/16", ClassPrivate},
		{"100.64.0.0/10", ClassCGNAT},
		{"169.254.0.0/16", ClassLinkLocal},
		{"224.0.0.0/4", ClassMulticast},
		{"240.0.0.0/4", ClassReserved},
		{"192.0.0.0/24", ClassReserved},
		{"198.18.0.0/15", ClassReserved},
		{"192.0.2.0/24", ClassDocumentation},
		{"198.51.100.0/24", ClassDocumentation},
		{"203.0.113.0/24", ClassDocumentation},
		{"::/128", ClassUnspecified},
		{"::1/128", ClassLoopback},
		{"fc00::/7", ClassPrivate},
		{"fec0::/10", ClassPrivate}, // deprecated site-local
		{"64:ff9b:1::/48", ClassPrivate},
		{"fe80::/10", ClassLinkLocal},
		{"ff00::/8", ClassMulticast},
		{"100::/64", ClassReserved},
		{"2001:db8::/32", ClassDocumentation},
		{"2001:2::/48", ClassReserved},
	}
	out := make([]classRange, len(rows))
	for i, r := range rows {
		out[i] = classRange{netip.MustParsePrefix(r.p), r.c}
	}
	return out
}()

var (
	prefix6to4   = netip.MustParsePrefix("2002::/16")
	prefixTeredo = netip.MustParsePrefix("2001::/32")
	prefixNAT64  = netip.MustParsePrefix("64:ff9b::/96")
	prefixV4Comp = netip.MustParsePrefix("::/96")
)

// Classify returns the class of an address. IPv6 addresses that embed an
// IPv4 address (IPv4-mapped, IPv4-compatible, 6to4, Teredo, NAT64) are
// classified by what they embed; for Teredo, the worse of the server and the
// client address.
func Classify(a netip.Addr) AddrClass {
	a = a.WithZone("")
	if a.Is4In6() {
		return classify4(a.Unmap())
	}
	if a.Is4() {
		return classify4(a)
	}
	b := a.As16()
	switch {
	case prefix6to4.Contains(a):
		return classify4(netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}))
	case prefixTeredo.Contains(a):
		server := classify4(netip.AddrFrom4([4]byte{b[4], b[5], b[6], b[7]}))
		if server != ClassGlobal {
			return server
		}
		return classify4(netip.AddrFrom4([4]byte{^b[12], ^b[13], ^b[14], ^b[15]}))
	case prefixNAT64.Contains(a):
		return classify4(netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}))
	case prefixV4Comp.Contains(a) && a != netip.IPv6Unspecified() && a != netip.IPv6Loopback():
		return classify4(netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}))
	}
	return lookupClass(a)
}

func classify4(a netip.Addr) AddrClass { return lookupClass(a) }

func lookupClass(a netip.Addr) AddrClass {
	for _, r := range classTable {
		if r.prefix.Contains(a) {
			return r.class
		}
	}
	return ClassGlobal
}

// embedded returns the IPv4 address an IPv6 address stands for, if any, so
// that an allowed IPv4 range also allows its mapped forms.
func embedded(a netip.Addr) (netip.Addr, bool) {
	if a.Is4In6() {
		return a.Unmap(), true
	}
	if !a.Is6() {
		return netip.Addr{}, false
	}
	b := a.As16()
	switch {
	case prefix6to4.Contains(a):
		return netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}), true
	case prefixNAT64.Contains(a):
		return netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}), true
	}
	return netip.Addr{}, false
}
