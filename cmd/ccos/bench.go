package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/ccos-project/ccos/capability"
	"github.com/ccos-project/ccos/engine"
	"github.com/ccos-project/ccos/governance"
	"github.com/ccos-project/ccos/orchestrator"
	"github.com/ccos-project/ccos/plan"
	"github.com/ccos-project/ccos/sandbox"
	"github.com/spf13/cobra"
)

// benchPlan is the plan every sandbox benchmark runs: one step, one
// capability call.
const benchPlan = `(plan "bench" :body (step "one" (call :ccos.echo 1)))`

func init() {
	var n int
	var asJSON bool
	var only []string
	var snapshots bool
	var burst, vmMem int
	var milestones bool
	bench := &cobra.Command{
		Use:   "bench",
		Short: "Measure ccos on this host",
	}
	sb := &cobra.Command{
		Use:   "sandbox",
		Short: "Cold start and warm-pool dispatch of each available provider, with bubblewrap as a baseline",
		Long: "bench sandbox runs a one-step plan N times with each available provider:\n" +
			"cold (start the sandbox, run the step, stop) and warm (take a sandbox\n" +
			"started ahead by a pool; dispatch is the time until the plan's step is\n" +
			"entered). As a baseline it runs the same guest under bubblewrap\n" +
			"(bwrap --unshare-all) over the same protocol, when bwrap is installed.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if burst > 0 || milestones {
				if len(only) != 1 || only[0] != "qemu" {
					return usageError("--burst and --milestones measure the qemu provider: add --provider qemu")
				}
				return benchQEMU(cmd.OutOrStdout(), qemuBench{n: n, burst: burst, memMiB: vmMem, snapshots: snapshots, milestones: milestones, json: asJSON})
			}
			rows, err := benchSandboxes(n, only, snapshots)
			if err != nil {
				return rejected("ccos bench: " + err.Error())
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), map[string]any{"runs": n, "results": rows})
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "PROVIDER\tMODE\tP50\tP90\tMIN\tUNIT")
			for _, r := range rows {
				unit := r.Unit
				if unit == "" {
					unit = "ms"
				}
				fmt.Fprintf(w, "%s\t%s\t%.2f\t%.2f\t%.2f\t%s\n", r.Provider, r.Mode, r.P50, r.P90, r.Min, unit)
			}
			return w.Flush()
		},
	}
	sb.Flags().IntVar(&n, "n", 30, "runs per provider and mode")
	sb.Flags().BoolVar(&snapshots, "vm-snapshots", false, "start qemu guests as clones of a template (see ccos run --vm-snapshots)")
	sb.Flags().IntVar(&burst, "burst", 0, "qemu: start this many guests at once (clones with --vm-snapshots) and report the time until all are ready and their memory (PSS, private)")
	sb.Flags().BoolVar(&milestones, "milestones", false, "qemu: print each start's timeline: the host's start steps and the guest's own boot milestones (kernel, /init, modules, ready)")
	sb.Flags().IntVar(&vmMem, "vm-mem", 0, "qemu: guest memory in MiB for --burst and --milestones (default: the sandbox's memory limit)")
	sb.Flags().StringArrayVar(&only, "provider", nil, "benchmark only this provider (repeatable; default: every available one)")
	sb.Flags().BoolVar(&asJSON, "json", false, "print one JSON document")
	bench.AddCommand(sb)
	rootCmd.AddCommand(bench)
}

type benchRow struct {
	Provider string  `json:"provider"`
	Mode     string  `json:"mode"`
	P50      float64 `json:"p50_ms"`
	P90      float64 `json:"p90_ms"`
	Min      float64 `json:"min_ms"`
	// Unit is "ms" when empty; "MiB" for resident memory.
	Unit string `json:"unit,omitempty"`
}

func benchSandboxes(n int, only []string, snapshots bool) ([]benchRow, error) {
	if n < 1 {
		return nil, errors.New("--n must be at least 1")
	}
	p, err := plan.Read([]byte(benchPlan), "bench.rtfs")
	if err != nil {
		return nil, err
	}
	eng, err := engine.New(engine.Options{VMSnapshots: snapshots, Logger: cliLogger()})
	if err != nil {
		return nil, err
	}
	defer eng.Close()
	agent, err := eng.LoadAgent([]byte(defaultConfig), "<default config>", engine.AgentOptions{})
	if err != nil {
		return nil, err
	}
	adm, err := governance.Admit(p, agent.Config().Config, capability.Builtins(nil), nil)
	if err != nil {
		return nil, err
	}
	providers := []sandbox.Provider{}
	for _, prov := range agent.SandboxProviders() {
		if len(only) > 0 && !slices.Contains(only, prov.Name()) {
			continue
		}
		if ok, why := prov.Available(); ok && prov.Name() != "mock" {
			providers = append(providers, prov)
		} else if len(only) > 0 {
			return nil, fmt.Errorf("provider %s is not available: %s", prov.Name(), why)
		}
	}
	if len(only) == 0 || slices.Contains(only, "bwrap") {
		if bw, err := newBwrapProvider(); err == nil {
			providers = append(providers, bw)
		} else {
			fmt.Fprintln(os.Stderr, "ccos bench: no bubblewrap baseline:", err)
		}
	}
	var rows []benchRow
	for _, prov := range providers {
		// One run first, so that caches (compiled modules, page cache) are warm
		// for every provider alike.
		if _, err := benchRun(p, adm, prov); err != nil {
			return nil, fmt.Errorf("%s: %w", prov.Name(), err)
		}
		cold := make([]time.Duration, 0, n)
		ready := make([]time.Duration, 0, n)
		for i := 0; i < n; i++ {
			rep, err := benchRun(p, adm, prov)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", prov.Name(), err)
			}
			cold = append(cold, rep.Total)
			ready = append(ready, rep.Startup)
		}
		rows = append(rows, summarise(prov.Name(), "cold start to guest ready", ready))
		rows = append(rows, summarise(prov.Name(), "cold start, step, stop", cold))
		if rss, err := benchRSS(prov); err == nil && rss != nil {
			rows = append(rows, *rss)
		}
		warm, err := benchWarm(p, adm, prov, n)
		if err != nil {
			return nil, fmt.Errorf("%s warm: %w", prov.Name(), err)
		}
		rows = append(rows, summarise(prov.Name(), "warm pool dispatch", warm))
	}
	return rows, nil
}

