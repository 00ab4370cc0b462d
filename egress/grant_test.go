package egress

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
)

// TestGrantPerRequest: concurrent requests of one agent each carry their
// own step's ACL; none is judged by another's, and every decision is
// tagged with the grant's run and plan.
func TestGrantPerRequest(t *testing.T) {
	o := newOrigin(t)
	p := basePolicy()
	p.Methods = []string{"GET", "POST"}
	var mu sync.Mutex
	var decisions []Decision
	px, err := New(p, Options{Resolver: testResolver(), Logger: discardLogger(), Recorder: func(d Decision) {
		mu.Lock()
		decisions = append(decisions, d)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := px.Grant("agent.test", "s", "r", "p", StepACL{Domains: []string{"evil.example"}}); !errors.Is(err, ErrWiden) {
		t.Fatalf("a widening grant: %v", err)
	}
	if _, err := px.Grant("nobody", "s", "r", "p", StepACL{}); !errors.Is(err, ErrUnknownAgent) {
		t.Fatalf("unknown agent: %v", err)
	}
	getOnly, err := px.Grant("agent.test", "read", "run-1", "sha256:aa", StepACL{Domains: []string{"allowed.example"}, Methods: []string{"GET"}})
	if err != nil {
		t.Fatal(err)
	}
	nothing, err := px.Grant("agent.test", "compute", "run-2", "sha256:bb", StepACL{})
	if err != nil {
		t.Fatal(err)
	}
	do := func(g *Grant, method string) error {
		ctx := WithGrant(WithAgent(context.Background(), "agent.test"), g)
		req, _ := http.NewRequestWithContext(ctx, method, fmt.Sprintf("http://allowed.example:%d/", o.port()), nil)
		resp, err := px.RoundTrip(req)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	var wg sync.WaitGroup
	errs := make([]error, 60)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch i % 3 {
			case 0:
				errs[i] = do(getOnly, "GET")
			case 1:
				errs[i] = do(getOnly, "POST")
			default:
				errs[i] = do(nothing, "GET")
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		var de *DeniedError
		switch i % 3 {
		case 0:
			if err != nil {
				t.Errorf("request %d (GET in step read): %v", i, err)
			}
		case 1:
			if !errors.As(err, &de) || de.Decision.Rule != RuleStepMethod {
				t.Errorf("request %d (POST in step read): %v", i, err)
			}
		default:
			if !errors.As(err, &de) || de.Decision.Rule != RuleStepDomain {
				t.Errorf("request %d (GET in step compute): %v", i, err)
			}
		}
	}
	mu.Lock()
	got := decisions
	mu.Unlock()
	if len(got) != len(errs) {
		t.Fatalf("%d decisions, want %d", len(got), len(errs))
	}
	for _, d := range got {
		switch d.Step {
		case "read":
			if d.Run != "run-1" || d.Plan != "sha256:aa" {
				t.Errorf("decision of step read tagged %q %q", d.Run, d.Plan)
			}
		case "compute":
			if d.Run != "run-2" || d.Plan != "sha256:bb" {
				t.Errorf("decision of step compute tagged %q %q", d.Run, d.Plan)
			}
		default:
			t.Errorf("decision without the grant's step: %+v", d)
		}
	}
	// A grant is bound to the policy it was compiled for.
	if err := px.AddAgent(p); err != nil {
		t.Fatal(err)
	}
	var de *DeniedError
	if err := do(getOnly, "GET"); !errors.As(err, &de) || de.Decision.Rule != RuleStepMismatch {
		t.Errorf("a grant of a replaced policy: %v", err)
	}
}
