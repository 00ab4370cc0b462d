// Package config loads, expands and validates agent configurations: the
// `(agent.config ...)` RTFS form (or a bare map, or an RTFS expression that
// evaluates to one, such as a call to a profile macro) that tells ccos what
// an agent may do and how it is isolated.
//
// Loading is a pipeline: read the RTFS text; find the config form; hand
// non-literal expressions (profile calls, threading, assoc-in) to an
// Evaluator together with the embedded profile prelude; check the resulting
// map against the schema (schema.rtfs, written once as RTFS type
// expressions); fill in defaults and canonical key spellings; decode into the
// typed Config; run the semantic rules. Every problem becomes a Diagnostic
// with a code, a severity, a field path, a message, a hint and the source
// span of the offending form.
package config

import (
	"crypto"

	"github.com/ccos-project/ccos/rtfs"
)

// The struct tags below name the schema key each field decodes from; a test
// checks that the tags and schema.rtfs agree key for key.

// Config is a decoded, complete agent configuration.
type Config struct {
	Version      string       `rtfs:"version"`
	AgentID      string       `rtfs:"agent-id"`
	Profile      string       `rtfs:"profile"`
	Features     []string     `rtfs:"features"`
	Capabilities Capabilities `rtfs:"capabilities"`
	Governance   Governance   `rtfs:"governance"`
	Orchestrator Orchestrator `rtfs:"orchestrator"`
	Network      *Network     `rtfs:"network"`
	Secrets      []Secret     `rtfs:"secrets"`
	MicroVM      *MicroVM     `rtfs:"microvm"`
	CausalChain  CausalChain  `rtfs:"causal_chain"`
	Marketplace  Marketplace  `rtfs:"marketplace"`

	spans     *spanIndex // where each field path was written
	verifyKey crypto.PublicKey
}

// VerifyKey returns the parsed :governance :keys :verify public key, or nil
// when none is configured.
func (c *Config) VerifyKey() crypto.PublicKey { return c.verifyKey }

// HasFeature reports whether :features lists the feature name (no colon).
func (c *Config) HasFeature(name string) bool {
	for _, f := range c.Features {
		if f == name {
			return true
		}
	}
	return false
}

// Span returns where the value at a dotted field path (such as
// "microvm.devices.vsock.cid") was written; for a defaulted field, where its
// nearest written ancestor was.
func (c *Config) Span(path string) rtfs.Span { return c.spans.lookup(path) }

// Capabilities are the built-in capability sets and the declared entries.
type Capabilities struct {
	HTTP    HTTPCapability    `rtfs:"http"`
	FS      FSCapability      `rtfs:"fs"`
	LLM     LLMCapability     `rtfs:"llm"`
	Env     EnvCapability     `rtfs:"env"`
	Entries []CapabilityEntry `rtfs:"entries"`
}

// HTTPCapability is the :http capability set.
type HTTPCapability struct {
	Enabled bool       `rtfs:"enabled"`
	Egress  HTTPEgress `rtfs:"egress"`
}

// HTTPEgress bounds where the :http capability may connect.
type HTTPEgress struct {
	AllowDomains []string `rtfs:"allow-domains"`
	MTLS         bool     `rtfs:"mtls"`
}

// FSCapability is the :fs capability set, scoped to Paths.
type FSCapability struct {
	Enabled bool     `rtfs:"enabled"`
	Paths   []string `rtfs:"paths"`
}

// LLMCapability is the :llm capability set, limited to Models.
type LLMCapability struct {
	Enabled bool     `rtfs:"enabled"`
	Models  []string `rtfs:"models"`
}

// EnvCapability is the :env capability set: the host environment
// variables ccos.system.get-env may read, by exact name. No other variable
// is readable, whatever a plan or a contract asks for.
type EnvCapability struct {
	Enabled bool     `rtfs:"enabled"`
	Vars    []string `rtfs:"vars"`
}

