package egress_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"

	"github.com/ccos-project/ccos/egress"
)

// The host's side of a run: the agent's policy (from its config, here
// written out), the step ACL programmed while a step runs, and a fetch the
// host makes for the agent through the same checks.
func Example() {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "hello from ", r.Host[:len("api.example.com")])
	}))
	defer origin.Close()
	u, _ := url.Parse(origin.URL)

	px, err := egress.New(egress.Policy{
		Agent:   "agent.ops",
		Domains: []string{"api.example.com", "*.slack.com"},
		// Only because the test origin is on loopback.
		AllowRanges: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		RequireStep: true,
	}, egress.Options{
		Resolver: egress.StaticResolver{"api.example.com": {netip.MustParseAddr("127.0.0.1")}},
		Logger:   slog.New(slog.DiscardHandler),
		Recorder: func(d egress.Decision) { fmt.Println("decision:", d.Action, d.Rule, "step="+d.Step) },
	})
	if err != nil {
		panic(err)
	}
	if err := px.SetStep("agent.ops", "post-to-slack", egress.StepACL{Domains: []string{"*.example.com"}}); err != nil {
		fmt.Println("refused:", err)
	}
	if err := px.SetStep("agent.ops", "fetch-report", egress.StepACL{Domains: []string{"api.example.com"}, Methods: []string{"GET"}}); err != nil {
		panic(err)
	}
	client := &http.Client{Transport: px}
	req, _ := http.NewRequestWithContext(egress.WithAgent(context.Background(), "agent.ops"), "GET", "http://api.example.com:"+u.Port()+"/report", nil)
	resp, err := client.Do(req)
	if err != nil {
		panic(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(string(b))
	px.ClearStep("agent.ops")
	_, err = client.Get("http://api.example.com:" + u.Port() + "/report")
	fmt.Println(err != nil)
	// Output:
	// refused: egress: step ACL widens the agent ACL: step post-to-slack allows *.example.com, which agent agent.ops's domains do not cover
	// decision: allow allowed step=fetch-report
	// hello from api.example.com
	// decision: deny no_step step=
	// true
}
