package egress

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/ccos-project/ccos/config"
	"github.com/ccos-project/ccos/domain"
)

// ErrWiden is returned by SetStep when a step ACL would allow something the
// agent's ACL does not.
var ErrWiden = errors.New("step ACL widens the agent ACL")

// ErrUnknownAgent is returned for an agent the proxy has no policy for.
var ErrUnknownAgent = errors.New("unknown agent")

// Mode says what a policy does with a request its ACL refuses.
type Mode string

// The modes.
const (
	// Enforce denies what the ACL refuses.
	Enforce Mode = "enforce"
	// Report lets it through and records a "report" decision (a would-deny),
	// for rolling out a new ACL. Address classes, TLS pins and DLP are never
	// softened by report mode.
	Report Mode = "report"
)

// DLPAction is what DLP does with a finding.
type DLPAction string

// The DLP actions, from the config's :strict, :moderate and :lenient.
const (
	DLPOff    DLPAction = ""
	DLPBlock  DLPAction = "block"  // :strict: the request is denied
	DLPRedact DLPAction = "redact" // :moderate: matches are replaced by [REDACTED:<rule>]
	DLPLog    DLPAction = "report" // :lenient: the request goes out, the findings are reported
)

// DLPConfig configures data-loss prevention of requests.
type DLPConfig struct {
	Action DLPAction
	// Secrets turns on the gitleaks rule set (cloud keys, tokens, private keys...).
	Secrets bool
	// PII turns on e-mail addresses, card numbers (Luhn), IBANs (mod 97) and
	// phone numbers.
	PII bool
	// Patterns are extra rules: name -> regular expression (RE2 syntax).
	Patterns map[string]string
}

// OriginTLS is how the proxy originates TLS to the origins Domain matches:
// the guest speaks plain HTTP to the proxy and the proxy connects with TLS,
// checks Pins (when any) and presents ClientCert (when set). CONNECT to such
// an origin is refused, since the proxy could not check either through a
// tunnel.
type OriginTLS struct {
	Domain     string
	Pins       []Pin
	ClientCert *tls.Certificate
}

// Limits bound what an agent may send and receive. Zero values take the
// defaults of DefaultLimits.
type Limits struct {
	// Rate is the sustained number of requests (and tunnels) per second;
	// Burst how many may come at once. Rate 0 means no rate limit.
	Rate  float64
	Burst int
	// MaxRequestBytes and MaxResponseBytes cap bodies.
	MaxRequestBytes  int64
	MaxResponseBytes int64
	// DialTimeout bounds connecting to an origin; ResponseTimeout waiting for
	// its response header; TunnelIdleTimeout a CONNECT tunnel without traffic.
	DialTimeout       time.Duration
	ResponseTimeout   time.Duration
	TunnelIdleTimeout time.Duration
	// MaxTunnels is how many CONNECT tunnels the agent may hold open at once.
	MaxTunnels int
}

// DefaultLimits are used for every zero field of a policy's Limits.
var DefaultLimits = Limits{
	MaxRequestBytes:   8 << 20,
	MaxResponseBytes:  32 << 20,
	DialTimeout:       10 * time.Second,
	ResponseTimeout:   60 * time.Second,
	TunnelIdleTimeout: 5 * time.Minute,
	MaxTunnels:        64,
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	if l.MaxRequestBytes == 0 {
		l.MaxRequestBytes = d.MaxRequestBytes
	}
	if l.MaxResponseBytes == 0 {
		l.MaxResponseBytes = d.MaxResponseBytes
	}
	if l.DialTimeout == 0 {
		l.DialTimeout = d.DialTimeout
	}
	if l.ResponseTimeout == 0 {
		l.ResponseTimeout = d.ResponseTimeout
	}
	if l.TunnelIdleTimeout == 0 {
		l.TunnelIdleTimeout = d.TunnelIdleTimeout
	}
	if l.MaxTunnels == 0 {
		l.MaxTunnels = d.MaxTunnels
	}
	return l
}

