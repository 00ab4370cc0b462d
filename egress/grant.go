package egress

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/time/rate"
)

// Grant is one step's ACL compiled against an agent's policy, carried by
// the requests made for that step (WithGrant) instead of being programmed
// on the proxy with SetStep. Requests of concurrent runs and steps of one
// agent each carry their own grant, so none waits for another and none is
// judged by another's ACL. A grant is never wider than the agent's policy
// (Grant refuses with ErrWiden), and applies only to the agent and the
// policy it was compiled for.
type Grant struct {
	pol  *compiled
	step *stepState
	// Run and Plan tag every decision taken under the grant.
	Run, Plan string
}

// Step is the name of the step the grant is for.
func (g *Grant) Step() string { return g.step.acl.name }

// Grant compiles the ACL of step for agent; run and plan tag the decisions
// taken under it. A grant with a rate limit keeps its own limiter: reuse
// the grant for the requests of one step.
func (p *Proxy) Grant(agent, step, run, plan string, acl StepACL) (*Grant, error) {
	st := p.agent(agent)
	if st == nil {
		return nil, fmt.Errorf("egress: %w: %s", ErrUnknownAgent, agent)
	}
	if step == "" {
		return nil, errors.New("egress: a grant needs a step name")
	}
	cs, err := st.pol.compileStep(step, acl)
	if err != nil {
		return nil, fmt.Errorf("egress: %w", err)
	}
	s := &stepState{acl: cs}
	if acl.Rate > 0 {
		s.limiter = rate.NewLimiter(rate.Limit(acl.Rate), max(acl.Burst, 1))
	}
	return &Grant{pol: st.pol, step: s, Run: run, Plan: plan}, nil
}

type grantKey struct{}

// WithGrant returns a context whose requests (RoundTrip, or ServeHTTP for
// a request with this context) are decided under g.
func WithGrant(ctx context.Context, g *Grant) context.Context {
	return context.WithValue(ctx, grantKey{}, g)
}

func grantFrom(ctx context.Context) *Grant {
	g, _ := ctx.Value(grantKey{}).(*Grant)
	return g
}
