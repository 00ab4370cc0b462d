// Package v1alpha1 is the ccos Kubernetes API, group
// ccos-project.github.io, version v1alpha1: the resources node agents and
// users share through the API server.
//
//   - AgentConfig (plural agentconfigs) holds an agent's RTFS config text in
//     spec.config; the config controller checks it and writes the verdict
//     (and every file:line:col: CODE diagnostic) to its status.
//   - AgentRun (plural agentruns) is one plan to run: spec.agentConfig names
//     an AgentConfig of the same namespace, spec.plan is the RTFS plan,
//     spec.approvals the approval texts and spec.isolation, optionally, the
//     isolation mode it needs. Node agents claim it by writing status.node
//     with an optimistic-concurrency update, and record its progress, its
//     side-effecting calls (the call journal) and its outcome in the status.
//
// These names are a contract: scripts and users rely on spec.config,
// spec.agentConfig, spec.plan, spec.approvals, status.phase, status.node and
// status.value. The CRDs in deploy/k8s/crd and the deep-copy functions are
// generated from this package by controller-gen (go generate).
//
// +kubebuilder:object:generate=true
// +groupName=ccos-project.github.io
package v1alpha1

//go:generate go run sigs.k8s.io/controller-tools/cmd/controller-gen@v0.23.0 object paths=. crd:crdVersions=v1 output:crd:dir=../../../deploy/k8s/crd
