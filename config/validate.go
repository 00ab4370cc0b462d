package config

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/ccos-project/ccos/domain"
	"github.com/ccos-project/ccos/rtfs"
)

// The codes of the semantic rules. The first group are the reference codes
// of the MicroVM validation (issue 3); the rest are what a real VM host and
// the governance kernel need. Range checks (vCPUs, memory, vsock CID,
// approvals, budgets) are declared in schema.rtfs with the same codes.
const (
	CodeInvalidIsolationMode     = "INVALID_ISOLATION_MODE"
	CodeNonEphemeralFS           = "NON_EPHEMERAL_FS"
	CodeCapabilitiesNotReadonly  = "CAPABILITIES_NOT_READONLY"
	CodeMissingCapabilitiesMount = "MISSING_CAPABILITIES_MOUNT"
	CodeInvalidVCPUs             = "INVALID_VCPUS"
	CodeInvalidMemory            = "INVALID_MEMORY"
	CodeInvalidVsockCID          = "INVALID_VSOCK_CID"
	CodeNICWithoutNetwork        = "NIC_ENABLED_BUT_NETWORK_DISABLED"
	CodeInvalidEgressMethod      = "INVALID_EGRESS_METHOD"
	CodeEmptyAllowedDomains      = "EMPTY_ALLOWED_DOMAINS"
	CodeMissingRootfsHash        = "MISSING_ROOTFS_HASH"
	CodeInvalidHashFormat        = "INVALID_HASH_FORMAT"
	CodeDLPDisabled              = "DLP_DISABLED"
	CodeNonStrictDLP             = "NON_STRICT_DLP"
	CodeMarketplaceNotReadonly   = "MARKETPLACE_NOT_READONLY"
	CodeHighVCPUAllocation       = "HIGH_VCPU_ALLOCATION"
	CodeHighMemoryAllocation     = "HIGH_MEMORY_ALLOCATION"

	CodeReservedVsockCID     = "RESERVED_VSOCK_CID"
	CodeMissingMicroVM       = "MISSING_MICROVM_BLOCK"
	CodeMissingProxyNS       = "MISSING_PROXY_NS"
	CodeRootfsWritable       = "ROOTFS_WRITABLE"
	CodeInvalidTLSPin        = "INVALID_TLS_PIN"
	CodeInvalidDomain        = "INVALID_DOMAIN"
	CodeDomainNotAllowed     = "DOMAIN_NOT_IN_NETWORK_ALLOWLIST"
	CodeFeatureMissing       = "FEATURE_MISSING"
	CodeFeatureUnused        = "FEATURE_UNUSED"
	CodeMissingChainPath     = "MISSING_CHAIN_PATH"
	CodeVsockStreamNoVsock   = "VSOCK_STREAM_WITHOUT_VSOCK"
	CodeNegativeBudget       = "NEGATIVE_BUDGET"
	CodeInvalidApprovals     = "INVALID_APPROVALS"
	CodeMissingVerifyKey     = "MISSING_VERIFY_KEY"
	CodeInvalidVerifyKey     = "INVALID_VERIFY_KEY"
	CodeDuplicateCapability  = "DUPLICATE_CAPABILITY"
	CodeUnsupportedVersion   = "UNSUPPORTED_VERSION"
	CodeInvalidAgentID       = "INVALID_AGENT_ID"
	CodeInvalidEnvVar        = "INVALID_ENV_VAR"
	CodeEnvWithoutVars       = "ENV_ENABLED_WITHOUT_VARS"
	CodeEnvVarsDisabled      = "ENV_VARS_NOT_ENABLED"
	CodeSecretEnvVar         = "SECRET_ENV_VAR"
	CodeSecretSource         = "SECRET_SOURCE"
	CodeSecretDomain         = "SECRET_DOMAIN_NOT_ALLOWED"
	CodeSecretHeader         = "SECRET_HEADER_RESERVED"
	CodeDuplicateSecret      = "DUPLICATE_SECRET"
	CodeSecretReadable       = "SECRET_READABLE"
	highVCPUs, highMemoryMiB = 4, 1024
)

