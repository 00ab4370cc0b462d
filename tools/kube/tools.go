//go:build tools

// Package kubetools keeps the kube-apiserver command in this module's
// requirements.
package kubetools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
)
