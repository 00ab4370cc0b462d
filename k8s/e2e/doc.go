// Package e2e tests ccos on Kubernetes end to end against a real API
// server: kube-apiserver and etcd built from the Go module proxy by
// scripts/kube-assets (found through KUBEBUILDER_ASSETS or its cache),
// started with controller-runtime's envtest, RBAC on; deploy/k8s applied
// with kubectl; the ccos binary built and run as node agents and the
// config controller, each its own process with its service account's
// token. Its benchmark compares AgentRuns through node agents with the
// same plans through one supervisor.
package e2e