// rules are the semantic checks, each a small function over the decoded
// config. They run only on configs that passed the schema check, so every
// field has its type and its default.
var rules = []func(*Config, *report){
	ruleMicroVMIsolation,
	ruleMicroVMResources,
	ruleMicroVMDevices,
	ruleMicroVMAttestation,
	ruleMicroVMHardening,
	ruleDomains,
	ruleTLSPins,
	ruleFeatures,
	ruleChainStorage,
	ruleApprovals,
	ruleCapabilityEntries,
	ruleEnv,
	ruleSecrets,
}

// Validate runs the semantic rules on a decoded config and returns their
// diagnostics, sorted.
func Validate(cfg *Config) Diagnostics {
	r := &report{cfg: cfg}
	for _, rule := range rules {
		rule(cfg, r)
	}
	r.diags.Sort()
	return r.diags
}

// report collects diagnostics, placing each at the span of its field path.
type report struct {
	cfg   *Config
	diags Diagnostics
}

func (r *report) add(sev Severity, code, path, hint, format string, args ...any) {
	r.diags = append(r.diags, Diagnostic{Code: code, Severity: sev, Path: path,
		Message: fmt.Sprintf(format, args...), Hint: hint, Span: r.cfg.Span(path)})
}

func (r *report) errorf(code, path, hint, format string, args ...any) {
	r.add(SeverityError, code, path, hint, format, args...)
}

func (r *report) warnf(code, path, hint, format string, args ...any) {
	r.add(SeverityWarning, code, path, hint, format, args...)
}

// ruleMicroVMIsolation: a :microvm block needs microVM isolation with an
// ephemeral file system and a read-only capabilities mount, and microVM
// isolation needs a :microvm block to boot.
func ruleMicroVMIsolation(c *Config, r *report) {
	iso := c.Orchestrator.Isolation
	if c.MicroVM == nil {
		if iso.Mode == IsolationMicroVM {
			r.errorf(CodeMissingMicroVM, "orchestrator.isolation.mode", "add :microvm {:kernel {:image ...} :rootfs {:image ...}}",
				"isolation mode :microvm needs a :microvm block naming the kernel and rootfs to boot")
		}
		return
	}
	if iso.Mode != IsolationMicroVM {
		r.errorf(CodeInvalidIsolationMode, "orchestrator.isolation.mode", "set :orchestrator :isolation :mode to :microvm",
			"a :microvm block is present but the isolation mode is :%s", iso.Mode)
	}
	if !iso.FS.Ephemeral {
		r.errorf(CodeNonEphemeralFS, "orchestrator.isolation.fs.ephemeral", "set :ephemeral true",
			"microVM deployments need an ephemeral file system, so that nothing persists between runs")
	}
	mount, ok := iso.FS.Mounts["capabilities"]
	switch {
	case !ok:
		r.warnf(CodeMissingCapabilitiesMount, "orchestrator.isolation.fs.mounts", "add :mounts {:capabilities {:mode :ro}}",
			"no :capabilities mount is configured; capability contracts should come from a read-only mount")
	case mount.Mode != MountRO:
		r.errorf(CodeCapabilitiesNotReadonly, "orchestrator.isolation.fs.mounts.capabilities.mode", "set :mode :ro",
			"the capabilities mount is :%s; the guest must not be able to change capability contracts", mount.Mode)
	}
}

// ruleMicroVMResources warns about allocations beyond the profile's bounds;
// the hard limits are in the schema.
func ruleMicroVMResources(c *Config, r *report) {
	if c.MicroVM == nil {
		return
	}
	res := c.MicroVM.Resources
	if res.VCPUs > highVCPUs {
		r.warnf(CodeHighVCPUAllocation, "microvm.resources.vcpus", fmt.Sprintf("the MicroVM profile plans for 1-2 vCPUs; use at most %d", highVCPUs),
			"high vCPU allocation: %d vCPUs", res.VCPUs)
	}
	if res.MemMB > highMemoryMiB {
		r.warnf(CodeHighMemoryAllocation, "microvm.resources.mem_mb", fmt.Sprintf("the MicroVM profile plans for 128-512 MiB; use at most %d", highMemoryMiB),
			"high memory allocation: %d MiB", res.MemMB)
	}
}

