package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Bounds of what a resource holds. The API server refuses larger values
// (the CRD's schema carries them), and node agents cut what they write to
// fit: a whole AgentRun stays well under etcd's request limit.
const (
	MaxConfigBytes    = 128 << 10 // spec.config
	MaxPlanBytes      = 128 << 10 // spec.plan
	MaxApprovals      = 32
	MaxApprovalBytes  = 8 << 10
	MaxValueBytes     = 64 << 10 // status.value
	MaxOutputBytes    = 16 << 10 // status.output
	MaxErrorBytes     = 8 << 10  // status.error and each diagnostic
	MaxSteps          = 128      // status.steps
	MaxCalls          = 64       // status.calls, the call journal
	MaxCallArgs       = 16
	MaxCallFieldBytes = 4 << 10 // each journal argument, value and error
	MaxCheckpoint     = 4 << 10
	MaxDiagnostics    = 64
)

// AgentConfig is an agent's configuration: RTFS text that the config
// controller validates (the same checks and diagnostics as
// `ccos config validate`) and node agents run plans under.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=acfg,categories=ccos
// +kubebuilder:printcolumn:name="Valid",type=string,JSONPath=`.status.conditions[?(@.type=="Valid")].status`
// +kubebuilder:printcolumn:name="Agent",type=string,JSONPath=`.status.agentID`
// +kubebuilder:printcolumn:name="Isolation",type=string,JSONPath=`.status.isolation`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type AgentConfig struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   AgentConfigSpec   `json:"spec"`
	Status AgentConfigStatus `json:"status,omitempty"`
}

// AgentConfigSpec is what the user writes.
type AgentConfigSpec struct {
	// Config is the agent config, RTFS text as `ccos config validate`
	// reads it (profile calls included).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=131072
	Config string `json:"config"`
}

// AgentConfigStatus is the config controller's verdict.
type AgentConfigStatus struct {
	// ObservedGeneration is the generation the verdict is about.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// AgentID is the config's :agent_id when it validates.
	// +optional
	AgentID string `json:"agentID,omitempty"`
	// Isolation is the config's :orchestrator :isolation :mode.
	// +optional
	Isolation string `json:"isolation,omitempty"`
	// Diagnostics are the config's problems, one per line as
	// `file:line:col: CODE: message (hint: ...)`; the file is
	// agentconfig/NAMESPACE/NAME.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=8192
	Diagnostics []string `json:"diagnostics,omitempty"`
	// Conditions: Valid (True when the config validates).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// AgentConfigList is a list of AgentConfigs.
//
// +kubebuilder:object:root=true
type AgentConfigList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AgentConfig `json:"items"`
}

// Phase is where an AgentRun is in its life.
//
// +kubebuilder:validation:Enum=Pending;Running;Succeeded;Failed;InDoubt
type Phase string

// The phases. A run without a phase is Pending. Succeeded, Failed and
// InDoubt are final: the API server refuses to change them.
const (
	PhasePending   Phase = "Pending"
	PhaseRunning   Phase = "Running"
	PhaseSucceeded Phase = "Succeeded"
	PhaseFailed    Phase = "Failed"
	// PhaseInDoubt: a side-effecting call was started and its outcome
	// never recorded (its node died during it); it may have taken effect,
	// so it was not run again and the run cannot be finished.
	PhaseInDoubt Phase = "InDoubt"
)

// Final says whether no node may change the run any more.
func (p Phase) Final() bool {
	return p == PhaseSucceeded || p == PhaseFailed || p == PhaseInDoubt
}

// Isolation is an isolation mode of the agent config's
// :orchestrator :isolation :mode.
//
// +kubebuilder:validation:Enum=wasm;container;microvm
type Isolation string

// The isolation modes.
const (
	IsolationWasm      Isolation = "wasm"
	IsolationContainer Isolation = "container"
	IsolationMicroVM   Isolation = "microvm"
)

// AgentRun is one plan to run under an AgentConfig. Node agents claim it,
// run it in a sandbox and write its outcome to its status.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=arun,categories=ccos
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=`.status.node`
// +kubebuilder:printcolumn:name="Config",type=string,JSONPath=`.spec.agentConfig`
// +kubebuilder:printcolumn:name="Value",type=string,JSONPath=`.status.value`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type AgentRun struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="an AgentRun's spec does not change; create a new AgentRun"
	Spec   AgentRunSpec   `json:"spec"`
	Status AgentRunStatus `json:"status,omitempty"`
}

// AgentRunSpec is what the user asks for.
type AgentRunSpec struct {
	// AgentConfig is the name of the AgentConfig, in the run's namespace,
	// the plan runs under.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	AgentConfig string `json:"agentConfig"`
	// Plan is the RTFS plan.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=131072
	Plan string `json:"plan"`
	// Approvals are approval texts from `ccos plan approve`.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=8192
	Approvals []string `json:"approvals,omitempty"`
	// Isolation is the isolation mode the run needs. When it is stronger
	// than the config's, the run gets it; when weaker, the config's stands.
	// A node claims the run only if it can give this isolation itself.
	// +optional
	Isolation Isolation `json:"isolation,omitempty"`
}

