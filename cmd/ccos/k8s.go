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
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ccos-project/ccos/chain"
	"github.com/ccos-project/ccos/config"
	k8sdeploy "github.com/ccos-project/ccos/deploy/k8s"
	"github.com/ccos-project/ccos/governance"
	"github.com/ccos-project/ccos/k8s/api/v1alpha1"
	"github.com/ccos-project/ccos/k8s/configcheck"
	"github.com/ccos-project/ccos/k8s/nodeagent"
	"github.com/ccos-project/ccos/orchestrator"
	"github.com/ccos-project/ccos/plan"
	"github.com/ccos-project/ccos/rtfs"
	"github.com/ccos-project/ccos/sandbox"
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

// kubeFlags are `ccos supervisor --kube`'s flags: the node agent.
type kubeFlags struct {
	enabled                             bool
	kubeconfig, node, namespace         string
	leaseNamespace, stateDir, providers string
	leaseDuration, drainTimeout         time.Duration
	capacity                            int
}

func (k *kubeFlags) register(fl *pflag.FlagSet) {
	fl.BoolVar(&k.enabled, "kube", false, "run as a Kubernetes node agent: claim AgentRuns and run them here (the socket, --config and --provider are not used)")
	fl.StringVar(&k.kubeconfig, "kubeconfig", "", "with --kube: kubeconfig file (default: in-cluster, then $KUBECONFIG or ~/.kube/config)")
	fl.StringVar(&k.node, "node", "", "with --kube: this node's name (required; names its Lease)")
	fl.StringVar(&k.namespace, "namespace", "", "with --kube: run only the AgentRuns of this namespace (default: all)")
	fl.StringVar(&k.leaseNamespace, "lease-namespace", "ccos-system", "with --kube: the namespace of the node agents' Leases")
	fl.DurationVar(&k.leaseDuration, "lease-duration", 15*time.Second, "with --kube: how long the node's Lease lasts unrenewed; other nodes reclaim its runs after it")
	fl.DurationVar(&k.drainTimeout, "drain-timeout", 60*time.Second, "with --kube: on SIGTERM, how long to let held runs finish before stopping them")
	fl.IntVar(&k.capacity, "capacity", 0, "with --kube: runs held at once (default: the number of CPUs)")
	fl.StringVar(&k.stateDir, "state-dir", "/var/lib/ccos/node", "with --kube: the node's state: its chain key and the causal chains of its runs")
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

// serveKubeNode is `ccos supervisor --kube`: the node agent.
func serveKubeNode(ctx context.Context, stderr io.Writer, o supervisorOptions) error {
	if ctx == nil {
		ctx = context.Background()
	}
	k := o.kube
	if k.node == "" {
		return &exitError{code: exitUsage, msg: "ccos supervisor --kube: --node is required"}
	}
	level, err := governance.ParseLevel(o.level)
	if err != nil {
		return &exitError{code: exitUsage, msg: "ccos supervisor: --security-level: " + err.Error()}
	}
	cfg, err := kubeRESTConfig(k.kubeconfig)
	if err != nil {
		return rejected("ccos supervisor --kube: " + err.Error())
	}
	logger := kubeLogger(stderr)
	r, err := newNodeRunner(stderr, o, level)
	if err != nil {
		return rejected("ccos supervisor --kube: " + err.Error())
	}
	agent, err := nodeagent.New(cfg, nodeagent.Options{Node: k.node, Namespace: k.namespace, LeaseNamespace: k.leaseNamespace,
		LeaseDuration: k.leaseDuration, Capacity: k.capacity, DrainTimeout: k.drainTimeout, Runner: r,
		ChainVerifier: r.verifier, Logger: logger})
	if err != nil {
		return rejected("ccos supervisor --kube: " + err.Error())
	}
	if len(agent.Offers().Isolation) == 0 {
		return rejected(fmt.Sprintf("ccos supervisor --kube: no provider is available to this node (%s); `ccos doctor` says why", r.why))
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := agent.Run(ctx); err != nil {
		return rejected("ccos supervisor --kube: " + err.Error())
	}
	return nil
}

// nodeRunner runs AgentRuns' plans on this node with the same steps as
// ccos run: config, admission, egress proxy, provider (never weaker),
// causal chain, orchestrator. It is the node agent's bridge to the run
// engine until the engine package serves every front end.
type nodeRunner struct {
	stderr   io.Writer
	o        supervisorOptions
	level    governance.Level
	offers   nodeagent.Offers
	why      string // why providers are missing, for the error
	signer   note.Signer
	verifier string
	chains   string // directory of the runs' causal chains
	// vmMu serialises runs on the VM providers, which are configured per
	// config in place.
	vmMu sync.Mutex
}

func newNodeRunner(stderr io.Writer, o supervisorOptions, level governance.Level) (*nodeRunner, error) {
	r := &nodeRunner{stderr: stderr, o: o, level: level, chains: filepath.Join(o.kube.stateDir, "chains")}
	if err := os.MkdirAll(r.chains, 0o700); err != nil {
		return nil, err
	}
	if err := r.loadKey(); err != nil {
		return nil, err
	}
	// The VM providers learn where guest images come from; the default
	// config gives them the installed kernel.
	def := config.Load([]byte(defaultConfig), "<default config>", configEvaluator)
	if err := prepareProviders(stderr, def, "", nil, o.vm); err != nil {
		return nil, err
	}
	r.offers, r.why = nodeOffers(o.kube.providers)
	return r, nil
}

// loadKey reads the key that signs the runs' checkpoints: --chain-key, or
// the node's own key in the state directory, made on first start.
func (r *nodeRunner) loadKey() error {
	path := r.o.chainKey
	if path == "" {
		path = filepath.Join(r.o.kube.stateDir, "chain.key")
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			skey, _, err := chain.GenerateKey("ccos-node-" + r.o.kube.node)
			if err != nil {
				return err
			}
			if err := chain.WriteKeyFile(path, skey, 0o600); err != nil {
				return err
			}
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading the chain key: %w", err)
	}
	if r.signer, err = chain.ParseSigner(string(b)); err != nil {
		return fmt.Errorf("the chain key %s: %w", path, err)
	}
	r.verifier, err = chain.VerifierOf(strings.TrimSpace(string(b)))
	return err
}

// nodeOffers lists what this node can give: for each isolation mode the
// best available provider that implements it, among those allowed.
func nodeOffers(allowed string) (nodeagent.Offers, string) {
	var allow []string
	if allowed != "" {
		allow = strings.Split(allowed, ",")
	}
	ok := func(name string) bool { return allow == nil || slices.Contains(allow, name) }
	offers := nodeagent.Offers{Isolation: map[v1alpha1.Isolation]string{}}
	var why []string
	for mode, names := range providersFor {
		for _, n := range names {
			if !ok(n) {
				continue
			}
			p, err := sandbox.Lookup(n)
			if err != nil {
				continue
			}
			if avail, reason := p.Available(); !avail {
				why = append(why, n+": "+reason)
				continue
			}
			if _, have := offers.Isolation[v1alpha1.Isolation(mode)]; !have {
				offers.Isolation[v1alpha1.Isolation(mode)] = n
			}
			if !slices.Contains(offers.Providers, n) {
				offers.Providers = append(offers.Providers, n)
			}
		}
	}
	slices.SortStableFunc(offers.Providers, func(a, b string) int { return isolationStrength[b] - isolationStrength[a] })
	slices.Sort(why)
	return offers, strings.Join(why, "; ")
}

func (r *nodeRunner) Offers() nodeagent.Offers { return r.offers }

// Run runs one attempt of an AgentRun.
func (r *nodeRunner) Run(ctx context.Context, job nodeagent.Job) (*nodeagent.Outcome, error) {
	res := config.Load(job.Config, job.ConfigFile, configEvaluator)
	if res.Diags.HasErrors() {
		return nil, &nodeagent.ConfigError{File: job.ConfigFile, Diagnostics: nodeagent.DiagnosticLines(res.Diags)}
	}
	cfg := res.Config
	if job.Isolation != "" {
		cfg.Orchestrator.Isolation.Mode = config.IsolationMode(job.Isolation)
	}
	out := &egressSlot{}
	caps, err := governance.Capabilities(cfg, r.o.kube.stateDir, hostCapabilities(cfg, out.fetch))
	if err != nil {
		return nil, fmt.Errorf("the capabilities of %s: %w", job.ConfigFile, err)
	}
	p, err := plan.Read(job.Plan, job.PlanFile)
	if err != nil {
		return nil, err
	}
	var approvals []governance.Approval
	for i, text := range job.Approvals {
		a, err := governance.ParseApproval(text)
		if err != nil {
			return nil, fmt.Errorf("approval %d: %w", i+1, err)
		}
		approvals = append(approvals, a)
	}
	rc := governance.DefaultContext(cfg)
	rc.Level = r.level
	adm, err := governance.AdmitIn(rc, p, cfg, caps, approvals)
	if err != nil {
		return nil, fmt.Errorf("plan %s was not admitted:\n%w", job.PlanFile, err)
	}
	eg, err := newRunEgress(cfg, r.o.egress, nil)
	if err != nil {
		return nil, fmt.Errorf("egress proxy: %w", err)
	}
	defer eg.Close()
	out.e = eg
	if cfg.Orchestrator.Isolation.Mode == config.IsolationMicroVM {
		r.vmMu.Lock()
		defer r.vmMu.Unlock()
		if err := prepareProviders(r.stderr, res, "", eg.handler(), r.o.vm); err != nil {
			return nil, err
		}
	}
	name := r.offers.Isolation[job.Isolation]
	if name == "" {
		return nil, fmt.Errorf("this node gives no :%s isolation, and ccos does not fall back to weaker isolation", job.Isolation)
	}
	prov, err := sandbox.Lookup(name)
	if err != nil {
		return nil, err
	}
	store, err := chain.Open(chain.StorageAppendFile, filepath.Join(r.chains, job.ID+".chain"))
	if err != nil {
		return nil, fmt.Errorf("opening the run's causal chain: %w", err)
	}
	rec, err := chain.NewRecorder(store, r.signer, chain.Options{})
	if err != nil {
		store.Close()
		return nil, err
	}
	calls, err := orchestrator.NewCallRecordWith(job.Calls)
	if err != nil {
		rec.Close()
		return nil, err
	}
	eg.recordTo(rec, job.ID, adm.PlanHash, r.stderr)
	rep, err := orchestrator.Run(ctx, orchestrator.Request{Plan: p, Admission: adm, Provider: prov,
		Spec: sandbox.Spec{ID: job.ID}, Caps: caps, Recorder: rec, Calls: calls})
	if cerr := rec.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("closing the causal chain: %w", cerr)
	}
	if err != nil {
		return nil, err
	}
	o := &nodeagent.Outcome{Output: rep.Output, OutputTruncated: rep.Truncated, Provider: rep.Provider,
		PlanHash: adm.PlanHash, Checkpoint: rep.Checkpoint, InDoubt: calls.InDoubt()}
	for _, s := range rep.Steps {
		o.Steps = append(o.Steps, v1alpha1.StepSummary{Name: s.Name, OK: s.OK, Error: nodeagent.Bound(s.Error, 1024), DurationMillis: s.Duration.Milliseconds()})
	}
	if rep.Error != nil {
		o.Error = rep.Error.Type + ": " + rep.Error.Message
		if rep.Error.Where != "" {
			o.Error = rep.Error.Where + ": " + o.Error
		}
	} else if rep.Value != nil {
		o.Value = rtfs.Print(rep.Value)
	}
	return o, nil
}
