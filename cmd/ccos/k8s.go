package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/ccos-project/ccos/chain"
	k8sdeploy "github.com/ccos-project/ccos/deploy/k8s"
	"github.com/ccos-project/ccos/engine"
	"github.com/ccos-project/ccos/internal/input"
	"github.com/ccos-project/ccos/k8s/configcheck"
	"github.com/ccos-project/ccos/k8s/nodeagent"
	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/mod/sumdb/note"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	crlog "sigs.k8s.io/controller-runtime/pkg/log"
)

func init() {
	k8sCmd := &cobra.Command{
		Use:   "k8s",
		Short: "ccos on Kubernetes: the deployment manifests and the AgentConfig controller",
		Long: "ccos runs on Kubernetes with node agents (`ccos supervisor --kube`, a DaemonSet)\n" +
			"that claim AgentRuns, and a controller that checks AgentConfigs. See\n" +
			"docs/RUNBOOK.md (Kubernetes) and deploy/k8s.",
	}
	manifests := &cobra.Command{
		Use:   "manifests",
		Short: "Print every object of deploy/k8s as YAML, for `kubectl apply -f -`",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := k8sdeploy.Manifests()
			if err != nil {
				return rejected("ccos k8s manifests: " + err.Error())
			}
			_, err = cmd.OutOrStdout().Write(b)
			return err
		},
	}
	var kubeconfig, namespace, electNS string
	controller := &cobra.Command{
		Use:   "controller",
		Short: "Check every AgentConfig and write the verdict and its diagnostics to its status",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runConfigController(cmd.Context(), cmd.ErrOrStderr(), kubeconfig, namespace, electNS)
		},
	}
	controller.Flags().StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file (default: in-cluster, then $KUBECONFIG or ~/.kube/config)")
	controller.Flags().StringVar(&namespace, "namespace", "", "check only the AgentConfigs of this namespace (default: all)")
	controller.Flags().StringVar(&electNS, "leader-elect-namespace", "", "elect one leader among replicas with a Lease in this namespace")
	k8sCmd.AddCommand(manifests, controller)
	rootCmd.AddCommand(k8sCmd)
}

// kubeFlags are `ccos supervisor --kube`'s own flags: the node agent. It
// also reads --state, --security-level, --chain-key, --drain-timeout, the
// egress flags and --vm-snapshots of the supervisor.
type kubeFlags struct {
	enabled                     bool
	kubeconfig, node, namespace string
	leaseNamespace, providers   string
	leaseDuration               time.Duration
	capacity                    int
}

// defaultNodeState is the node agent's state directory without --state.
const defaultNodeState = "/var/lib/ccos/node"

func (k *kubeFlags) register(fl *pflag.FlagSet) {
	fl.BoolVar(&k.enabled, "kube", false, "run as a Kubernetes node agent: claim AgentRuns and run them here (the configs come from AgentConfigs; no socket; --state defaults to "+defaultNodeState+")")
	fl.StringVar(&k.kubeconfig, "kubeconfig", "", "with --kube: kubeconfig file (default: in-cluster, then $KUBECONFIG or ~/.kube/config)")
	fl.StringVar(&k.node, "node", "", "with --kube: this node's name (required; names its Lease)")
	fl.StringVar(&k.namespace, "namespace", "", "with --kube: run only the AgentRuns of this namespace (default: all)")
	fl.StringVar(&k.leaseNamespace, "lease-namespace", "ccos-system", "with --kube: the namespace of the node agents' Leases")
	fl.DurationVar(&k.leaseDuration, "lease-duration", 15*time.Second, "with --kube: how long the node's Lease lasts unrenewed; other nodes reclaim its runs after it")
	fl.IntVar(&k.capacity, "capacity", 0, "with --kube: runs held at once (default: the number of CPUs)")
	fl.StringVar(&k.providers, "providers", "", "with --kube: the providers this node may use, comma-separated (default: every available one)")
}

// kubeRESTConfig finds the API server: the file given, else in-cluster,
// else the usual kubeconfig.
func kubeRESTConfig(file string) (*rest.Config, error) {
	if file != "" {
		return clientcmd.BuildConfigFromFlags("", file)
	}
	if c, err := rest.InClusterConfig(); err == nil {
		return c, nil
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	return clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, nil).ClientConfig()
}

func kubeLogger(stderr io.Writer) *slog.Logger {
	l := slog.New(slog.NewTextHandler(stderr, nil))
	crlog.SetLogger(logr.FromSlogHandler(l.Handler()))
	return l
}