// ruleMicroVMDevices: vsock needs a CID; a NIC needs the proxy network with
// a non-empty allowlist and a namespace to be bridged into.
func ruleMicroVMDevices(c *Config, r *report) {
	if c.MicroVM == nil {
		return
	}
	dev := c.MicroVM.Devices
	if dev.Vsock.Enabled && dev.Vsock.CID == nil {
		r.errorf(CodeInvalidVsockCID, "microvm.devices.vsock", "add :cid 3 (or any free CID of 3 or more)",
			"vsock is enabled but has no :cid")
	}
	if !dev.NIC.Enabled {
		return
	}
	if dev.NIC.ProxyNS == nil || *dev.NIC.ProxyNS == "" {
		r.errorf(CodeMissingProxyNS, "microvm.devices.nic", "add :proxy_ns \"egress-proxy-ns\"",
			"the NIC is enabled but names no :proxy_ns; a guest NIC may only be bridged into the egress proxy's namespace")
	}
	if c.Network == nil || !c.Network.Enabled {
		r.errorf(CodeNICWithoutNetwork, "network.enabled", "add :network {:enabled true :egress {:via :proxy :allow-domains [...]}} or disable the NIC",
			"the NIC is enabled but the network is disabled")
		return
	}
	eg := c.Network.Egress
	if eg.Via != EgressProxy {
		r.errorf(CodeInvalidEgressMethod, "network.egress.via", "set :via :proxy",
			"microVM egress must go through the proxy, found :via :%s", eg.Via)
	}
	if len(eg.AllowDomains) == 0 {
		r.errorf(CodeEmptyAllowedDomains, "network.egress.allow-domains", "list at least one domain, or disable the NIC",
			"network egress is enabled with an empty domain allowlist")
	}
}

// ruleMicroVMAttestation: measured boot needs the expected rootfs digest,
// and any digest given must be well-formed.
func ruleMicroVMAttestation(c *Config, r *report) {
	if c.MicroVM == nil {
		return
	}
	att := c.MicroVM.Attestation
	if att.ExpectRootfsHash == nil {
		if att.Enabled {
			r.errorf(CodeMissingRootfsHash, "microvm.attestation", "add :expect_rootfs_hash \"sha256:<64 hex digits>\" (ccos image build prints it)",
				"attestation is enabled but :expect_rootfs_hash is missing")
		}
		return
	}
	if msg := checkRootfsHash(*att.ExpectRootfsHash); msg != "" {
		r.errorf(CodeInvalidHashFormat, "microvm.attestation.expect_rootfs_hash", "write sha256: followed by the 64 lower-case hex digits of the digest",
			"%s", msg)
	}
}

func checkRootfsHash(h string) string {
	digest, ok := strings.CutPrefix(h, "sha256:")
	if !ok {
		return fmt.Sprintf("rootfs hash %q does not start with sha256:", h)
	}
	if len(digest) != 64 {
		return fmt.Sprintf("rootfs hash has %d characters after sha256:, a SHA-256 digest has 64 hex digits", len(digest))
	}
	if _, err := hex.DecodeString(digest); err != nil || strings.ToLower(digest) != digest {
		return "rootfs hash digest must be lower-case hexadecimal"
	}
	return ""
}