// Policy is one agent's egress ACL and what goes with it.
type Policy struct {
	Agent string
	Mode  Mode // Enforce when empty
	// Domains are patterns: exact names or "*." followed by a name.
	Domains []string
	// Methods allowed where the proxy sees HTTP; empty allows every method.
	Methods []string
	// Ports allowed; empty allows every port.
	Ports []int
	// AllowRanges are the only way to reach an IP literal or a refused
	// address class (loopback, private, metadata...).
	AllowRanges []netip.Prefix
	// RequireStep denies every request while the host has not programmed a
	// step (the sandbox between steps).
	RequireStep bool
	TLS         []OriginTLS
	DLP         DLPConfig
	// StripInjection removes prompt-injection text from text responses (see
	// InjectionRules).
	StripInjection bool
	Limits         Limits
	// Secrets are credentials the proxy adds to the requests of a step
	// allowed to reach their domain (see Secret).
	Secrets []Secret

	mtlsWanted bool // the config said :mtls true
}

// StepACL is the ACL of the step being executed; it narrows the agent's.
type StepACL struct {
	// Domains the step may reach; an empty list reaches nothing.
	Domains []string
	// Methods of the step; empty inherits the agent's.
	Methods []string
	// Ranges the step may reach by IP literal; each must lie inside one of
	// the agent's AllowRanges.
	Ranges []netip.Prefix
	// Rate and Burst add a limit of the step's own (0: none).
	Rate  float64
	Burst int
}

// compiled is a Policy checked and turned into matchers.
type compiled struct {
	Policy
	domains domain.Set
	methods map[string]bool
	tls     []compiledTLS
	dlp     *scanner
	secrets []compiledSecret
}

type compiledTLS struct {
	pattern domain.Pattern
	OriginTLS
}

var methodRE = regexp.MustCompile(`^[A-Z]+$`)

func compileMethods(ms []string) (map[string]bool, error) {
	if len(ms) == 0 {
		return nil, nil
	}
	out := make(map[string]bool, len(ms))
	for _, m := range ms {
		u := strings.ToUpper(m)
		if !methodRE.MatchString(u) {
			return nil, fmt.Errorf("method %q is not an HTTP method", m)
		}
		out[u] = true
	}
	return out, nil
}