// AgentRunStatus is written by the node agent that holds the run.
//
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.phase) || !(oldSelf.phase in ['Succeeded', 'Failed', 'InDoubt']) || (has(self.phase) && self.phase == oldSelf.phase)",message="a finished AgentRun's phase does not change"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.attempt) || (has(self.attempt) && self.attempt >= oldSelf.attempt)",message="status.attempt never decreases"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.calls) || (has(self.calls) && size(self.calls) >= size(oldSelf.calls))",message="the call journal (status.calls) only grows"
type AgentRunStatus struct {
	// Phase: Pending, Running, Succeeded, Failed or InDoubt.
	// +optional
	Phase Phase `json:"phase,omitempty"`
	// Node is the node agent that holds (or last held) the run.
	// +optional
	Node string `json:"node,omitempty"`
	// Attempt counts the claims: 1 for the first node, one more for each
	// node that reclaimed the run from a node whose Lease expired. A node
	// writes the status only while Node and Attempt are still its own.
	// +optional
	Attempt int32 `json:"attempt,omitempty"`
	// ClaimedAt is when the current node claimed the run.
	// +optional
	ClaimedAt *metav1.Time `json:"claimedAt,omitempty"`
	// CompletedAt is when the run reached a final phase.
	// +optional
	CompletedAt *metav1.Time `json:"completedAt,omitempty"`
	// Provider is the sandbox provider the run ran in.
	// +optional
	Provider string `json:"provider,omitempty"`
	// PlanHash is the hash of the admitted plan, as in the causal chain.
	// +optional
	PlanHash string `json:"planHash,omitempty"`
	// Value is the plan's value, canonical RTFS (bounded: a larger value is
	// cut and ValueTruncated set).
	// +optional
	// +kubebuilder:validation:MaxLength=65536
	Value string `json:"value,omitempty"`
	// +optional
	ValueTruncated bool `json:"valueTruncated,omitempty"`
	// Error is why the run failed or is in doubt: the plan's error, the
	// config's diagnostics, the admission refusal or the sandbox failure.
	// +optional
	// +kubebuilder:validation:MaxLength=8192
	Error string `json:"error,omitempty"`
	// Output is what the plan printed (bounded; OutputTruncated says if
	// it was cut).
	// +optional
	// +kubebuilder:validation:MaxLength=16384
	Output string `json:"output,omitempty"`
	// +optional
	OutputTruncated bool `json:"outputTruncated,omitempty"`
	// Steps summarise the steps the host saw.
	// +optional
	// +kubebuilder:validation:MaxItems=128
	Steps []StepSummary `json:"steps,omitempty"`
	// Checkpoint is the signed checkpoint (a C2SP signed note) of the causal
	// chain the run was recorded in, on its node, taken at its end.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Checkpoint string `json:"checkpoint,omitempty"`
	// Calls is the call journal: every side-effecting host call of the run,
	// written before the call runs and again with its outcome. A node that
	// reclaims the run answers done calls from it and does not repeat the
	// calls started and never finished (the run ends InDoubt).
	// +optional
	// +kubebuilder:validation:MaxItems=64
	Calls []CallEntry `json:"calls,omitempty"`
	// Conditions: Claimed (who holds the run, reason Claimed or Reclaimed)
	// and Finished (reason Succeeded, Failed or InDoubt).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// StepSummary is what the host saw of one step.
type StepSummary struct {
	// +kubebuilder:validation:MaxLength=256
	Name string `json:"name"`
	OK   bool   `json:"ok"`
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Error string `json:"error,omitempty"`
	// +optional
	DurationMillis int64 `json:"durationMillis,omitempty"`
}

// CallEntry is one side-effecting host call in the call journal.
type CallEntry struct {
	// Key is the call's idempotency key (plan hash, step, ordinal).
	// +kubebuilder:validation:MaxLength=256
	Key string `json:"key"`
	// +kubebuilder:validation:MaxLength=256
	Capability string `json:"capability"`
	// Args are the call's arguments, canonical RTFS.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=4096
	Args []string `json:"args,omitempty"`
	// Done is set once the outcome is recorded; a call started and not done
	// may have taken effect.
	// +optional
	Done bool `json:"done,omitempty"`
	// Value is the outcome, canonical RTFS, when the call succeeded.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Value string `json:"value,omitempty"`
	// Error is the outcome when the call failed.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Error string `json:"error,omitempty"`
	// Node and Attempt say which claim ran the call.
	// +optional
	Node string `json:"node,omitempty"`
	// +optional
	Attempt int32 `json:"attempt,omitempty"`
}

// AgentRunList is a list of AgentRuns.
//
// +kubebuilder:object:root=true
type AgentRunList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AgentRun `json:"items"`
}
