package egress

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/ccos-project/ccos/config"
)

func loadConfig(t *testing.T, src string) *config.Config {
	t.Helper()
	res := config.Load([]byte(src), "test.rtfs", config.RTFSEvaluator{})
	if res.Diags.HasErrors() || res.Config == nil {
		t.Fatalf("config: %v", res.Diags.Err())
	}
	return res.Config
}

func TestPolicyFromConfig(t *testing.T) {
	pin := PinOf(newPKI(t).serverLeaf)
	cfg := loadConfig(t, `(agent.config :version "0.1" :agent-id "agent.a" :features [:network]
  :orchestrator {:dlp {:enabled true :policy :moderate}}
  :capabilities {:http {:enabled true :egress {:allow-domains ["api.example.com"]}}}
  :network {:enabled true
            :egress {:via :proxy :allow-domains ["api.example.com" "*.slack.com"]
                     :mtls true :tls_pins ["`+pin.String()+`"]}})`)
	p, err := PolicyFromConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if p.Agent != "agent.a" || len(p.Domains) != 2 || p.DLP.Action != DLPRedact || !p.DLP.Secrets || !p.DLP.PII {
		t.Errorf("policy %+v", p)
	}
	if len(p.TLS) != 2 || p.TLS[1].Domain != "*.slack.com" || p.TLS[0].Pins[0] != pin {
		t.Errorf("TLS %+v", p.TLS)
	}
	if !p.NeedsClientCert() {
		t.Error(":mtls true without a certificate should need one")
	}
	k := newPKI(t)
	p.SetClientCert(&k.client)
	if p.NeedsClientCert() {
		t.Error("the certificate was set")
	}
	if _, err := New(p, Options{Logger: discardLogger()}); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name, src string
		domains   int
		dlp       DLPAction
	}{
		{"no network", `(agent.config :version "0.1" :agent-id "b")`, 0, DLPOff},
		{"via none", `(agent.config :version "0.1" :agent-id "b" :features [:network] :capabilities {:http {:enabled true}} :network {:enabled true :egress {:via :none :allow-domains ["a.example"]}})`, 0, DLPOff},
		// Config.Egress is the one rule: no proxy egress for :via :direct,
		// none without the :http capability, as admission decides.
		{"via direct", `(agent.config :version "0.1" :agent-id "b" :features [:network] :capabilities {:http {:enabled true}} :network {:enabled true :egress {:via :direct :allow-domains ["a.example"]}})`, 0, DLPOff},
		{"network without http", `(agent.config :version "0.1" :agent-id "b" :features [:network] :network {:enabled true :egress {:via :proxy :allow-domains ["a.example"]}})`, 0, DLPOff},
		{"http capability", `(agent.config :version "0.1" :agent-id "b" :features [:network] :capabilities {:http {:enabled true :egress {:allow-domains ["a.example"]}}} :orchestrator {:dlp {:enabled true :policy :lenient}})`, 1, DLPLog},
		{"strict", `(agent.config :version "0.1" :agent-id "b" :orchestrator {:dlp {:enabled true}})`, 0, DLPBlock},
	} {
		p, err := PolicyFromConfig(loadConfig(t, c.src))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if len(p.Domains) != c.domains || p.DLP.Action != c.dlp {
			t.Errorf("%s: %+v", c.name, p)
		}
	}
}

// With :mtls true and no client certificate, the ACL still decides
// first: a domain outside it is refused for the domain, an allowed one
// for the missing certificate; neither reaches the origin.
func TestMissingClientCertAfterACL(t *testing.T) {
	o := newOrigin(t)
	cfg := loadConfig(t, `(agent.config :version "0.1" :agent-id "agent.test" :features [:network]
  :capabilities {:http {:enabled true :egress {:allow-domains ["allowed.example"]}}}
  :network {:enabled true :egress {:via :proxy :allow-domains ["allowed.example"] :mtls true}})`)
	p, err := PolicyFromConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p.AllowRanges = basePolicy().AllowRanges
	px, err := New(p, Options{Resolver: testResolver(), Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	g, err := px.Grant("agent.test", "s", "", "", StepACL{Domains: []string{"allowed.example"}})
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]Rule{"other.example": RuleDomain, "allowed.example": RuleClientCert} {
		req, _ := http.NewRequestWithContext(WithGrant(WithAgent(context.Background(), "agent.test"), g), "GET", fmt.Sprintf("http://%s:%d/", host, o.port()), nil)
		_, err := px.RoundTrip(req)
		var de *DeniedError
		if !errors.As(err, &de) || de.Decision.Rule != want {
			t.Errorf("%s: %v, want %s", host, err, want)
		}
	}
	if o.count() != 0 {
		t.Errorf("the origin was reached")
	}
}