func compilePatterns(ds []string) ([]domain.Pattern, error) {
	out := make([]domain.Pattern, 0, len(ds))
	for _, d := range ds {
		p, err := domain.ParsePattern(d)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

func compilePolicy(p Policy) (*compiled, error) {
	if p.Agent == "" {
		return nil, errors.New("egress: policy has no agent")
	}
	switch p.Mode {
	case "":
		p.Mode = Enforce
	case Enforce, Report:
	default:
		return nil, fmt.Errorf("egress: agent %s: mode %q: want enforce or report", p.Agent, p.Mode)
	}
	c := &compiled{Policy: p}
	var err error
	patterns, err := compilePatterns(p.Domains)
	if err != nil {
		return nil, fmt.Errorf("egress: agent %s: %w", p.Agent, err)
	}
	c.domains = domain.NewSet(patterns)
	if c.methods, err = compileMethods(p.Methods); err != nil {
		return nil, fmt.Errorf("egress: agent %s: %w", p.Agent, err)
	}
	for _, port := range p.Ports {
		if port < 1 || port > 65535 {
			return nil, fmt.Errorf("egress: agent %s: port %d must be 1 to 65535", p.Agent, port)
		}
	}
	for _, t := range p.TLS {
		pat, err := domain.ParsePattern(t.Domain)
		if err != nil {
			return nil, fmt.Errorf("egress: agent %s: TLS origin: %w", p.Agent, err)
		}
		c.tls = append(c.tls, compiledTLS{pattern: pat, OriginTLS: t})
	}
	c.Limits = p.Limits.withDefaults()
	if err := c.compileSecrets(); err != nil {
		return nil, fmt.Errorf("egress: agent %s: %w", p.Agent, err)
	}
	if c.dlp, err = newScanner(p.DLP); err != nil {
		return nil, fmt.Errorf("egress: agent %s: %w", p.Agent, err)
	}
	return c, nil
}

func (c *compiled) domainAllowed(host string) bool { return c.domains.Match(host) }

func (c *compiled) rangeAllows(a netip.Addr) bool {
	e, hasEmbedded := embedded(a)
	for _, r := range c.AllowRanges {
		if r.Contains(a) || (hasEmbedded && r.Contains(e)) {
			return true
		}
	}
	return false
}

func (c *compiled) originTLS(host string) (compiledTLS, bool) {
	for _, t := range c.tls {
		if t.pattern.Match(host) {
			return t, true
		}
	}
	return compiledTLS{}, false
}

// compiledStep is a StepACL checked against its agent's policy.
type compiledStep struct {
	name    string
	domains domain.Set
	methods map[string]bool
	ranges  []netip.Prefix
}

func (s *compiledStep) domainAllowed(host string) bool { return s.domains.Match(host) }

func (s *compiledStep) rangeAllows(a netip.Addr) bool {
	e, hasEmbedded := embedded(a)
	for _, r := range s.ranges {
		if r.Contains(a) || (hasEmbedded && r.Contains(e)) {
			return true
		}
	}
	return false
}

// compileStep checks that acl only narrows the agent's ACL.
func (c *compiled) compileStep(name string, acl StepACL) (*compiledStep, error) {
	s := &compiledStep{name: name}
	var err error
	patterns, err := compilePatterns(acl.Domains)
	if err != nil {
		return nil, err
	}
	s.domains = domain.NewSet(patterns)
	for _, q := range patterns {
		if !c.domains.Covers(q) {
			return nil, fmt.Errorf("%w: step %s allows %s, which agent %s's domains do not cover", ErrWiden, name, q, c.Agent)
		}
	}
	if s.methods, err = compileMethods(acl.Methods); err != nil {
		return nil, err
	}
	if c.methods != nil {
		for m := range s.methods {
			if !c.methods[m] {
				return nil, fmt.Errorf("%w: step %s allows method %s, which agent %s does not", ErrWiden, name, m, c.Agent)
			}
		}
	}
	for _, r := range acl.Ranges {
		r = r.Masked()
		if !slices.ContainsFunc(c.AllowRanges, func(a netip.Prefix) bool { return a.Bits() <= r.Bits() && a.Contains(r.Addr()) }) {
			return nil, fmt.Errorf("%w: step %s allows range %s, which agent %s's ranges do not hold", ErrWiden, name, r, c.Agent)
		}
		s.ranges = append(s.ranges, r)
	}
	if acl.Rate < 0 || acl.Burst < 0 {
		return nil, fmt.Errorf("step %s: rate and burst cannot be negative", name)
	}
	return s, nil
}

// PolicyFromConfig derives an agent's policy from its configuration: the
// allowlist, mTLS and pins of config.Config.Egress (the same answer
// admission uses: a config without network allows nothing), the pins for
// every allowed domain, and the DLP action of :orchestrator :dlp. The config has no place for a
// client certificate: when :mtls is true, the caller must set ClientCert on
// the policy's TLS entries (NeedsClientCert reports it).
func PolicyFromConfig(cfg *config.Config) (Policy, error) {
	p := Policy{Agent: cfg.AgentID, Mode: Enforce}
	eg := cfg.Egress() // the one answer: is the network on, and what is allowed
	domains, pins, mtls := eg.AllowDomains, eg.TLSPins, eg.MTLS
	p.Domains = append([]string(nil), domains...)
	var parsed []Pin
	for _, s := range pins {
		pin, err := ParsePin(s)
		if err != nil {
			return Policy{}, fmt.Errorf("network.egress.tls_pins: %w", err)
		}
		parsed = append(parsed, pin)
	}
	if len(parsed) > 0 || mtls {
		for _, d := range domains {
			p.TLS = append(p.TLS, OriginTLS{Domain: d, Pins: parsed})
		}
	}
	if dlp := cfg.Orchestrator.DLP; dlp.Enabled {
		p.DLP = DLPConfig{Secrets: true, PII: true}
		switch dlp.Policy {
		case config.DLPStrict, "":
			p.DLP.Action = DLPBlock
		case config.DLPModerate:
			p.DLP.Action = DLPRedact
		case config.DLPLenient:
			p.DLP.Action = DLPLog
		default:
			return Policy{}, fmt.Errorf("orchestrator.dlp.policy: unknown policy %q", dlp.Policy)
		}
	}
	if mtls {
		p.mtlsWanted = true
	}
	return p, nil
}

// NeedsClientCert reports whether the configuration asked for mTLS and some
// TLS origin still has no client certificate.
func (p Policy) NeedsClientCert() bool {
	if !p.mtlsWanted {
		return false
	}
	for _, t := range p.TLS {
		if t.ClientCert == nil {
			return true
		}
	}
	return false
}

// SetClientCert presents cert to every TLS origin of the policy.
func (p *Policy) SetClientCert(cert *tls.Certificate) {
	for i := range p.TLS {
		p.TLS[i].ClientCert = cert
	}
}

// isHTTPMethod reports whether m is one of net/http's method names; the
// proxy refuses others before the ACL sees them.
func isHTTPMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}
