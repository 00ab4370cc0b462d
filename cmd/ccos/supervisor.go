package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/ccos-project/ccos/governance"
	"github.com/ccos-project/ccos/sandbox"
	"github.com/ccos-project/ccos/supervisor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
)

// defaultSupervisorSocket is where the supervisor listens without --socket.
const defaultSupervisorSocket = "/run/ccos/supervisor.sock"

func init() {
	var o supervisorOptions
	cmd := &cobra.Command{
		Use:   "supervisor",
		Short: "Run long-lived: keep a guest ready, admit and run submitted plans, restart crashed guests",
		Long: "ccos supervisor serves the control plane on a Unix socket: POST /v1/plans\n" +
			"(admit and run a plan), GET /v1/health, GET /metrics. Each plan runs in a\n" +
			"fresh guest from the clean image; a warm pool boots the next one while a\n" +
			"plan runs. A guest that crashes is counted and recorded, and the plan is\n" +
			"replayed once in a fresh guest only when the config's\n" +
			":orchestrator :replay_on_crash allows it (or --replay).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return serveSupervisor(cmd.Context(), cmd.ErrOrStderr(), o)
		},
	}
	cmd.Flags().StringVar(&o.cfgPath, "config", "", "agent config file (default: "+defaultConfig+")")
	cmd.Flags().StringVar(&o.socket, "socket", defaultSupervisorSocket, "Unix socket of the control plane")
	cmd.Flags().StringVar(&o.provider, "provider", "auto", "sandbox provider (as for ccos run)")
	cmd.Flags().BoolVar(&o.allowWeaker, "allow-weaker", false, "allow --provider to give weaker isolation than the config asks for")
	cmd.Flags().IntVar(&o.pool, "pool", 1, "guests kept booted and ready (0: boot one per plan)")
	cmd.Flags().StringVar(&o.chainPath, "chain", "", "causal chain file (default: the config's :causal_chain :storage)")
	cmd.Flags().StringVar(&o.chainKey, "chain-key", "", "note signing key for chain checkpoints (ccos chain keygen)")
	cmd.Flags().BoolVar(&o.replay, "replay", false, "replay a plan once in a fresh guest after a crash, whatever the config says")
	cmd.Flags().StringVar(&o.level, "security-level", "controlled", "pure, controlled or full")
	o.egress.register(cmd)
	o.vm.register(cmd.Flags())
	o.kube.register(cmd.Flags())

	var socket string
	var approvals []string
	submit := &cobra.Command{
		Use:   "submit PLAN",
		Short: "Submit a plan to a running supervisor and print its result",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return submitPlan(cmd.OutOrStdout(), socket, args[0], approvals)
		},
	}
	submit.Flags().StringVar(&socket, "socket", defaultSupervisorSocket, "the supervisor's Unix socket")
	submit.Flags().StringArrayVar(&approvals, "approval", nil, "an approval file from `ccos plan approve` (repeatable)")
	health := &cobra.Command{
		Use:   "health",
		Short: "Print a running supervisor's health; exit 1 unless it is ok",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return supervisorHealth(cmd.OutOrStdout(), socket)
		},
	}
	health.Flags().StringVar(&socket, "socket", defaultSupervisorSocket, "the supervisor's Unix socket")
	cmd.AddCommand(submit, health)
	rootCmd.AddCommand(cmd)
}

type supervisorOptions struct {
	cfgPath, socket, provider, chainPath, chainKey, level string
	pool                                                  int
	replay, allowWeaker                                   bool
	egress                                                egressFlags
	vm                                                    vmOptions
	kube                                                  kubeFlags // --kube: the Kubernetes node agent (k8s.go)
}