// ruleMicroVMHardening: the reference warnings about DLP, the marketplace
// and a writable root file system.
func ruleMicroVMHardening(c *Config, r *report) {
	if c.MicroVM == nil {
		return
	}
	dlp := c.Orchestrator.DLP
	if !dlp.Enabled {
		r.warnf(CodeDLPDisabled, "orchestrator.dlp.enabled", "set :dlp {:enabled true :policy :strict}",
			"DLP is disabled for a microVM deployment")
	} else if dlp.Policy != DLPStrict {
		r.warnf(CodeNonStrictDLP, "orchestrator.dlp.policy", "set :policy :strict",
			"DLP policy is :%s; microVM deployments should use :strict", dlp.Policy)
	}
	if ro := c.Marketplace.Readonly; ro != nil && !*ro {
		r.warnf(CodeMarketplaceNotReadonly, "marketplace.readonly", "set :readonly true",
			"the marketplace is writable; the guest could add capabilities")
	}
	if !c.MicroVM.Rootfs.RO {
		r.warnf(CodeRootfsWritable, "microvm.rootfs.ro", "set :ro true; keep writable state on the ephemeral file system",
			"the rootfs image is attached read-write")
	}
}

// checkDomain returns why name is not a valid allowlist entry, with a hint,
// or "" when it is valid.
func checkDomain(name string) (msg, hint string) {
	if name == "" {
		return "empty domain", "remove the empty entry"
	}
	if i := strings.Index(name, "://"); i >= 0 {
		return fmt.Sprintf("%q is a URL, not a domain", name), "write only the host name, such as " + strings.SplitN(name[i+3:], "/", 2)[0]
	}
	if strings.ContainsAny(name, "/:@ ") {
		if _, err := netip.ParseAddr(name); err != nil {
			return fmt.Sprintf("%q is not a domain name", name), "write only the host name, without port, path or user"
		}
	}
	if _, err := netip.ParseAddr(name); err == nil {
		return fmt.Sprintf("%q is an IP address; the allowlist takes domain names", name), "name the host by its domain"
	}
	host := name
	if rest, ok := strings.CutPrefix(name, "*."); ok {
		host = rest
	}
	if strings.Contains(host, "*") {
		return fmt.Sprintf("%q has a wildcard that is not a leading *.", name), "a wildcard may only be written as *.example.com"
	}
	if strings.HasSuffix(host, ".") {
		return fmt.Sprintf("%q ends with a dot", name), "write " + strings.TrimSuffix(name, ".")
	}
	// The one IDNA profile and name rules (package domain), as admission
	// and the egress proxy apply them.
	ascii, err := domain.Normalize(host)
	if err != nil {
		reason := err.Error()
		if de := (*domain.Error)(nil); errors.As(err, &de) {
			reason = de.Reason
		}
		return fmt.Sprintf("%q is not a valid domain name: %s", name, reason), "use letters, digits, '-' and '_' in labels of 1 to 63 characters, not starting or ending with '-'"
	}
	if !strings.Contains(ascii, ".") {
		if host != name {
			return fmt.Sprintf("%q would allow every name under a top-level domain", name), "narrow the wildcard, such as *.example.com"
		}
		return fmt.Sprintf("%q is a single-label name", name), "write the fully qualified name, such as " + ascii + ".example.com"
	}
	return "", ""
}

