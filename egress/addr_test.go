package egress

import (
	"net/netip"
	"testing"
)

func TestClassify(t *testing.T) {
	for _, c := range []struct {
		addr string
		want AddrClass
	}{
		{"8.8.8.8", ClassGlobal},
		{"2606:4700:4700::1111", ClassGlobal},
		{"127.0.0.1", ClassLoopback},
		{"127.8.9.10", ClassLoopback},
		{"::1", ClassLoopback},
		{"0.0.0.0", ClassUnspecified},
		{"::", ClassUnspecified},
		{"10.1.2.3", ClassPrivate},
		{"172.31.255.255", ClassPrivate},
		{"172.32.0.1", ClassGlobal},
		{"192.168.1.1", ClassPrivate},
		{"fd12:3456::1", ClassPrivate},
		{"fc00::1", ClassPrivate},
		{"169.254.1.1", ClassLinkLocal},
		{"fe80::1", ClassLinkLocal},
		{"100.64.0.1", ClassCGNAT},
		{"100.127.255.255", ClassCGNAT},
		{"224.0.0.1", ClassMulticast},
		{"ff02::1", ClassMulticast},
		{"255.255.255.255", ClassBroadcast},
		{"240.0.0.1", ClassReserved},
		{"169.254.169.254", ClassMetadata},
		{"fd00:ec2::254", ClassMetadata},
		{"192.0.2.1", ClassDocumentation},
		// Embeddings are classified by the IPv4 address they carry.
		{"::ffff:127.0.0.1", ClassLoopback},
		{"::ffff:169.254.169.254", ClassMetadata},
		{"::ffff:8.8.8.8", ClassGlobal},
		{"::127.0.0.1", ClassLoopback},
		{"2002:7f00:1::", ClassLoopback},      // 6to4 of 127.0.0.1
		{"2002:0a00:0001::1", ClassPrivate},   // 6to4 of 10.0.0.1
		{"2002:0808:0808::1", ClassGlobal},    // 6to4 of 8.8.8.8
		{"64:ff9b::a9fe:a9fe", ClassMetadata}, // NAT64 of 169.254.169.254
		{"64:ff9b::7f00:1", ClassLoopback},
		{"64:ff9b::808:808", ClassGlobal},
		{"64:ff9b:1::1", ClassPrivate},
		// Teredo: server 65.54.227.120, client 127.0.0.1 (obfuscated).
		{"2001:0:4136:e378:8000:63bf:80ff:fffe", ClassLoopback},
		{"2001:0:4136:e378:8000:63bf:f7f7:f7f7", ClassGlobal}, // client 8.8.8.8
		{"2001:0:a00:1::", ClassPrivate},                      // server 10.0.0.1
	} {
		if got := Classify(netip.MustParseAddr(c.addr)); got != c.want {
			t.Errorf("Classify(%s) = %q, want %q", c.addr, got, c.want)
		}
	}
}
