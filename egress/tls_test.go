package egress

import (
	"bufio"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestPinnedOrigin(t *testing.T) {
	k := newPKI(t)
	o := k.tlsOrigin(t, false)
	good := PinOf(k.serverLeaf)
	bad := Pin(sha256.Sum256([]byte("some other key")))
	for _, c := range []struct {
		name   string
		pins   []Pin
		status int
		rule   Rule
	}{
		{"leaf pin", []Pin{good}, 200, ""},
		{"CA pin", []Pin{bad, PinOf(k.caCert)}, 200, ""},
		{"mismatch", []Pin{bad}, 502, RulePinMismatch},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := basePolicy()
			p.TLS = []OriginTLS{{Domain: "pinned.example", Pins: c.pins}}
			h := newHarness(t, p, Options{RootCAs: k.pool})
			// The guest speaks plain HTTP; the proxy originates TLS.
			status, body, rule := h.do(t, "GET", fmt.Sprintf("http://pinned.example:%d/p", o.port()), "")
			if status != c.status || Rule(rule) != c.rule {
				t.Fatalf("got %d %s %q", status, rule, body)
			}
			if c.status == 200 && body != "echo GET /p " {
				t.Errorf("body %q", body)
			}
			if h.count() != 1 {
				t.Errorf("%d decisions, want 1", h.count())
			}
		})
	}
}

func TestMTLS(t *testing.T) {
	k := newPKI(t)
	o := k.tlsOrigin(t, true)
	for _, withCert := range []bool{true, false} {
		t.Run(fmt.Sprint("cert=", withCert), func(t *testing.T) {
			p := basePolicy()
			ot := OriginTLS{Domain: "mtls.example", Pins: []Pin{PinOf(k.serverLeaf)}}
			if withCert {
				ot.ClientCert = &k.client
			}
			p.TLS = []OriginTLS{ot}
			h := newHarness(t, p, Options{RootCAs: k.pool})
			status, body, rule := h.do(t, "POST", fmt.Sprintf("http://mtls.example:%d/m", o.port()), "hi")
			if withCert && (status != 200 || body != "echo POST /m hi") {
				t.Fatalf("with a client certificate: %d %q", status, body)
			}
			if !withCert && (status != 502 || Rule(rule) != RuleUpstream) {
				t.Fatalf("without a client certificate: %d %s %q", status, rule, body)
			}
		})
	}
}

func TestConnect(t *testing.T) {
	k := newPKI(t)
	o := k.tlsOrigin(t, false)
	p := basePolicy()
	p.Methods = []string{"GET"}
	p.TLS = []OriginTLS{{Domain: "pinned.example", Pins: []Pin{PinOf(k.serverLeaf)}}}
	p.Limits.MaxTunnels = 1
	h := newHarness(t, p, Options{RootCAs: k.pool})
	c := h.client(k.pool)

	resp, err := c.Get(fmt.Sprintf("https://secure.example:%d/t", o.port()))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "echo GET /t " {
		t.Fatalf("through the tunnel: %q", b)
	}
	if d := h.lastDecision(t); d.Kind != "connect" || d.Action != ActionAllow || d.Host != "secure.example" {
		t.Errorf("decision %+v", d)
	}
	// The tunnel is still open (keep-alive): a second one is refused.
	c2 := h.client(k.pool)
	if _, err := c2.Get(fmt.Sprintf("https://secure.example:%d/t", o.port())); err == nil {
		t.Error("a second tunnel was allowed")
	} else if d := h.lastDecision(t); d.Rule != RuleTunnels {
		t.Errorf("second tunnel: %+v", d)
	}
	c.CloseIdleConnections()

	for _, tc := range []struct {
		host string
		rule Rule
	}{
		{"other.example", RuleDomain},
		{"pinned.example", RuleTLSRequired},
	} {
		_, err := h.client(k.pool).Get(fmt.Sprintf("https://%s:%d/", tc.host, o.port()))
		if err == nil || !strings.Contains(err.Error(), "Forbidden") {
			t.Errorf("CONNECT %s: %v", tc.host, err)
		}
		if d := h.lastDecision(t); d.Rule != tc.rule || d.Kind != "connect" {
			t.Errorf("CONNECT %s: %+v", tc.host, d)
		}
	}
}

// TestConnectUnverifiedPinIgnored checks that the proxy's own TLS settings
// do not leak into tunnels: the client verifies the origin itself.
func TestConnectClientVerifies(t *testing.T) {
	k := newPKI(t)
	o := k.tlsOrigin(t, false)
	h := newHarness(t, basePolicy(), Options{})
	c := &http.Client{Transport: &http.Transport{Proxy: h.client(nil).Transport.(*http.Transport).Proxy, TLSClientConfig: &tls.Config{}}}
	if _, err := c.Get(fmt.Sprintf("https://secure.example:%d/", o.port())); err == nil {
		t.Fatal("a client without the CA trusted the origin")
	}
}

// TestRoundTripHTTPS: in process, the host's fetches of https:// URLs get
// TLS from the proxy, with the pins of the origins that have them.
func TestRoundTripHTTPS(t *testing.T) {
	k := newPKI(t)
	o := k.tlsOrigin(t, false)
	p := basePolicy()
	p.TLS = []OriginTLS{{Domain: "pinned.example", Pins: []Pin{Pin(sha256.Sum256([]byte("other")))}}}
	px, err := New(p, Options{Resolver: testResolver(), RootCAs: k.pool, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Transport: px}
	resp, err := c.Get(fmt.Sprintf("https://secure.example:%d/s", o.port()))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "echo GET /s " {
		t.Errorf("body %q", b)
	}
	_, err = c.Get(fmt.Sprintf("https://pinned.example:%d/", o.port()))
	var de *DeniedError
	if !errors.As(err, &de) || de.Decision.Rule != RulePinMismatch {
		t.Errorf("pinned origin: %v", err)
	}
}

// TestTunnelIdleTimeout: a tunnel without traffic is closed.
func TestTunnelIdleTimeout(t *testing.T) {
	o := newOrigin(t)
	p := basePolicy()
	p.Limits.TunnelIdleTimeout = 200 * time.Millisecond
	h := newHarness(t, p, Options{})
	c, err := net.Dial("tcp", h.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "CONNECT allowed.example:%d HTTP/1.1\r\nHost: allowed.example:%d\r\n\r\n", o.port(), o.port())
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil || !strings.Contains(line, "200") {
		t.Fatalf("CONNECT answer %q, %v", line, err)
	}
	_, _ = br.ReadString('\n') // the blank line
	// The tunnel works...
	fmt.Fprintf(c, "GET /t HTTP/1.1\r\nHost: allowed.example\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// ... and is closed once idle.
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	if _, err := br.ReadByte(); err == nil {
		t.Fatal("read a byte from an idle tunnel")
	}
	if time.Since(start) > 3*time.Second {
		t.Fatal("the idle tunnel was not closed")
	}
}