// ruleDomains checks every domain allowlist and that the :http capability
// stays within the agent-wide network allowlist.
func ruleDomains(c *Config, r *report) {
	check := func(path string, domains []string) {
		for i, d := range domains {
			if msg, hint := checkDomain(d); msg != "" {
				r.errorf(CodeInvalidDomain, fmt.Sprintf("%s.%d", path, i), hint, "%s", msg)
			}
		}
	}
	check("capabilities.http.egress.allow-domains", c.Capabilities.HTTP.Egress.AllowDomains)
	if c.Network != nil {
		check("network.egress.allow-domains", c.Network.Egress.AllowDomains)
	}
	for i, e := range c.Capabilities.Entries {
		for j, eff := range e.Effects {
			path := fmt.Sprintf("capabilities.entries.%d.effects.%d.1", i, j)
			for k, d := range effectDomains(eff) {
				if msg, hint := checkDomain(d.V); msg != "" {
					r.diags = append(r.diags, Diagnostic{Code: CodeInvalidDomain, Path: fmt.Sprintf("%s.domains.%d", path, k),
						Message: msg, Hint: hint, Span: spanOr(d.Span(), r.cfg.Span(path))})
				}
			}
		}
	}
	ruleEffectDomains(c, r)
	if c.Network == nil || !c.Network.Enabled || !c.Capabilities.HTTP.Enabled {
		return
	}
	network, _ := domain.ParseSet(c.Network.Egress.AllowDomains)
	for i, d := range c.Capabilities.HTTP.Egress.AllowDomains {
		if validDomain(d) && !covered(d, network) {
			r.errorf(CodeDomainNotAllowed, fmt.Sprintf("capabilities.http.egress.allow-domains.%d", i),
				"add it to :network :egress :allow-domains, or remove it here",
				"the :http capability allows %q, which the network allowlist does not; a capability cannot broaden the agent's egress", d)
		}
	}
}

// ruleEffectDomains: an enabled capability entry may only declare network
// effects on domains the agent's egress allows (spec 17 §4: no privilege
// broadening). The bound is the allowlist of Config.Egress, the one the
// proxy enforces.
func ruleEffectDomains(c *Config, r *report) {
	eg := c.Egress()
	bound := "the agent's egress allowlist does not include it"
	if !eg.Enabled {
		bound = "the agent has no network: " + eg.Off
	}
	allow, _ := domain.ParseSet(eg.AllowDomains)
	for i, e := range c.Capabilities.Entries {
		if !e.Enabled {
			continue
		}
		for j, eff := range e.Effects {
			path := fmt.Sprintf("capabilities.entries.%d.effects.%d.1", i, j)
			for k, d := range effectDomains(eff) {
				if validDomain(d.V) && !covered(d.V, allow) {
					r.diags = append(r.diags, Diagnostic{Code: CodeDomainNotAllowed, Path: fmt.Sprintf("%s.domains.%d", path, k),
						Message: fmt.Sprintf("capability :%s declares network access to %q, but %s", e.Capability, d.V, bound),
						Hint:    "add the domain to the agent's egress allowlist, or remove it from the effect",
						Span:    spanOr(d.Span(), r.cfg.Span(path))})
				}
			}
		}
	}
}

// validDomain reports whether name is a valid domain (invalid ones are
// reported once, by ruleDomains).
func validDomain(name string) bool {
	msg, _ := checkDomain(name)
	return msg == ""
}

func spanOr(sp, fallback rtfs.Span) rtfs.Span {
	if sp.IsZero() {
		return fallback
	}
	return sp
}

// effectDomains returns the strings of a :network effect's :domains.
func effectDomains(e Effect) []rtfs.String {
	if e.Kind != "network" || e.Scope == nil {
		return nil
	}
	v, ok := e.Scope.GetKeyword("domains")
	if !ok {
		return nil
	}
	vec, ok := v.(*rtfs.Vector)
	if !ok {
		return nil
	}
	var out []rtfs.String
	for _, it := range vec.Items {
		if s, ok := it.(rtfs.String); ok {
			out = append(out, s)
		}
	}
	return out
}

// covered reports whether name (a domain or a leading-"*." pattern) is
// within the allowlist: listed, or strictly under a listed wildcard (a
// wildcard only by an equal or wider one), in IDNA-normalized form.
func covered(name string, allow domain.Set) bool {
	p, err := domain.ParsePattern(name)
	return err == nil && allow.Covers(p)
}

