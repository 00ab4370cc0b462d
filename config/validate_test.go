package config

import (
	"strings"
	"testing"
)

const validPEM = `"-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEASQTTXprXuCJdbSZU90KMmxmM875VdYxwbLElaxQHylM=
-----END PUBLIC KEY-----
"`

// A 1024-bit RSA public key: parses, but is too weak.
const weakRSAPEM = `"-----BEGIN PUBLIC KEY-----
MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDJDdBT/2tTyhco7CqrYziOTCmm
uHj/5wlCAiQFG3MgM/a9YXR+0mY+hfV+naU81ZdEvWjuMq4NZYSVYXplLboEtdld
rCQcNejSUem64jvXrVKSEXFxPL64MK9n7/fIz2b8sy6leTlFiEkKe39MNvF57R//
a+w0BjTjxXYbyFyfwQIDAQAB
-----END PUBLIC KEY-----
"`

// A PEM block of the wrong type (its body is 16 counting bytes, not a key).
const privatePEM = `"-----BEGIN PRIVATE KEY-----
AAECAwQFBgcICQoLDA0ODw==
-----END PRIVATE KEY-----
"`

// ruleCase is one config edit and the diagnostic it must (or must not)
// produce.
type ruleCase struct {
	name  string
	base  string
	edits []edit
	code  string
	sev   Severity
	path  string // expected path of the diagnostic, when failing
	msg   string // a part of the expected message, when set
	pass  bool   // the code must be absent
}

