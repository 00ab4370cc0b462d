// Package kubetest starts the real API server the Kubernetes tests run
// against: kube-apiserver and etcd built by scripts/kube-assets from the Go
// module proxy, found through KUBEBUILDER_ASSETS or the script's cache,
// started by controller-runtime's envtest (RBAC on, service-account keys)
// with the CRDs of deploy/k8s installed. Tests only.
package kubetest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/ccos-project/ccos/internal/testenv"
	"github.com/go-logr/logr"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	crlog "sigs.k8s.io/controller-runtime/pkg/log"
)

// What and HowToGet say, for testenv.Missing, what is missing when the
// binaries are not built and how to get them.
const (
	What     = "kube-apiserver and etcd are not built"
	HowToGet = "run scripts/kube-assets (it builds them from the Go module proxy, about 15 minutes, and caches them; scripts/test does) or set KUBEBUILDER_ASSETS to a directory holding them"
)

// RepoRoot is the module's root directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", ".."))
}

// Assets returns the directory of kube-apiserver and etcd, or "" when
// they are not built.
func Assets() string {
	if d := os.Getenv("KUBEBUILDER_ASSETS"); d != "" {
		return d
	}
	out, err := exec.Command(filepath.Join(RepoRoot(), "scripts", "kube-assets"), "--cached").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// Need skips t (fails it under CI) when the binaries are not built.
func Need(t testing.TB) {
	t.Helper()
	if Assets() == "" {
		testenv.Missing(t, What, HowToGet)
	}
}

// Start starts an API server with the CRDs of deploy/k8s; ok is false
// when the binaries are not built (the caller skips with What and
// HowToGet).
func Start(scheme *k8sruntime.Scheme) (env *envtest.Environment, cfg *rest.Config, ok bool, err error) {
	crlog.SetLogger(logr.Discard())
	assets := Assets()
	if assets == "" {
		return nil, nil, false, nil
	}
	env = &envtest.Environment{BinaryAssetsDirectory: assets, Scheme: scheme, ErrorIfCRDPathMissing: true,
		CRDDirectoryPaths: []string{filepath.Join(RepoRoot(), "deploy", "k8s", "crd")}}
	// The paths themselves: envtest would take an empty KUBEBUILDER_ASSETS
	// for the current directory.
	env.ControlPlane.APIServer = &envtest.APIServer{Path: filepath.Join(assets, "kube-apiserver")}
	env.ControlPlane.Etcd = &envtest.Etcd{Path: filepath.Join(assets, "etcd")}
	if cfg, err = env.Start(); err != nil {
		return nil, nil, true, fmt.Errorf("starting the API server from %s: %w", assets, err)
	}
	cfg.QPS, cfg.Burst = 200, 400
	return env, cfg, true, nil
}