// ruleTLSPins: a pin is sha256/ and the standard base64 of a 32-byte
// SHA-256 digest of a SubjectPublicKeyInfo (the HPKP pin format).
func ruleTLSPins(c *Config, r *report) {
	if c.Network == nil {
		return
	}
	for i, pin := range c.Network.Egress.TLSPins {
		path := fmt.Sprintf("network.egress.tls_pins.%d", i)
		b64, ok := strings.CutPrefix(pin, "sha256/")
		if !ok {
			r.errorf(CodeInvalidTLSPin, path, "write sha256/ followed by the base64 SHA-256 of the server's public key",
				"TLS pin %q does not start with sha256/", pin)
			continue
		}
		raw, err := base64.StdEncoding.Strict().DecodeString(b64)
		if err != nil || len(raw) != 32 {
			r.errorf(CodeInvalidTLSPin, path, "a pin is 44 characters of standard base64 ending in '=' (32 bytes)",
				"TLS pin %q is not the base64 of a 32-byte SHA-256 digest", pin)
		}
	}
}

// featureUses says, for each feature that gates a module, whether the
// config turns that module on.
func featureUses(c *Config) []struct {
	name, path string
	used       bool
} {
	netOn := c.Capabilities.HTTP.Enabled || c.Network != nil && c.Network.Enabled
	netPath := "capabilities.http.enabled"
	if !c.Capabilities.HTTP.Enabled && netOn {
		netPath = "network.enabled"
	}
	attOn := c.MicroVM != nil && c.MicroVM.Attestation.Enabled
	return []struct {
		name, path string
		used       bool
	}{
		{"network", netPath, netOn},
		{"fs", "capabilities.fs.enabled", c.Capabilities.FS.Enabled},
		{"llm", "capabilities.llm.enabled", c.Capabilities.LLM.Enabled},
		{"attestation", "microvm.attestation.enabled", attOn},
	}
}

// ruleFeatures: :features compiles modules in or out, so every enabled
// capability needs its feature; a feature nothing uses is only a warning.
func ruleFeatures(c *Config, r *report) {
	for _, f := range featureUses(c) {
		has := c.HasFeature(f.name)
		switch {
		case f.used && !has:
			r.errorf(CodeFeatureMissing, f.path, "add :"+f.name+" to :features",
				"%s is true but :features does not include :%s, so its module is not loaded", f.path, f.name)
		case !f.used && has:
			r.warnf(CodeFeatureUnused, "features."+indexOf(c.Features, f.name), "remove :"+f.name+" from :features, or enable what it is for",
				":features includes :%s but nothing enables it", f.name)
		}
	}
}

func indexOf(list []string, name string) string {
	for i, s := range list {
		if s == name {
			return fmt.Sprint(i)
		}
	}
	return ""
}

// ruleChainStorage: file-backed stores need a path; streaming over vsock
// needs the vsock device.
func ruleChainStorage(c *Config, r *report) {
	st := c.CausalChain.Storage
	switch st.Mode {
	case StorageAppendFile, StorageSQLite:
		if st.Path == "" {
			r.errorf(CodeMissingChainPath, "causal_chain.storage", "add :path \"./causal.chain\"",
				"storage mode :%s writes to a file but :path is missing", st.Mode)
		}
	case StorageVsockStream:
		if c.MicroVM == nil || !c.MicroVM.Devices.Vsock.Enabled {
			r.errorf(CodeVsockStreamNoVsock, "causal_chain.storage.mode", "enable :microvm :devices :vsock, or use :append_file",
				"storage mode :vsock_stream needs an enabled vsock device")
		}
	}
}

// ruleApprovals: approvals are signatures, so a policy that requires them
// needs a verification key.
func ruleApprovals(c *Config, r *report) {
	if c.Governance.Keys.VerifyPEM != "" {
		return
	}
	names := make([]string, 0, len(c.Governance.Policies))
	for n := range c.Governance.Policies {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if p := c.Governance.Policies[n]; p.RequiresApprovals > 0 {
			r.errorf(CodeMissingVerifyKey, "governance.policies."+n+".requires_approvals",
				"add :governance :keys {:verify \"-----BEGIN PUBLIC KEY-----...\"}",
				"policy :%s requires %d approval(s) but no :verify key is configured to check them", n, p.RequiresApprovals)
		}
	}
}