var ruleCases = []ruleCase{
	// INVALID_ISOLATION_MODE
	{name: "microvm block needs microvm mode", base: "microvm", edits: []edit{{"orchestrator.isolation.mode", ":wasm"}},
		code: CodeInvalidIsolationMode, path: "orchestrator.isolation.mode"},
	{name: "microvm mode with block", base: "microvm", code: CodeInvalidIsolationMode, pass: true},
	{name: "wasm without microvm block", base: "minimal", code: CodeInvalidIsolationMode, pass: true},
	// MISSING_MICROVM_BLOCK
	{name: "microvm mode needs a block", base: "minimal", edits: []edit{{"orchestrator.isolation.mode", ":microvm"}},
		code: CodeMissingMicroVM, path: "orchestrator.isolation.mode"},
	{name: "microvm mode with a block", base: "microvm-min", code: CodeMissingMicroVM, pass: true},
	// NON_EPHEMERAL_FS
	{name: "persistent fs", base: "microvm", edits: []edit{{"orchestrator.isolation.fs.ephemeral", "false"}},
		code: CodeNonEphemeralFS, path: "orchestrator.isolation.fs.ephemeral"},
	{name: "ephemeral by default", base: "microvm", edits: []edit{{"orchestrator.isolation.fs.ephemeral", ""}},
		code: CodeNonEphemeralFS, pass: true},
	// CAPABILITIES_NOT_READONLY / MISSING_CAPABILITIES_MOUNT
	{name: "rw capabilities", base: "microvm", edits: []edit{{"orchestrator.isolation.fs.mounts.capabilities.mode", ":rw"}},
		code: CodeCapabilitiesNotReadonly, path: "orchestrator.isolation.fs.mounts.capabilities.mode"},
	{name: "ro capabilities", base: "microvm", code: CodeCapabilitiesNotReadonly, pass: true},
	{name: "no capabilities mount", base: "microvm", edits: []edit{{"orchestrator.isolation.fs.mounts", "{:data {:mode :rw}}"}},
		code: CodeMissingCapabilitiesMount, sev: SeverityWarning, path: "orchestrator.isolation.fs.mounts"},
	{name: "capabilities mount present", base: "microvm", code: CodeMissingCapabilitiesMount, pass: true},
	// INVALID_VCPUS
	{name: "zero vcpus", base: "microvm", edits: []edit{{"microvm.resources.vcpus", "0"}}, code: CodeInvalidVCPUs, path: "microvm.resources.vcpus"},
	{name: "33 vcpus", base: "microvm", edits: []edit{{"microvm.resources.vcpus", "33"}}, code: CodeInvalidVCPUs, path: "microvm.resources.vcpus"},
	{name: "vcpus as string", base: "microvm", edits: []edit{{"microvm.resources.vcpus", `"2"`}}, code: CodeInvalidVCPUs, path: "microvm.resources.vcpus"},
	{name: "32 vcpus", base: "microvm", edits: []edit{{"microvm.resources.vcpus", "32"}}, code: CodeInvalidVCPUs, pass: true},
	{name: "1 vcpu", base: "microvm", code: CodeInvalidVCPUs, pass: true},
	// INVALID_MEMORY
	{name: "32 MiB", base: "microvm", edits: []edit{{"microvm.resources.mem_mb", "32"}}, code: CodeInvalidMemory, path: "microvm.resources.mem_mb"},
	{name: "fractional MiB", base: "microvm", edits: []edit{{"microvm.resources.mem_mb", "128.5"}}, code: CodeInvalidMemory, path: "microvm.resources.mem_mb"},
	{name: "64 MiB", base: "microvm", edits: []edit{{"microvm.resources.mem_mb", "64"}}, code: CodeInvalidMemory, pass: true},
	// HIGH_VCPU_ALLOCATION / HIGH_MEMORY_ALLOCATION
	{name: "8 vcpus", base: "microvm", edits: []edit{{"microvm.resources.vcpus", "8"}},
		code: CodeHighVCPUAllocation, sev: SeverityWarning, path: "microvm.resources.vcpus"},
	{name: "4 vcpus", base: "microvm", edits: []edit{{"microvm.resources.vcpus", "4"}}, code: CodeHighVCPUAllocation, pass: true},
	{name: "2 GiB", base: "microvm", edits: []edit{{"microvm.resources.mem_mb", "2048"}},
		code: CodeHighMemoryAllocation, sev: SeverityWarning, path: "microvm.resources.mem_mb"},
	{name: "1 GiB", base: "microvm", edits: []edit{{"microvm.resources.mem_mb", "1024"}}, code: CodeHighMemoryAllocation, pass: true},
	// INVALID_VSOCK_CID / RESERVED_VSOCK_CID
	{name: "cid 0", base: "microvm", edits: []edit{{"microvm.devices.vsock.cid", "0"}}, code: CodeInvalidVsockCID, path: "microvm.devices.vsock.cid"},
	{name: "negative cid", base: "microvm", edits: []edit{{"microvm.devices.vsock.cid", "-4"}}, code: CodeInvalidVsockCID, path: "microvm.devices.vsock.cid"},
	{name: "cid any", base: "microvm", edits: []edit{{"microvm.devices.vsock.cid", "4294967295"}}, code: CodeInvalidVsockCID, path: "microvm.devices.vsock.cid"},
	{name: "enabled vsock without cid", base: "microvm", edits: []edit{{"microvm.devices.vsock.cid", ""}}, code: CodeInvalidVsockCID, path: "microvm.devices.vsock"},
	{name: "disabled vsock without cid", base: "microvm",
		edits: []edit{{"microvm.devices.vsock", "{:enabled false}"}, {"causal_chain.storage.mode", ":append_file"}, {"causal_chain.storage.path", `"c.log"`}},
		code:  CodeInvalidVsockCID, pass: true},
	{name: "cid 2 is the host", base: "microvm", edits: []edit{{"microvm.devices.vsock.cid", "2"}}, code: CodeReservedVsockCID, path: "microvm.devices.vsock.cid"},
	{name: "cid 1 is local", base: "microvm", edits: []edit{{"microvm.devices.vsock.cid", "1"}}, code: CodeReservedVsockCID, path: "microvm.devices.vsock.cid"},
	{name: "cid 3", base: "microvm", code: CodeReservedVsockCID, pass: true},
	// NIC_ENABLED_BUT_NETWORK_DISABLED
	{name: "nic with network off", base: "microvm", edits: []edit{{"network.enabled", "false"}}, code: CodeNICWithoutNetwork, path: "network.enabled"},
	{name: "nic without network block", base: "microvm", edits: []edit{{"network", ""}, {"features", "[:attestation]"}, {"capabilities.http.enabled", "false"}},
		code: CodeNICWithoutNetwork, path: "network.enabled"},
	{name: "nic with network on", base: "microvm", code: CodeNICWithoutNetwork, pass: true},
	// MISSING_PROXY_NS
	{name: "nic without namespace", base: "microvm", edits: []edit{{"microvm.devices.nic.proxy_ns", ""}}, code: CodeMissingProxyNS, path: "microvm.devices.nic"},
	{name: "nic with namespace", base: "microvm", code: CodeMissingProxyNS, pass: true},
	// INVALID_EGRESS_METHOD
	{name: "direct egress", base: "microvm", edits: []edit{{"network.egress.via", ":direct"}}, code: CodeInvalidEgressMethod, path: "network.egress.via"},
	{name: "proxy egress", base: "microvm", code: CodeInvalidEgressMethod, pass: true},
	// EMPTY_ALLOWED_DOMAINS
	{name: "empty allowlist", base: "microvm", edits: []edit{{"network.egress.allow-domains", "[]"}, {"capabilities.http.egress.allow-domains", "[]"}},
		code: CodeEmptyAllowedDomains, path: "network.egress.allow-domains"},
	{name: "nic off, empty allowlist", base: "microvm-min", edits: []edit{{"network", "{:enabled false}"}}, code: CodeEmptyAllowedDomains, pass: true},
	// MISSING_ROOTFS_HASH
	{name: "attestation without hash", base: "microvm", edits: []edit{{"microvm.attestation.expect_rootfs_hash", ""}}, code: CodeMissingRootfsHash, path: "microvm.attestation"},
	{name: "no attestation, no hash", base: "microvm",
		edits: []edit{{"microvm.attestation", "{:enabled false}"}, {"features", "[:network]"}}, code: CodeMissingRootfsHash, pass: true},
	// INVALID_HASH_FORMAT
	{name: "placeholder hash", base: "microvm", edits: []edit{{"microvm.attestation.expect_rootfs_hash", `"sha256:..."`}},
		code: CodeInvalidHashFormat, path: "microvm.attestation.expect_rootfs_hash"},
	{name: "md5 hash", base: "microvm", edits: []edit{{"microvm.attestation.expect_rootfs_hash", `"md5:d41d8cd98f00b204e9800998ecf8427e"`}},
		code: CodeInvalidHashFormat, path: "microvm.attestation.expect_rootfs_hash"},
	{name: "upper-case hash", base: "microvm", edits: []edit{{"microvm.attestation.expect_rootfs_hash", `"sha256:32C1E93F492092AF1CA282D02427BA535F453598FD276C28B842D7325E03615A"`}},
		code: CodeInvalidHashFormat, path: "microvm.attestation.expect_rootfs_hash"},
	{name: "well-formed hash", base: "microvm", code: CodeInvalidHashFormat, pass: true},
	// DLP_DISABLED / NON_STRICT_DLP
	{name: "dlp off", base: "microvm", edits: []edit{{"orchestrator.dlp.enabled", "false"}}, code: CodeDLPDisabled, sev: SeverityWarning, path: "orchestrator.dlp.enabled"},
	{name: "dlp on", base: "microvm", code: CodeDLPDisabled, pass: true},
	{name: "dlp off outside microvm", base: "minimal", code: CodeDLPDisabled, pass: true},
	{name: "moderate dlp", base: "microvm", edits: []edit{{"orchestrator.dlp.policy", ":moderate"}}, code: CodeNonStrictDLP, sev: SeverityWarning, path: "orchestrator.dlp.policy"},
	{name: "strict dlp", base: "microvm", code: CodeNonStrictDLP, pass: true},
	// MARKETPLACE_NOT_READONLY
	{name: "writable marketplace", base: "microvm", edits: []edit{{"marketplace.readonly", "false"}},
		code: CodeMarketplaceNotReadonly, sev: SeverityWarning, path: "marketplace.readonly"},
	{name: "unspecified marketplace", base: "microvm", edits: []edit{{"marketplace.readonly", ""}}, code: CodeMarketplaceNotReadonly, pass: true},
	// ROOTFS_WRITABLE
	{name: "rw rootfs", base: "microvm", edits: []edit{{"microvm.rootfs.ro", "false"}}, code: CodeRootfsWritable, sev: SeverityWarning, path: "microvm.rootfs.ro"},
	{name: "ro rootfs", base: "microvm", code: CodeRootfsWritable, pass: true},
	// INVALID_TLS_PIN
	{name: "placeholder pin", base: "microvm", edits: []edit{{"network.egress.tls_pins", `["sha256/abc123def456789..."]`}},
		code: CodeInvalidTLSPin, path: "network.egress.tls_pins.0"},
	{name: "sha1 pin", base: "microvm", edits: []edit{{"network.egress.tls_pins", `["sha1/3zU59b+Gws+cE7m5Nnc4ufbJpMVQY1lvXWVB98Jovj0="]`}},
		code: CodeInvalidTLSPin, path: "network.egress.tls_pins.0"},
	{name: "short pin", base: "microvm", edits: []edit{{"network.egress.tls_pins", `["sha256/3zU59b+Gws+cE7m5Nnc4ufbJpMU=" "sha256/3zU59b+Gws+cE7m5Nnc4ufbJpMVQY1lvXWVB98Jovj0="]`}},
		code: CodeInvalidTLSPin, path: "network.egress.tls_pins.0"},
	{name: "url-safe base64 pin", base: "microvm", edits: []edit{{"network.egress.tls_pins", `["sha256/_973X2z-_v2Q1pp9rTsiVbbhsowxbYi9z-Utf4vj-fc="]`}},
		code: CodeInvalidTLSPin, path: "network.egress.tls_pins.0"},
	{name: "real pins", base: "microvm", code: CodeInvalidTLSPin, pass: true},
	// INVALID_DOMAIN
	{name: "url as domain", base: "microvm", edits: []edit{{"network.egress.allow-domains", `["https://example.com/x" "example.com"]`}},
		code: CodeInvalidDomain, path: "network.egress.allow-domains.0"},
	{name: "inner wildcard", base: "microvm", edits: []edit{{"network.egress.allow-domains", `["example.com" "api.*.example.com"]`}},
		code: CodeInvalidDomain, path: "network.egress.allow-domains.1"},
	{name: "tld wildcard", base: "microvm", edits: []edit{{"network.egress.allow-domains", `["example.com" "*.com"]`}},
		code: CodeInvalidDomain, path: "network.egress.allow-domains.1"},
	{name: "ip address", base: "microvm", edits: []edit{{"network.egress.allow-domains", `["example.com" "10.0.0.1"]`}},
		code: CodeInvalidDomain, path: "network.egress.allow-domains.1"},
	{name: "single label", base: "microvm", edits: []edit{{"network.egress.allow-domains", `["example.com" "localhost"]`}},
		code: CodeInvalidDomain, path: "network.egress.allow-domains.1"},
	// One IDNA profile and name rule for config, admission and egress
	// (package domain): underscores are allowed, as some API hosts have them.
	{name: "underscore", base: "microvm", edits: []edit{{"network.egress.allow-domains", `["example.com" "api_v2.example.com"]`}},
		code: CodeInvalidDomain, pass: true},
	{name: "leading hyphen", base: "microvm", edits: []edit{{"network.egress.allow-domains", `["example.com" "-a.example.com"]`}},
		code: CodeInvalidDomain, path: "network.egress.allow-domains.1"},
	{name: "empty label", base: "microvm", edits: []edit{{"network.egress.allow-domains", `["example.com" "a..example.com"]`}},
		code: CodeInvalidDomain, path: "network.egress.allow-domains.1"},
	{name: "long label", base: "microvm", edits: []edit{{"network.egress.allow-domains", `["example.com" "` + strings.Repeat("a", 64) + `.example.com"]`}},
		code: CodeInvalidDomain, path: "network.egress.allow-domains.1"},
	{name: "trailing dot", base: "microvm", edits: []edit{{"network.egress.allow-domains", `["example.com" "api.example.com."]`}},
		code: CodeInvalidDomain, path: "network.egress.allow-domains.1"},
	{name: "bad http domain", base: "networked", edits: []edit{{"capabilities.http.egress.allow-domains", `["slack.com:443"]`}},
		code: CodeInvalidDomain, path: "capabilities.http.egress.allow-domains.0"},
	{name: "bad effect domain", base: "minimal",
		edits: []edit{{"capabilities.entries", `[{:capability :slack.post :contract "c.edn" :effects [[:network {:domains ["slack com"]}]]}]`}},
		code:  CodeInvalidDomain, path: "capabilities.entries.0.effects.0.1.domains.0"},
	{name: "good domains", base: "microvm",
		edits: []edit{{"network.egress.allow-domains", `["example.com" "*.example.com" "bücher.example" "xn--bcher-kva.example" "a-b.example.co.uk"]`}},
		code:  CodeInvalidDomain, pass: true},
	// DOMAIN_NOT_IN_NETWORK_ALLOWLIST
	{name: "http broadens egress", base: "microvm", edits: []edit{{"capabilities.http.egress.allow-domains", `["example.com" "evil.example.org"]`}},
		code: CodeDomainNotAllowed, path: "capabilities.http.egress.allow-domains.1"},
	{name: "effect broadens egress", base: "networked",
		edits: []edit{{"capabilities.entries", `[{:capability :slack.post :contract "c.edn" :effects [[:network {:domains ["slack.com" "evil.example"]}]]}]`}},
		code:  CodeDomainNotAllowed, path: "capabilities.entries.0.effects.0.1.domains.1", msg: "capability :slack.post declares network access to \"evil.example\""},
	{name: "effect without egress", base: "minimal",
		edits: []edit{{"capabilities.entries", `[{:capability :slack.post :contract "c.edn" :effects [[:network {:domains ["slack.com"]}]]}]`}},
		code:  CodeDomainNotAllowed, path: "capabilities.entries.0.effects.0.1.domains.0", msg: "the agent has no network: the :http capability is not enabled"},
	{name: "effect within egress", base: "networked",
		edits: []edit{{"capabilities.entries", `[{:capability :slack.post :contract "c.edn" :effects [[:network {:domains ["slack.com"]}]]}]`}},
		code:  CodeDomainNotAllowed, pass: true},
	{name: "disabled entry is not checked", base: "minimal",
		edits: []edit{{"capabilities.entries", `[{:capability :slack.post :contract "c.edn" :enabled false :effects [[:network {:domains ["slack.com"]}]]}]`}},
		code:  CodeDomainNotAllowed, pass: true},
	{name: "http under a wildcard", base: "microvm-networked", edits: []edit{{"capabilities.http.egress.allow-domains", `["files.slack.com"]`}},
		code: CodeDomainNotAllowed, pass: true},
	// FEATURE_MISSING / FEATURE_UNUSED
	{name: "network without feature", base: "microvm", edits: []edit{{"features", "[:attestation]"}}, code: CodeFeatureMissing, path: "capabilities.http.enabled"},
	{name: "llm without feature", base: "minimal", edits: []edit{{"capabilities.llm.enabled", "true"}}, code: CodeFeatureMissing, path: "capabilities.llm.enabled"},
	{name: "attestation without feature", base: "microvm-min", edits: []edit{{"features", "[]"}}, code: CodeFeatureMissing, path: "microvm.attestation.enabled"},
	{name: "features match", base: "microvm", code: CodeFeatureMissing, pass: true},
	{name: "unused feature", base: "minimal", edits: []edit{{"features", "[:telemetry :fs]"}}, code: CodeFeatureUnused, sev: SeverityWarning, path: "features.1"},
	{name: "telemetry needs no capability", base: "minimal", edits: []edit{{"features", "[:telemetry]"}}, code: CodeFeatureUnused, pass: true},
	// MISSING_CHAIN_PATH / VSOCK_STREAM_WITHOUT_VSOCK
	{name: "append_file without path", base: "minimal", edits: []edit{{"causal_chain.storage.mode", ":append_file"}}, code: CodeMissingChainPath, path: "causal_chain.storage"},
	{name: "sqlite without path", base: "minimal", edits: []edit{{"causal_chain.storage.mode", ":sqlite"}}, code: CodeMissingChainPath, path: "causal_chain.storage"},
	{name: "append_file with path", base: "minimal", edits: []edit{{"causal_chain.storage.mode", ":append_file"}, {"causal_chain.storage.path", `"./causal.chain"`}},
		code: CodeMissingChainPath, pass: true},
	{name: "vsock stream without microvm", base: "minimal", edits: []edit{{"causal_chain.storage.mode", ":vsock_stream"}}, code: CodeVsockStreamNoVsock, path: "causal_chain.storage.mode"},
	{name: "vsock stream with vsock", base: "microvm", code: CodeVsockStreamNoVsock, pass: true},
	// NEGATIVE_BUDGET / INVALID_APPROVALS
	{name: "negative cost", base: "microvm", edits: []edit{{"governance.policies.default.budgets.max_cost_usd", "-1"}},
		code: CodeNegativeBudget, path: "governance.policies.default.budgets.max_cost_usd"},
	{name: "negative tokens", base: "microvm", edits: []edit{{"governance.policies.default.budgets.token_budget", "-2e5"}},
		code: CodeNegativeBudget, path: "governance.policies.default.budgets.token_budget"},
	{name: "zero budget", base: "microvm", edits: []edit{{"governance.policies.default.budgets.max_cost_usd", "0"}}, code: CodeNegativeBudget, pass: true},
	{name: "negative resource", base: "minimal",
		edits: []edit{{"capabilities.entries", `[{:capability :a.b :contract "c" :resources {:max_time_ms -5}}]`}},
		code:  CodeNegativeBudget, path: "capabilities.entries.0.resources.max_time_ms"},
	{name: "negative approvals", base: "microvm", edits: []edit{{"governance.policies.default.requires_approvals", "-1"}},
		code: CodeInvalidApprovals, path: "governance.policies.default.requires_approvals"},
	{name: "zero approvals", base: "microvm", edits: []edit{{"governance.policies.default.requires_approvals", "0"}}, code: CodeInvalidApprovals, pass: true},
	// MISSING_VERIFY_KEY / INVALID_VERIFY_KEY
	{name: "approvals without key", base: "microvm", edits: []edit{{"governance.keys.verify", ""}},
		code: CodeMissingVerifyKey, path: "governance.policies.default.requires_approvals"},
	{name: "no approvals, no key", base: "minimal", code: CodeMissingVerifyKey, pass: true},
	{name: "placeholder key", base: "microvm", edits: []edit{{"governance.keys.verify", `"pubkey-pem"`}}, code: CodeInvalidVerifyKey, path: "governance.keys.verify", msg: "not PEM-encoded"},
	{name: "private key", base: "microvm", edits: []edit{{"governance.keys.verify", privatePEM}}, code: CodeInvalidVerifyKey, path: "governance.keys.verify", msg: `is "PRIVATE KEY"`},
	{name: "weak rsa key", base: "microvm", edits: []edit{{"governance.keys.verify", weakRSAPEM}}, code: CodeInvalidVerifyKey, path: "governance.keys.verify", msg: "has 1024 bits"},
	{name: "ed25519 key", base: "minimal", edits: []edit{{"governance.keys.verify", validPEM}}, code: CodeInvalidVerifyKey, pass: true},
	// DUPLICATE_CAPABILITY
	{name: "capability twice", base: "minimal",
		edits: []edit{{"capabilities.entries", `[{:capability :a.b :contract "c"} {:capability :a.b :contract "d"}]`}},
		code:  CodeDuplicateCapability, path: "capabilities.entries.1.capability"},
	{name: "two capabilities", base: "minimal",
		edits: []edit{{"capabilities.entries", `[{:capability :a.b :contract "c"} {:capability :a.c :contract "d"}]`}},
		code:  CodeDuplicateCapability, pass: true},
	// INVALID_ENV_VAR / ENV_ENABLED_WITHOUT_VARS / ENV_VARS_NOT_ENABLED / SECRET_ENV_VAR
	{name: "env var with a dollar", base: "minimal", edits: []edit{{"capabilities.env", `{:enabled true :vars ["LANG" "$HOME"]}`}},
		code: CodeInvalidEnvVar, path: "capabilities.env.vars.1", msg: `"$HOME"`},
	{name: "env var pattern", base: "minimal", edits: []edit{{"capabilities.env", `{:enabled true :vars ["LC_*"]}`}},
		code: CodeInvalidEnvVar, path: "capabilities.env.vars.0"},
	{name: "env var names", base: "minimal", edits: []edit{{"capabilities.env", `{:enabled true :vars ["LANG" "TZ" "_X1"]}`}},
		code: CodeInvalidEnvVar, pass: true},
	{name: "env enabled, no vars", base: "minimal", edits: []edit{{"capabilities.env", `{:enabled true}`}},
		code: CodeEnvWithoutVars, sev: SeverityWarning, path: "capabilities.env.enabled"},
	{name: "env enabled with vars", base: "minimal", edits: []edit{{"capabilities.env", `{:enabled true :vars ["TZ"]}`}},
		code: CodeEnvWithoutVars, pass: true},
	{name: "env vars, not enabled", base: "minimal", edits: []edit{{"capabilities.env", `{:vars ["TZ"]}`}},
		code: CodeEnvVarsDisabled, sev: SeverityWarning, path: "capabilities.env.vars"},
	{name: "env off, no vars", base: "minimal", code: CodeEnvVarsDisabled, pass: true},
	{name: "secret env var", base: "minimal", edits: []edit{{"capabilities.env", `{:enabled true :vars ["TZ" "GITHUB_TOKEN"]}`}},
		code: CodeSecretEnvVar, sev: SeverityWarning, path: "capabilities.env.vars.1", msg: "GITHUB_TOKEN"},
	{name: "plain env var", base: "minimal", edits: []edit{{"capabilities.env", `{:enabled true :vars ["LANG"]}`}},
		code: CodeSecretEnvVar, pass: true},
	// Secrets: SECRET_SOURCE / SECRET_DOMAIN_NOT_ALLOWED / SECRET_HEADER_RESERVED / DUPLICATE_SECRET / SECRET_READABLE
	{name: "secret from the environment", base: "networked",
		edits: []edit{{"secrets", `[{:name "slack" :domain "slack.com" :header "Authorization" :prefix "Bearer " :env "SLACK_TOKEN"}]`}},
		code:  CodeSecretSource, pass: true},
	{name: "secret without a source", base: "networked", edits: []edit{{"secrets", `[{:name "slack" :domain "slack.com" :header "Authorization"}]`}},
		code: CodeSecretSource, path: "secrets.0"},
	{name: "secret with two sources", base: "networked",
		edits: []edit{{"secrets", `[{:name "slack" :domain "slack.com" :header "Authorization" :env "T" :file "/run/t"}]`}},
		code:  CodeSecretSource, path: "secrets.0.file"},
	{name: "secret outside the allowlist", base: "networked",
		edits: []edit{{"secrets", `[{:name "gh" :domain "api.github.com" :header "Authorization" :env "GH"}]`}},
		code:  CodeSecretDomain, path: "secrets.0.domain", msg: "api.github.com"},
	{name: "secret without egress", base: "minimal",
		edits: []edit{{"secrets", `[{:name "gh" :domain "api.github.com" :header "Authorization" :env "GH"}]`}},
		code:  CodeSecretDomain, path: "secrets.0.domain", msg: "no egress"},
	{name: "secret on an allowed domain", base: "networked",
		edits: []edit{{"secrets", `[{:name "eu" :domain "eu.api.example.com" :header "X-Api-Key" :file "keys/eu"}]`}},
		code:  CodeSecretDomain, pass: true},
	{name: "secret with an invalid domain", base: "networked",
		edits: []edit{{"secrets", `[{:name "x" :domain "https://slack.com/" :header "Authorization" :env "X"}]`}},
		code:  CodeInvalidDomain, path: "secrets.0.domain"},
	{name: "secret in the Host header", base: "networked",
		edits: []edit{{"secrets", `[{:name "x" :domain "slack.com" :header "Host" :env "X"}]`}},
		code:  CodeSecretHeader, path: "secrets.0.header"},
	{name: "secret in the Authorization header", base: "networked",
		edits: []edit{{"secrets", `[{:name "x" :domain "slack.com" :header "Authorization" :env "X"}]`}},
		code:  CodeSecretHeader, pass: true},
	{name: "two secrets, two headers", base: "networked",
		edits: []edit{{"secrets", `[{:name "x" :domain "slack.com" :header "A" :env "X"} {:name "y" :domain "slack.com" :header "B" :env "Y"}]`}},
		code:  CodeDuplicateSecret, pass: true},
	{name: "secret header not a token", base: "networked",
		edits: []edit{{"secrets", `[{:name "x" :domain "slack.com" :header "Bad Header" :env "X"}]`}},
		code:  "INVALID_SECRET_HEADER", path: "secrets.0.header"},
	{name: "two secrets, one name", base: "networked",
		edits: []edit{{"secrets", `[{:name "x" :domain "slack.com" :header "A" :env "X"} {:name "x" :domain "slack.com" :header "B" :env "Y"}]`}},
		code:  CodeDuplicateSecret, path: "secrets.1.name"},
	{name: "two secrets, one header", base: "networked",
		edits: []edit{{"secrets", `[{:name "x" :domain "slack.com" :header "A" :env "X"} {:name "y" :domain "slack.com" :header "a" :env "Y"}]`}},
		code:  CodeDuplicateSecret, path: "secrets.1.header"},
	{name: "secret readable with get-env", base: "networked",
		edits: []edit{{"capabilities.env", `{:enabled true :vars ["TZ" "SLACK_TOKEN"]}`},
			{"secrets", `[{:name "slack" :domain "slack.com" :header "Authorization" :env "SLACK_TOKEN"}]`}},
		code: CodeSecretReadable, path: "secrets.0.env"},
	{name: "secret file under an fs path", base: "networked",
		edits: []edit{{"capabilities.fs", `{:enabled true :paths ["/data"]}`},
			{"secrets", `[{:name "slack" :domain "slack.com" :header "Authorization" :file "/data/keys/slack"}]`}},
		code: CodeSecretReadable, path: "secrets.0.file"},
	{name: "secret file beside an fs path", base: "networked",
		edits: []edit{{"capabilities.fs", `{:enabled true :paths ["/data"]}`},
			{"secrets", `[{:name "slack" :domain "slack.com" :header "Authorization" :file "/database/slack"}]`}},
		code: CodeSecretReadable, pass: true},
	// Schema-declared codes.
	{name: "unsupported version", base: "minimal", edits: []edit{{"version", `"0.2"`}}, code: CodeUnsupportedVersion, path: "version"},
	{name: "version 0.1", base: "minimal", code: CodeUnsupportedVersion, pass: true},
	{name: "bad agent id", base: "minimal", edits: []edit{{"agent-id", `"Agent X"`}}, code: CodeInvalidAgentID, path: "agent-id"},
	{name: "good agent id", base: "minimal", edits: []edit{{"agent-id", `"agent.sre_1-a"`}}, code: CodeInvalidAgentID, pass: true},
}