// CapabilityEntry wires one capability to its contract (spec 17 §4).
type CapabilityEntry struct {
	Capability string             `rtfs:"capability"`
	Contract   string             `rtfs:"contract"`
	Enabled    bool               `rtfs:"enabled"`
	Effects    []Effect           `rtfs:"effects"`
	Resources  map[string]float64 `rtfs:"resources"`
	Runtime    CapabilityRuntime  `rtfs:"runtime"`
}

// Effect is one declared effect, such as [:network {:domains [...]}]; Scope
// keeps the scope map as written, since its keys depend on the effect.
type Effect struct {
	Kind  string
	Scope *rtfs.Map
}

// CapabilityRuntime says where a capability runs.
type CapabilityRuntime struct {
	Sandbox IsolationMode `rtfs:"sandbox"`
}

// Governance holds the policies the governance kernel applies at admission.
type Governance struct {
	Policies map[string]Policy `rtfs:"policies"`
	Keys     Keys              `rtfs:"keys"`
}

// RiskTier is :low, :medium or :high.
type RiskTier string

// The risk tiers.
const (
	RiskLow    RiskTier = "low"
	RiskMedium RiskTier = "medium"
	RiskHigh   RiskTier = "high"
)

// Policy is one named governance policy.
type Policy struct {
	RiskTier          RiskTier `rtfs:"risk_tier"`
	RequiresApprovals int      `rtfs:"requires_approvals"`
	Budgets           *Budgets `rtfs:"budgets"`
}

// Budgets caps what a plan under a policy may spend; nil means no cap.
type Budgets struct {
	MaxCostUSD  *float64 `rtfs:"max_cost_usd"`
	TokenBudget *float64 `rtfs:"token_budget"`
}

// Keys holds the keys governance verifies signatures with.
type Keys struct {
	// VerifyPEM is the PEM text as written; Config.VerifyKey is its parsed key.
	VerifyPEM string `rtfs:"verify"`
}

// IsolationMode is the sandbox kind: :wasm, :container or :microvm.
type IsolationMode string

// The isolation modes.
const (
	IsolationWasm      IsolationMode = "wasm"
	IsolationContainer IsolationMode = "container"
	IsolationMicroVM   IsolationMode = "microvm"
)

// Orchestrator configures isolation and data-loss prevention.
type Orchestrator struct {
	Isolation Isolation `rtfs:"isolation"`
	DLP       DLP       `rtfs:"dlp"`
	// ReplayOnCrash lets the supervisor replay a plan once in a fresh
	// guest after its guest crashed.
	ReplayOnCrash bool `rtfs:"replay_on_crash"`
}

// Isolation selects the sandbox and its file system.
type Isolation struct {
	Mode IsolationMode `rtfs:"mode"`
	FS   IsolationFS   `rtfs:"fs"`
}

// IsolationFS is the sandbox file system: ephemeral or not, and named mounts.
type IsolationFS struct {
	Ephemeral bool             `rtfs:"ephemeral"`
	Mounts    map[string]Mount `rtfs:"mounts"`
}

// MountMode is :ro or :rw.
type MountMode string

// The mount modes.
const (
	MountRO MountMode = "ro"
	MountRW MountMode = "rw"
)

// Mount is one named mount, such as :capabilities.
type Mount struct {
	Mode MountMode `rtfs:"mode"`
}

// DLPPolicy is :strict, :moderate or :lenient.
type DLPPolicy string

// The DLP policies.
const (
	DLPStrict   DLPPolicy = "strict"
	DLPModerate DLPPolicy = "moderate"
	DLPLenient  DLPPolicy = "lenient"
)

// DLP configures the data-loss-prevention filters of the egress proxy.
type DLP struct {
	Enabled bool      `rtfs:"enabled"`
	Policy  DLPPolicy `rtfs:"policy"`
}

// EgressVia is how traffic leaves the sandbox: :proxy, :direct or :none.
type EgressVia string

// The egress methods.
const (
	EgressProxy  EgressVia = "proxy"
	EgressDirect EgressVia = "direct"
	EgressNone   EgressVia = "none"
)

