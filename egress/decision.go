package egress

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"
)

// Action is the outcome of a decision.
type Action string

// The actions.
const (
	ActionAllow  Action = "allow"
	ActionDeny   Action = "deny"
	ActionReport Action = "report" // allowed, but the policy (in report mode, or DLP :lenient) flags it
)

// Rule names the rule a decision was taken by; "allowed" when none refused.
type Rule string

// The rules.
const (
	RuleAllowed          Rule = "allowed"
	RuleUnknownAgent     Rule = "unknown_agent"
	RuleBadRequest       Rule = "bad_request"
	RuleInvalidHost      Rule = "invalid_host"
	RuleNoStep           Rule = "no_step"
	RuleStepMismatch     Rule = "step_mismatch"
	RuleDomain           Rule = "domain_not_allowed"
	RuleStepDomain       Rule = "step_domain_not_allowed"
	RuleMethod           Rule = "method_not_allowed"
	RuleStepMethod       Rule = "step_method_not_allowed"
	RulePort             Rule = "port_not_allowed"
	RuleIPLiteral        Rule = "ip_literal_not_allowed"
	RuleAddress          Rule = "address_refused"
	RuleResolve          Rule = "resolve_failed"
	RuleTLSRequired      Rule = "tls_origination_required"
	RuleClientCert       Rule = "client_cert_missing"
	RuleRate             Rule = "rate_limited"
	RuleStepRate         Rule = "step_rate_limited"
	RuleTunnels          Rule = "too_many_tunnels"
	RuleRequestTooLarge  Rule = "request_too_large"
	RuleResponseTooLarge Rule = "response_too_large"
	RuleDLP              Rule = "dlp"
	RulePinMismatch      Rule = "tls_pin_mismatch"
	RuleUpstream         Rule = "upstream_error"
)

// Request is what a decision is taken on.
type Request struct {
	Agent  string
	Step   string // empty: the step the host programmed, if any
	Method string // "CONNECT" for a tunnel: the method of what it carries is unknown
	Host   string // as the client wrote it; normalized by the decision
	Port   int
	// Addr is the address that will be dialled, when known (after
	// resolution, or for an IP literal).
	Addr netip.Addr
}

// Decision is the outcome for one request or tunnel, logged once and handed
// to the Recorder.
type Decision struct {
	Time  time.Time
	Kind  string // "http" (forward proxy), "connect" (tunnel), "fetch" (RoundTrip), "decide"
	Agent string
	Step  string
	// Run and Plan tag a decision with the run and the plan hash of the
	// request's Grant ("" for requests without one).
	Run    string
	Plan   string
	Method string
	Host   string
	Port   int
	Addr   netip.Addr
	Action Action
	Rule   Rule
	Reason string
	// DLP lists the rules of the DLP findings in the request; Stripped the
	// prompt-injection rules that matched in the response.
	DLP      []string
	Stripped []string
	// Secrets are the names of the secrets the proxy added to the request.
	Secrets []string
	// Status is the origin's HTTP status, Err what failed after the request
	// was allowed (dial, TLS, upstream).
	Status int
	Err    string
	// Latency runs from Time (the request's arrival) to the record: the
	// refusal, the origin's response header, or the tunnel's start.
	Latency time.Duration
}

// Allowed reports whether the request went (or may go) out.
func (d Decision) Allowed() bool { return d.Action != ActionDeny }

func (d *Decision) deny(r Rule, format string, args ...any) {
	d.Action, d.Rule, d.Reason = ActionDeny, r, fmt.Sprintf(format, args...)
}

// ErrDenied is matched (errors.Is) by every DeniedError.
var ErrDenied = errors.New("egress denied")

// DeniedError is returned by RoundTrip for a request the proxy refused.
type DeniedError struct{ Decision Decision }

func (e *DeniedError) Error() string {
	return fmt.Sprintf("egress denied: %s %s:%d: %s (%s)", e.Decision.Method, e.Decision.Host, e.Decision.Port, e.Decision.Reason, e.Decision.Rule)
}

// Is makes errors.Is(err, ErrDenied) true.
func (e *DeniedError) Is(target error) bool { return target == ErrDenied }

// LogValue renders the decision as one structured record.
func (d Decision) LogValue() slog.Value {
	attrs := []slog.Attr{
		slog.String("kind", d.Kind),
		slog.String("agent", d.Agent),
		slog.String("step", d.Step),
		slog.String("method", d.Method),
		slog.String("host", d.Host),
		slog.Int("port", d.Port),
		slog.String("action", string(d.Action)),
		slog.String("rule", string(d.Rule)),
		slog.String("reason", d.Reason),
	}
	if d.Addr.IsValid() {
		attrs = append(attrs, slog.String("addr", d.Addr.String()))
	}
	if len(d.DLP) > 0 {
		attrs = append(attrs, slog.Any("dlp", d.DLP))
	}
	if len(d.Stripped) > 0 {
		attrs = append(attrs, slog.Any("stripped", d.Stripped))
	}
	if len(d.Secrets) > 0 {
		attrs = append(attrs, slog.Any("secrets", d.Secrets))
	}
	if d.Status != 0 {
		attrs = append(attrs, slog.Int("status", d.Status))
	}
	if d.Err != "" {
		attrs = append(attrs, slog.String("error", d.Err))
	}
	attrs = append(attrs, slog.Duration("latency", d.Latency))
	return slog.GroupValue(attrs...)
}