func serveSupervisor(ctx context.Context, stderr io.Writer, o supervisorOptions) error {
	if o.kube.enabled {
		return serveKubeNode(ctx, stderr, o)
	}
	if ctx == nil {
		ctx = context.Background()
	}
	level, err := governance.ParseLevel(o.level)
	if err != nil {
		return &exitError{code: exitUsage, msg: "ccos supervisor: --security-level: " + err.Error()}
	}
	res, err := loadRunConfig(o.cfgPath)
	if err != nil {
		return err
	}
	if res.Diags.HasErrors() {
		printDiags(stderr, res.Diags)
		return rejected(fmt.Sprintf("ccos supervisor: the agent config %s is invalid", res.File))
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	eg, err := newRunEgress(res.Config, o.egress, reg)
	if err != nil {
		return rejected("ccos supervisor: egress proxy: " + err.Error())
	}
	defer eg.Close()
	if err := prepareProviders(stderr, res, o.cfgPath, eg.handler(), o.vm); err != nil {
		return rejected("ccos supervisor: " + err.Error())
	}
	prov, err := chooseProvider(res.Config, o.provider, o.allowWeaker)
	if err != nil {
		return rejected("ccos supervisor: " + err.Error())
	}
	var pool *sandbox.Pool
	if o.pool > 0 {
		pool = sandbox.NewPool(prov, sandbox.Spec{}, o.pool)
		prov = pool
	}
	rec, err := openRunChain(stderr, res.Config, o.chainPath, o.chainKey)
	if err != nil {
		return rejected("ccos supervisor: " + err.Error())
	}
	defer rec.Close()
	rc := governance.DefaultContext(res.Config)
	rc.Level = level
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	eg.recordTo(rec, "supervisor", "", stderr)
	caps, err := governance.Capabilities(res.Config, governance.ConfigDir(res.File), hostCapabilities(res.Config, (&egressSlot{e: eg}).fetch))
	if err != nil {
		return rejected("ccos supervisor: " + err.Error())
	}
	sup, err := supervisor.New(supervisor.Options{Config: res.Config, Provider: prov, Caps: caps,
		Context: &rc, Recorder: rec, Replay: o.replay || res.Config.Orchestrator.ReplayOnCrash, Registerer: reg, Logger: logger})
	if err != nil {
		return rejected("ccos supervisor: " + err.Error())
	}
	if err := os.MkdirAll(filepath.Dir(o.socket), 0o700); err != nil {
		return rejected("ccos supervisor: " + err.Error())
	}
	if err := removeStaleSocket(o.socket); err != nil {
		return rejected("ccos supervisor: " + err.Error())
	}
	ln, err := net.Listen("unix", o.socket)
	if err != nil {
		return rejected("ccos supervisor: " + err.Error())
	}
	// Only the owner (root, normally) may talk to the control plane.
	if err := os.Chmod(o.socket, 0o600); err != nil {
		ln.Close()
		return rejected("ccos supervisor: " + err.Error())
	}
	srv := &http.Server{Handler: sup.Handler(reg), ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	logger.Info("supervisor listening", "socket", o.socket, "provider", prov.Name(), "pool", o.pool,
		"agent", res.Config.AgentID)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err = <-errc:
	case <-ctx.Done():
		logger.Info("supervisor stopping")
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = srv.Shutdown(sctx)
		cancel()
	}
	sup.Stop()
	os.Remove(o.socket)
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return rejected("ccos supervisor: " + err.Error())
	}
	return nil
}

// removeStaleSocket removes a socket left by a supervisor that is gone, and
// refuses to start beside one that still answers.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("%s exists and is not a socket", path)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("a supervisor is already listening on %s", path)
	}
	return os.Remove(path)
}

func unixClient(socket string) *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}}}
}

func submitPlan(stdout io.Writer, socket, planPath string, approvalFiles []string) error {
	src, name, err := readInput(planPath)
	if err != nil {
		return rejected(err.Error())
	}
	sub := supervisor.Submission{Plan: string(src), File: name}
	for _, f := range approvalFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			return rejected("ccos supervisor submit: " + err.Error())
		}
		sub.Approvals = append(sub.Approvals, string(b))
	}
	body, _ := json.Marshal(sub)
	resp, err := unixClient(socket).Post("http://ccos/v1/plans", "application/json", bytes.NewReader(body))
	if err != nil {
		return rejected("ccos supervisor submit: " + err.Error())
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return rejected("ccos supervisor submit: " + err.Error())
	}
	stdout.Write(out)
	if resp.StatusCode != http.StatusOK {
		return rejected(fmt.Sprintf("ccos supervisor submit: %s", resp.Status))
	}
	var res supervisor.Result
	if json.Unmarshal(out, &res) == nil && res.Error != nil {
		return rejected("ccos supervisor submit: the plan failed: " + res.Error.Message)
	}
	return nil
}

func supervisorHealth(stdout io.Writer, socket string) error {
	resp, err := unixClient(socket).Get("http://ccos/v1/health")
	if err != nil {
		return rejected("ccos supervisor health: " + err.Error())
	}
	defer resp.Body.Close()
	io.Copy(stdout, io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return rejected("ccos supervisor health: " + resp.Status)
	}
	return nil
}