func runConfigController(ctx context.Context, stderr io.Writer, kubeconfig, namespace, electNS string) error {
	if ctx == nil {
		ctx = context.Background()
	}
	cfg, err := kubeRESTConfig(kubeconfig)
	if err != nil {
		return rejected("ccos k8s controller: " + err.Error())
	}
	c, err := configcheck.New(cfg, configcheck.Options{Namespace: namespace, LeaderElectionNamespace: electNS, Logger: kubeLogger(stderr)})
	if err != nil {
		return rejected("ccos k8s controller: " + err.Error())
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := c.Run(ctx); err != nil {
		return rejected("ccos k8s controller: " + err.Error())
	}
	return nil
}

// serveKubeNode is `ccos supervisor --kube`: the node agent, running
// AgentRuns through the engine and recording them in the node's chain.
func serveKubeNode(ctx context.Context, stderr io.Writer, f supervisorFlags) error {
	if ctx == nil {
		ctx = context.Background()
	}
	k := f.kube
	if k.node == "" {
		return &exitError{code: exitUsage, msg: "ccos supervisor --kube: --node is required"}
	}
	level, err := (admitFlags{level: f.level}).securityLevel()
	if err != nil {
		return err
	}
	eo, err := f.eng.egressOptions()
	if err != nil {
		return err
	}
	cfg, err := kubeRESTConfig(k.kubeconfig)
	if err != nil {
		return rejected("ccos supervisor --kube: " + err.Error())
	}
	state := f.state
	if state == "" {
		state = defaultNodeState
	}
	if err := os.MkdirAll(state, 0o700); err != nil {
		return rejected("ccos supervisor --kube: " + err.Error())
	}
	logger := kubeLogger(stderr)
	signer, verifier, err := nodeChainKey(f.agent.chainKey, state, k.node)
	if err != nil {
		return rejected("ccos supervisor --kube: " + err.Error())
	}
	store, err := chain.Open(chain.StorageAppendFile, filepath.Join(state, "chain"))
	if err != nil {
		return rejected("ccos supervisor --kube: opening the node's causal chain: " + err.Error())
	}
	rec, err := chain.NewRecorder(store, signer, chain.Options{})
	if err != nil {
		store.Close()
		return rejected("ccos supervisor --kube: " + err.Error())
	}
	defer rec.Close()
	if r := rec.Recovered(); r.DroppedBytes > 0 {
		logger.Warn("the node's causal chain had a torn tail", "dropped_bytes", r.DroppedBytes, "offset", r.TruncatedFrom, "records", r.Records)
	}
	var allowed []string
	if k.providers != "" {
		allowed = strings.Split(k.providers, ",")
	}
	runner, err := nodeagent.NewEngineRunner(nodeagent.EngineOptions{
		Engine:   engine.Options{VMSnapshots: f.eng.snapshots, Egress: eo, Logger: logger},
		Allowed:  allowed,
		Agent:    engine.AgentOptions{Level: level, Pool: f.pool},
		Recorder: rec,
	})
	if err != nil {
		return rejected("ccos supervisor --kube: " + err.Error())
	}
	defer runner.Close()
	if len(runner.Offers().Isolation) == 0 {
		return rejected("ccos supervisor --kube: no sandbox provider is available to this node; `ccos doctor` says why")
	}
	agent, err := nodeagent.New(cfg, nodeagent.Options{Node: k.node, Namespace: k.namespace, LeaseNamespace: k.leaseNamespace,
		LeaseDuration: k.leaseDuration, Capacity: k.capacity, DrainTimeout: f.drain, Runner: runner,
		ChainVerifier: verifier, Logger: logger})
	if err != nil {
		return rejected("ccos supervisor --kube: " + err.Error())
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := agent.Run(ctx); err != nil {
		return rejected("ccos supervisor --kube: " + err.Error())
	}
	return nil
}

// nodeChainKey reads the key that signs the node's checkpoints: --chain-key,
// or the node's own key in the state directory, made on first start.
func nodeChainKey(keyPath, state, node string) (note.Signer, string, error) {
	if keyPath == "" {
		keyPath = filepath.Join(state, "chain.key")
		if _, err := os.Stat(keyPath); errors.Is(err, os.ErrNotExist) {
			skey, _, err := chain.GenerateKey("ccos-node-" + node)
			if err != nil {
				return nil, "", err
			}
			if err := chain.WriteKeyFile(keyPath, skey, 0o600); err != nil {
				return nil, "", err
			}
		}
	}
	b, err := input.ReadFile(keyPath, input.MaxSmall)
	if err != nil {
		return nil, "", fmt.Errorf("reading the chain key: %w", err)
	}
	signer, err := chain.ParseSigner(string(b))
	if err != nil {
		return nil, "", fmt.Errorf("the chain key %s: %w", keyPath, err)
	}
	verifier, err := chain.VerifierOf(strings.TrimSpace(string(b)))
	return signer, verifier, err
}