func TestRules(t *testing.T) {
	for _, tc := range ruleCases {
		t.Run(tc.name, func(t *testing.T) {
			src := applyEdits(t, expandedBase(t, tc.base), tc.edits)
			res := load(t, src, "case.rtfs")
			d, found := find(res.Diags, tc.code)
			if tc.pass {
				if found {
					t.Fatalf("unexpected %s: %v\n%s", tc.code, d, src)
				}
				return
			}
			if !found {
				t.Fatalf("no %s in %v\n%s", tc.code, res.Diags, src)
			}
			if d.Severity != tc.sev {
				t.Errorf("severity = %v, want %v", d.Severity, tc.sev)
			}
			if d.Path != tc.path {
				t.Errorf("path = %q, want %q", d.Path, tc.path)
			}
			if !strings.Contains(d.Message, tc.msg) {
				t.Errorf("message %q does not contain %q", d.Message, tc.msg)
			}
			if d.Message == "" || d.Hint == "" {
				t.Errorf("diagnostic lacks message or hint: %+v", d)
			}
			if d.Span.IsZero() || d.Span.File != "case.rtfs" {
				t.Errorf("diagnostic has no source span: %+v", d)
			}
			if tc.sev == SeverityWarning && res.Diags.HasErrors() {
				t.Errorf("a warning case must not produce errors: %v", res.Diags)
			}
		})
	}
}