// Network is the sandbox network (spec 19 §4).
type Network struct {
	Enabled bool          `rtfs:"enabled"`
	Egress  NetworkEgress `rtfs:"egress"`
}

// NetworkEgress is the agent-wide egress allowlist and TLS requirements.
type NetworkEgress struct {
	Via          EgressVia `rtfs:"via"`
	AllowDomains []string  `rtfs:"allow-domains"`
	MTLS         bool      `rtfs:"mtls"`
	TLSPins      []string  `rtfs:"tls_pins"`
}

// MicroVM describes the virtual machine of the MicroVM profile.
type MicroVM struct {
	Kernel      Kernel      `rtfs:"kernel"`
	Rootfs      Rootfs      `rtfs:"rootfs"`
	Resources   Resources   `rtfs:"resources"`
	Devices     Devices     `rtfs:"devices"`
	Attestation Attestation `rtfs:"attestation"`
}

// Secret binds a credential to a domain and a header: the egress proxy
// adds Header: Prefix+credential to the requests a step is allowed to
// send to Domain, and to no others. The host reads the credential from
// the environment variable Env or the file File (relative to the config
// file's directory) when it loads the agent; no plan, sandbox, chain
// event, log or output ever holds it.
type Secret struct {
	Name   string `rtfs:"name"`
	Domain string `rtfs:"domain"`
	Header string `rtfs:"header"`
	Prefix string `rtfs:"prefix"`
	Env    string `rtfs:"env"`
	File   string `rtfs:"file"`
}

// Kernel is the guest kernel image and its command line.
type Kernel struct {
	Image   string `rtfs:"image"`
	Cmdline string `rtfs:"cmdline"`
}

// Rootfs is the guest root file system image.
type Rootfs struct {
	Image string `rtfs:"image"`
	RO    bool   `rtfs:"ro"`
}

// Resources are the guest's vCPUs and memory in MiB.
type Resources struct {
	VCPUs int `rtfs:"vcpus"`
	MemMB int `rtfs:"mem_mb"`
}

// Devices are the guest's virtio devices.
type Devices struct {
	NIC   NIC   `rtfs:"nic"`
	Vsock Vsock `rtfs:"vsock"`
}

// NIC is the guest network interface, bridged into ProxyNS.
type NIC struct {
	Enabled bool    `rtfs:"enabled"`
	ProxyNS *string `rtfs:"proxy_ns"`
}

// Vsock is the host control channel; CID is nil when not given.
type Vsock struct {
	Enabled bool   `rtfs:"enabled"`
	CID     *int64 `rtfs:"cid"`
}

// Attestation is measured boot: the rootfs digest the host expects.
type Attestation struct {
	Enabled          bool    `rtfs:"enabled"`
	ExpectRootfsHash *string `rtfs:"expect_rootfs_hash"`
}

// StorageMode is where causal-chain events go.
type StorageMode string

// The causal chain storage modes.
const (
	StorageInMemory    StorageMode = "in_memory"
	StorageAppendFile  StorageMode = "append_file"
	StorageSQLite      StorageMode = "sqlite"
	StorageVsockStream StorageMode = "vsock_stream"
)

// CausalChain configures the audit log.
type CausalChain struct {
	Storage ChainStorage `rtfs:"storage"`
	Anchor  Anchor       `rtfs:"anchor"`
}

// ChainStorage is the chain store; Path is empty when not given.
type ChainStorage struct {
	Mode        StorageMode `rtfs:"mode"`
	Path        string      `rtfs:"path"`
	BufferLocal bool        `rtfs:"buffer_local"`
}

// Anchor turns on signed checkpoints of the chain.
type Anchor struct {
	Enabled bool `rtfs:"enabled"`
}

// Marketplace lists where capability contracts are loaded from; Readonly
// is nil when not given.
type Marketplace struct {
	RegistryPaths []string `rtfs:"registry_paths"`
	Readonly      *bool    `rtfs:"readonly"`
}
