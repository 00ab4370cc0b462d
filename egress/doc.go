// Package egress is the sandbox's only way out: an HTTP forward proxy (with
// CONNECT) and an in-process http.RoundTripper that apply one decision
// function to every request an agent makes.
//
// A decision is taken from (agent, step, method, host, port) and, once the
// name is resolved, the address that will be dialled:
//
//  1. the agent's ACL, from its configuration (Policy): domain patterns,
//     methods, ports, explicitly allowed address ranges;
//  2. the step's ACL (StepACL), programmed by the host while a step runs; it
//     can only narrow the agent's, never widen it;
//  3. the address class: loopback, private, link-local, CGNAT, multicast,
//     reserved, metadata and the IPv4 embedded in transition addresses are
//     refused unless a range of the policy allows them;
//  4. limits (rate per agent and per step, sizes, concurrent tunnels);
//  5. data-loss prevention on request bodies and URL queries.
//
// The outcome is a Decision: allow, deny, or report (the policy is in report
// mode and would have denied). Each request yields exactly one Decision,
// logged once with log/slog and handed to the Recorder.
//
// Names are resolved once; the proxy dials exactly the address it checked,
// so a name that resolves differently the second time (DNS rebinding) cannot
// reach a refused address.
package egress