// TestRulesCovered checks that every rule code has a failing and a passing
// case above.
func TestRulesCovered(t *testing.T) {
	codes := []string{
		CodeInvalidIsolationMode, CodeNonEphemeralFS, CodeCapabilitiesNotReadonly, CodeMissingCapabilitiesMount,
		CodeInvalidVCPUs, CodeInvalidMemory, CodeInvalidVsockCID, CodeNICWithoutNetwork, CodeInvalidEgressMethod,
		CodeEmptyAllowedDomains, CodeMissingRootfsHash, CodeInvalidHashFormat, CodeDLPDisabled, CodeNonStrictDLP,
		CodeMarketplaceNotReadonly, CodeHighVCPUAllocation, CodeHighMemoryAllocation,
		CodeReservedVsockCID, CodeMissingMicroVM, CodeMissingProxyNS, CodeRootfsWritable, CodeInvalidTLSPin,
		CodeInvalidDomain, CodeDomainNotAllowed, CodeFeatureMissing, CodeFeatureUnused, CodeMissingChainPath,
		CodeVsockStreamNoVsock, CodeNegativeBudget, CodeInvalidApprovals, CodeMissingVerifyKey, CodeInvalidVerifyKey,
		CodeDuplicateCapability, CodeUnsupportedVersion, CodeInvalidAgentID,
		CodeInvalidEnvVar, CodeEnvWithoutVars, CodeEnvVarsDisabled, CodeSecretEnvVar,
		CodeSecretSource, CodeSecretDomain, CodeSecretHeader, CodeDuplicateSecret, CodeSecretReadable,
	}
	for _, code := range codes {
		var fail, pass bool
		for _, tc := range ruleCases {
			if tc.code == code {
				fail = fail || !tc.pass
				pass = pass || tc.pass
			}
		}
		if !fail || !pass {
			t.Errorf("%s: failing case %v, passing case %v", code, fail, pass)
		}
	}
}