// ruleCapabilityEntries: one entry per capability.
func ruleCapabilityEntries(c *Config, r *report) {
	seen := map[string]int{}
	for i, e := range c.Capabilities.Entries {
		if j, dup := seen[e.Capability]; dup {
			r.errorf(CodeDuplicateCapability, fmt.Sprintf("capabilities.entries.%d.capability", i), "merge the two entries",
				"capability :%s is declared twice (first as entry %d)", e.Capability, j)
			continue
		}
		seen[e.Capability] = i
	}
}

// envVarName is a POSIX environment variable name.
var envVarName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// secretWords mark variable names that usually hold credentials; a plan
// that reads one can leak it through its value or output.
var secretWords = []string{"TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "API_KEY", "PRIVATE_KEY", "ACCESS_KEY"}

// ruleEnv: :capabilities :env names, exactly, the host environment
// variables ccos.system.get-env may read.
func ruleEnv(c *Config, r *report) {
	env := c.Capabilities.Env
	switch {
	case env.Enabled && len(env.Vars) == 0:
		r.warnf(CodeEnvWithoutVars, "capabilities.env.enabled", `list the variables a plan may read, as :vars ["LANG" "TZ"]`,
			":env is enabled but names no variable, so a plan can read none")
	case !env.Enabled && len(env.Vars) > 0:
		r.warnf(CodeEnvVarsDisabled, "capabilities.env.vars", "set :capabilities :env :enabled true, or remove :vars",
			":env names %d variable(s) but is not enabled, so a plan can read none", len(env.Vars))
	}
	for i, v := range env.Vars {
		path := fmt.Sprintf("capabilities.env.vars.%d", i)
		if !envVarName.MatchString(v) {
			r.errorf(CodeInvalidEnvVar, path, "write the exact variable name: letters, digits and '_', not starting with a digit (no $, =, or patterns)",
				"%q is not an environment variable name", v)
			continue
		}
		upper := strings.ToUpper(v)
		for _, w := range secretWords {
			if strings.Contains(upper, w) {
				r.warnf(CodeSecretEnvVar, path, "pass secrets through a capability that never returns them to the plan, or remove the variable",
					"%s looks like a credential (%s); a plan that reads it can print it or send it away", v, w)
				break
			}
		}
	}
}

// resolveKeys parses :governance :keys :verify into a public key.
func resolveKeys(c *Config) Diagnostics {
	text := c.Governance.Keys.VerifyPEM
	if text == "" {
		return nil
	}
	key, msg := parseVerifyKey(text)
	if msg != "" {
		path := "governance.keys.verify"
		return Diagnostics{{Code: CodeInvalidVerifyKey, Path: path, Span: c.Span(path), Message: msg,
			Hint: "give a PEM \"PUBLIC KEY\" block (PKIX), such as the output of openssl pkey -pubout"}}
	}
	c.verifyKey = key
	return nil
}

func parseVerifyKey(text string) (any, string) {
	block, rest := pem.Decode([]byte(text))
	if block == nil {
		return nil, "the :verify key is not PEM-encoded"
	}
	if strings.TrimSpace(string(rest)) != "" {
		return nil, "the :verify key has text after its PEM block"
	}
	if block.Type != "PUBLIC KEY" {
		return nil, fmt.Sprintf("the :verify PEM block is %q, not \"PUBLIC KEY\"", block.Type)
	}
	key, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, "the :verify key does not parse: " + err.Error()
	}
	if k, ok := key.(*rsa.PublicKey); ok && k.N.BitLen() < 2048 {
		return nil, fmt.Sprintf("the :verify RSA key has %d bits; at least 2048 are required", k.N.BitLen())
	}
	return key, ""
}

// reservedSecretHeaders are headers the proxy itself sets or that carry
// the request's framing: a secret cannot be put in them.
var reservedSecretHeaders = map[string]bool{
	"host": true, "content-length": true, "transfer-encoding": true, "connection": true, "keep-alive": true,
	"te": true, "trailer": true, "upgrade": true, "proxy-authorization": true, "proxy-authenticate": true, "proxy-connection": true,
}