func benchRun(p *plan.Plan, adm *governance.Admission, prov sandbox.Provider) (*orchestrator.Report, error) {
	rep, err := orchestrator.Run(context.Background(), orchestrator.Request{Plan: p, Admission: adm, Provider: prov, Caps: capability.Builtins(nil)})
	if err != nil {
		return nil, err
	}
	if rep.Error != nil {
		return nil, fmt.Errorf("plan failed: %s", rep.Error.Message)
	}
	return rep, nil
}

// benchWarm measures dispatch from a pool of one: each run waits until
// the pool holds a ready sandbox, then times until the step is entered.
func benchWarm(p *plan.Plan, adm *governance.Admission, prov sandbox.Provider, n int) ([]time.Duration, error) {
	pool := sandbox.NewPool(prov, sandbox.Spec{}, 1)
	defer pool.Close()
	out := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		deadline := time.Now().Add(30 * time.Second)
		for pool.Stats().Ready == 0 {
			if err := pool.Stats().LastFillError; err != nil {
				return nil, err
			}
			if time.Now().After(deadline) {
				return nil, errors.New("the pool did not fill within 30s")
			}
			time.Sleep(time.Millisecond)
		}
		// Give the pooled guest time to reach its first read.
		time.Sleep(20 * time.Millisecond)
		rep, err := benchRun(p, adm, pool)
		if err != nil {
			return nil, err
		}
		out = append(out, rep.Dispatch)
	}
	return out, nil
}

// benchRSS measures the resident memory of the host processes of one
// ready sandbox (the VMM, the sandbox's kernel and helpers), for providers
// that report them.
func benchRSS(prov sandbox.Provider) (*benchRow, error) {
	sb, err := prov.Start(context.Background(), sandbox.Spec{ID: "bench-rss"})
	if err != nil {
		return nil, err
	}
	defer func() {
		sb.Kill()
		sb.Wait()
	}()
	pr, ok := sb.(sandbox.HostProcesses)
	if !ok {
		return nil, nil
	}
	// Wait for the guest's hello: the sandbox is then booted and ready.
	if _, err := sb.Control().Read(make([]byte, 1)); err != nil {
		return nil, err
	}
	var total int64
	for _, pid := range pr.HostPIDs() {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				var kb int64
				fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb)
				total += kb << 10
			}
		}
	}
	mib := float64(total) / (1 << 20)
	return &benchRow{Provider: prov.Name(), Mode: "resident memory of host processes", P50: mib, P90: mib, Min: mib, Unit: "MiB"}, nil
}

func summarise(name, mode string, ds []time.Duration) benchRow {
	slices.Sort(ds)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return benchRow{Provider: name, Mode: mode, P50: ms(ds[len(ds)/2]), P90: ms(ds[len(ds)*9/10]), Min: ms(ds[0])}
}

// bwrapProvider runs `ccos guest` under bubblewrap with the control channel
// on its standard input and output. It is a benchmark baseline, not a
// provider of ccos: it applies no seccomp filter and no cgroup limits.
type bwrapProvider struct{ bwrap, self string }

func newBwrapProvider() (*bwrapProvider, error) {
	bw, err := exec.LookPath("bwrap")
	if err != nil {
		return nil, errors.New("bwrap is not installed (Debian package bubblewrap)")
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return &bwrapProvider{bwrap: bw, self: self}, nil
}

func (b *bwrapProvider) Name() string              { return "bwrap (baseline)" }
func (b *bwrapProvider) Available() (bool, string) { return true, "bubblewrap --unshare-all" }
func (b *bwrapProvider) Start(ctx context.Context, _ sandbox.Spec) (sandbox.Sandbox, error) {
	cmd := exec.Command(b.bwrap, "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/",
		"--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp", "--ro-bind", b.self, "/tmp/ccos", "/tmp/ccos", "guest")
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &bwrapBox{cmd: cmd, rw: pipeConn{out, in}}, nil
}

type pipeConn struct {
	io.ReadCloser
	w io.WriteCloser
}

func (p pipeConn) Write(b []byte) (int, error) { return p.w.Write(b) }
func (p pipeConn) Close() error {
	p.w.Close()
	return p.ReadCloser.Close()
}

type bwrapBox struct {
	cmd  *exec.Cmd
	rw   pipeConn
	once sync.Once
	err  error
}

func (b *bwrapBox) Control() io.ReadWriteCloser { return b.rw }
func (b *bwrapBox) Wait() error {
	b.once.Do(func() { b.err = b.cmd.Wait() })
	return b.err
}
func (b *bwrapBox) Kill() error { return b.cmd.Process.Kill() }
func (b *bwrapBox) Log() []byte { return nil }
