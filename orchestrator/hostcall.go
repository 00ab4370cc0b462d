package orchestrator

import (
	"context"
	"errors"
	"fmt"

	"github.com/ccos-project/ccos/capability"
	"github.com/ccos-project/ccos/chain"
	"github.com/ccos-project/ccos/control"
	"github.com/ccos-project/ccos/rtfs"
)

// hostCall answers a capability call the guest yielded: it records the
// call, decides it, runs it when allowed and records the outcome. A
// refusal is the plan's error; a protocol violation or a bound passed
// ends the session.
func (s *session) hostCall(ctx context.Context, id uint64, b *control.Call) error {
	if err := s.chargeCall(b); err != nil {
		return err
	}
	step := s.steps.current()
	args := make([]rtfs.Value, len(b.Args))
	for i, a := range b.Args {
		args[i] = str(a)
	}
	if err := s.record(ctx, chain.OriginHost, step, &chain.CapabilityCall{
		Capability: b.Capability, Args: args, Ordinal: int64(b.Ordinal), Key: b.Key}); err != nil {
		return err
	}
	v, replayed, err := s.call(ctx, step, b)
	if errors.Is(err, control.ErrProtocol) {
		return err
	}
	result := &chain.CapabilityResult{Capability: b.Capability, OK: err == nil, Value: v}
	if replayed {
		result.Replayed = b.Key
	}
	if err != nil {
		result.Error = err.Error()
	}
	if rerr := s.record(ctx, chain.OriginHost, step, result); rerr != nil {
		return rerr
	}
	if err != nil {
		_, serr := s.c.Send(&control.Error{Message: err.Error()}, id)
		return serr
	}
	_, err = s.c.Send(&control.Result{Value: rtfs.Print(v)}, id)
	return err
}

// chargeCall counts a yielded call against the run's bounds.
func (s *session) chargeCall(b *control.Call) error {
	n := int64(len(b.Capability))
	for _, a := range b.Args {
		n += int64(len(a))
	}
	s.calls++
	s.callBytes += n
	bd := s.req.Bounds
	if s.calls > bd.Calls {
		return &LimitExceeded{Limit: LimitCalls, Value: int64(bd.Calls), Unit: "calls", Detail: fmt.Sprintf("the guest yielded a capability call (%s) past the host's bound", b.Capability)}
	}
	if s.callBytes > bd.CallBytes {
		return &LimitExceeded{Limit: LimitCallBytes, Value: bd.CallBytes, Unit: "bytes", Detail: fmt.Sprintf("the arguments of the capability calls the guest yielded reached %d bytes with %s", s.callBytes, b.Capability)}
	}
	return nil
}

// call runs a capability the guest yielded in step ("" outside steps),
// after the decision every call passes (governance's Admission.Authorize:
// the config, the security context, the contract and the step's profile);
// replayed is set when the outcome comes from the call record. An error
// wrapping control.ErrProtocol ends the session; any other is the plan's.
func (s *session) call(ctx context.Context, step string, b *control.Call) (v rtfs.Value, replayed bool, err error) {
	if step == "" {
		return nil, false, fmt.Errorf("capability %s called outside any step; capabilities that need the host may run only inside an admitted step", b.Capability)
	}
	if b.Key != "" && b.Key != control.CallKey(s.req.Admission.PlanHash, step, b.Ordinal) {
		return nil, false, fmt.Errorf("%w: call %d of step %q carries idempotency key %s, which is not the key of that call", control.ErrProtocol, b.Ordinal, step, b.Key)
	}
	c, err := s.req.Caps.Lookup(b.Capability)
	if err != nil {
		return nil, false, err
	}
	if err := s.req.Admission.Authorize(step, c); err != nil {
		return nil, false, err
	}
	if c.Class != capability.Host {
		// A hostile guest could yield a guest capability to have the host
		// run it on the host's own files.
		return nil, false, fmt.Errorf("capability %s runs inside the sandbox; the host runs only host capabilities", c.ID)
	}
	prof := s.req.Admission.Profile(step)
	args := make([]rtfs.Value, len(b.Args))
	for i, a := range b.Args {
		v, err := readValue(a)
		if err != nil {
			return nil, false, fmt.Errorf("argument %d of %s does not read: %w", i+1, b.Capability, err)
		}
		args[i] = v
	}
	run := func() (rtfs.Value, error) {
		return capability.Invoke(capability.WithScope(ctx, capability.Scope{Step: step, Effects: prof.Effects,
			NetDomains: prof.Network.Domains, NetMethods: prof.Network.Methods}), c, args)
	}
	if !c.Mutates {
		v, err := run()
		return v, false, err
	}
	if b.Key == "" {
		return nil, false, fmt.Errorf("capability %s changes things beyond the sandbox, and the call carries no idempotency key", c.ID)
	}
	return s.req.Calls.Once(b.Key, c.ID, b.Args, run)
}