func TestValidateDeterministicOrder(t *testing.T) {
	src := applyEdits(t, expandedBase(t, "microvm"), []edit{
		{"orchestrator.isolation.mode", ":container"},
		{"orchestrator.dlp.policy", ":lenient"},
		{"network.egress.tls_pins", `["x" "y"]`},
		{"marketplace.readonly", "false"},
	})
	first := load(t, src, "order.rtfs").Diags
	for range 20 {
		again := load(t, src, "order.rtfs").Diags
		if strings.Join(again.Codes(), ",") != strings.Join(first.Codes(), ",") {
			t.Fatalf("order changed: %v vs %v", again.Codes(), first.Codes())
		}
	}
	for i := 1; i < len(first); i++ {
		if first[i-1].Span.Start.Offset > first[i].Span.Start.Offset {
			t.Fatalf("diagnostics not in source order: %v", first)
		}
	}
	want := []string{CodeInvalidIsolationMode, CodeNonStrictDLP, CodeInvalidTLSPin, CodeInvalidTLSPin, CodeMarketplaceNotReadonly}
	if got := strings.Join(first.Codes(), ","); got != strings.Join(want, ",") {
		t.Fatalf("codes = %s, want %s", got, strings.Join(want, ","))
	}
}

func TestCheckDomain(t *testing.T) {
	tests := []struct {
		in   string
		ok   bool
		hint string
	}{
		{"example.com", true, ""},
		{"*.example.com", true, ""},
		{"EXAMPLE.com", true, ""},
		{"bücher.example", true, ""},
		{"https://api.example.com/v1", false, "write only the host name, such as api.example.com"},
		{"*.com", false, "narrow the wildcard, such as *.example.com"},
		{"*", false, ""},
		{"", false, "remove the empty entry"},
		{"::1", false, "name the host by its domain"},
		{"a b.com", false, ""},
		{"example.com.", false, "write example.com"},
	}
	for _, tt := range tests {
		msg, hint := checkDomain(tt.in)
		if (msg == "") != tt.ok {
			t.Errorf("checkDomain(%q) = %q, want ok=%v", tt.in, msg, tt.ok)
		}
		if tt.hint != "" && hint != tt.hint {
			t.Errorf("checkDomain(%q) hint = %q, want %q", tt.in, hint, tt.hint)
		}
	}
}