// ruleSecrets: each secret is read from exactly one place on the host, is
// bound to a domain the agent's egress allows, goes in a header the proxy
// may set, and cannot be read by a plan (through get-env or host files).
func ruleSecrets(c *Config, r *report) {
	// The bound is Config.Egress, the allowlist the proxy enforces.
	eg := c.Egress()
	bound := "it is not in the agent's egress allowlist"
	if !eg.Enabled {
		bound = "the config enables no egress (" + eg.Off + ")"
	}
	allow, _ := domain.ParseSet(eg.AllowDomains)
	names := map[string]int{}
	targets := map[string]int{}
	for i, sec := range c.Secrets {
		path := fmt.Sprintf("secrets.%d", i)
		switch {
		case sec.Env == "" && sec.File == "":
			r.errorf(CodeSecretSource, path, `add :env "VAR" or :file "path" (one of them)`, "secret %s says neither where to read it (:env) nor from which file (:file)", sec.Name)
		case sec.Env != "" && sec.File != "":
			r.errorf(CodeSecretSource, path+".file", "keep one of :env and :file", "secret %s names both an environment variable and a file; it is read from one place", sec.Name)
		}
		if sec.Env != "" && !envVarName.MatchString(sec.Env) {
			r.errorf(CodeInvalidEnvVar, path+".env", "write the exact variable name: letters, digits and '_', not starting with a digit", "%q is not an environment variable name", sec.Env)
		}
		if msg, hint := checkDomain(sec.Domain); msg != "" {
			r.errorf(CodeInvalidDomain, path+".domain", hint, "%s", msg)
		} else if !covered(sec.Domain, allow) {
			r.errorf(CodeSecretDomain, path+".domain", "bind the secret to a domain the agent may reach, or add the domain to the allowlist",
				"secret %s is bound to %s, but %s: the proxy would never send it", sec.Name, sec.Domain, bound)
		}
		if reservedSecretHeaders[strings.ToLower(sec.Header)] {
			r.errorf(CodeSecretHeader, path+".header", "use Authorization, X-Api-Key or another request header",
				"secret %s would go in the %s header, which carries the request's framing or is the proxy's own", sec.Name, sec.Header)
		}
		if j, dup := names[sec.Name]; dup {
			r.errorf(CodeDuplicateSecret, path+".name", "give every secret its own name", "secret %s is declared twice (also secrets.%d)", sec.Name, j)
		}
		names[sec.Name] = i
		target := strings.ToLower(sec.Domain) + " " + strings.ToLower(sec.Header)
		if j, dup := targets[target]; dup {
			r.errorf(CodeDuplicateSecret, path+".header", "keep one secret per domain and header",
				"secret %s and secrets.%d both go in the %s header to %s", sec.Name, j, sec.Header, sec.Domain)
		}
		targets[target] = i
		if sec.Env != "" && c.Capabilities.Env.Enabled && slices.Contains(c.Capabilities.Env.Vars, sec.Env) {
			r.errorf(CodeSecretReadable, path+".env", "remove the variable from :capabilities :env :vars",
				"secret %s is read from %s, which plans may also read with ccos.system.get-env (:capabilities :env :vars)", sec.Name, sec.Env)
		}
		if sec.File != "" && c.Capabilities.FS.Enabled {
			for _, root := range c.Capabilities.FS.Paths {
				if within(sec.File, root) {
					r.errorf(CodeSecretReadable, path+".file", "keep the secret's file outside :capabilities :fs :paths",
						"secret %s is read from %s, which lies under %s, a path plans may be granted (:capabilities :fs :paths)", sec.Name, sec.File, root)
					break
				}
			}
		}
	}
}

// within reports whether path p is root or below it.
func within(p, root string) bool {
	p, root = filepath.Clean(p), filepath.Clean(root)
	return p == root || strings.HasPrefix(p, strings.TrimSuffix(root, "/")+"/")
}
