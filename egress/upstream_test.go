package egress

import (
	"fmt"
	"io"
	"testing"
)

// A proxy with an upstream reaches origins only through it, by name: a
// plain request and a CONNECT tunnel allowed by both proxies arrive; a name
// this proxy allows and the upstream does not is refused by the upstream,
// and the origin is never reached.
func TestUpstream(t *testing.T) {
	o := newOrigin(t)
	upPolicy := basePolicy()
	upPolicy.Domains = []string{"allowed.example"} // not other.example
	up := newHarness(t, upPolicy, Options{})
	upURL, err := ParseUpstream(up.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	down := basePolicy()
	down.Domains = append(down.Domains, "other.example")
	h := newHarness(t, down, Options{Upstream: upURL})

	status, body, _ := h.do(t, "POST", fmt.Sprintf("http://allowed.example:%d/through", o.port()), "ping")
	if status != 200 || body != "echo POST /through ping" {
		t.Fatalf("through the upstream: %d %q", status, body)
	}
	d := up.lastDecision(t)
	if d.Kind != "connect" || d.Host != "allowed.example" || d.Action != ActionAllow {
		t.Errorf("the upstream's decision %+v, want an allowed CONNECT to the name", d)
	}
	before := o.count()
	status, _, _ = h.do(t, "GET", fmt.Sprintf("http://other.example:%d/", o.port()), "")
	if status == 200 || o.count() != before {
		t.Errorf("a name the upstream refuses: status %d, origin reached %d times", status, o.count()-before)
	}
	if d := up.lastDecision(t); d.Host != "other.example" || d.Action != ActionDeny {
		t.Errorf("the upstream's decision %+v, want a denial of other.example", d)
	}
	if d := h.lastDecision(t); d.Action != ActionDeny || d.Rule != RuleUpstream {
		t.Errorf("this proxy's decision %+v, want denied by the upstream", d)
	}
}

// A client's CONNECT tunnel goes through the upstream too, and TLS is
// still end to end: the client verifies the origin.
func TestUpstreamTunnel(t *testing.T) {
	k := newPKI(t)
	o := k.tlsOrigin(t, false)
	up := newHarness(t, basePolicy(), Options{})
	upURL, err := ParseUpstream(up.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, basePolicy(), Options{Upstream: upURL})
	resp, err := h.client(k.pool).Get(fmt.Sprintf("https://secure.example:%d/t", o.port()))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "echo GET /t " {
		t.Fatalf("through both proxies: %q", b)
	}
	if d := up.lastDecision(t); d.Kind != "connect" || d.Host != "secure.example" || d.Action != ActionAllow {
		t.Errorf("the upstream's decision %+v", d)
	}
}

// The upstream's URL is http://HOST:PORT and nothing else.
func TestParseUpstream(t *testing.T) {
	for _, s := range []string{"http://proxy.ccos-system.svc:3128", "http://127.0.0.1:3128/"} {
		if _, err := ParseUpstream(s); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	for _, s := range []string{"https://p:3128", "http://p", "http://u:pw@p:1", "http://p:1/x", "socks5://p:1", "p:1", "http://p:1?a=b"} {
		if _, err := ParseUpstream(s); err == nil {
			t.Errorf("%s parsed", s)
		}
	}
}

// Whatever ParseUpstream accepts is a plain http://HOST:PORT.
func FuzzParseUpstream(f *testing.F) {
	for _, s := range []string{"http://p:3128", "http://[::1]:3128/", "https://p:1", "http://p", "http://u@p:1", "%zz", "http://p:1#f"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseUpstream(s)
		if err != nil {
			return
		}
		if u.Scheme != "http" || u.Hostname() == "" || u.Port() == "" || u.User != nil || u.RawQuery != "" || (u.Path != "" && u.Path != "/") {
			t.Fatalf("%q parsed as %#v", s, u)
		}
	})
}
