package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/ccos-project/ccos/engine"
	"github.com/ccos-project/ccos/supervisor"
	"github.com/ccos-project/ccos/supervisor/client"
	"github.com/spf13/cobra"
)

func init() {
	var n, baselineN int
	var conc []int
	var providers []string
	var snapshots, asJSON bool
	var cpuProfile string
	cmd := &cobra.Command{
		Use:   "supervisor",
		Short: "Throughput and submit-to-done latency of a supervisor, per provider and concurrency, against ccos run one at a time",
		Long: "bench supervisor starts a supervisor in this process (its API on a Unix\n" +
			"socket, a run store, a warm pool per agent) with one agent per provider,\n" +
			"and submits N runs of a one-step plan at each concurrency through the\n" +
			"API client, each worker waiting for its run's end before the next. The\n" +
			"baseline runs the same plan with `ccos run` (a new process per run), one\n" +
			"at a time.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return usageErr("--cpuprofile: %v", err)
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return usageErr("--cpuprofile: %v", err)
				}
				defer pprof.StopCPUProfile()
			}
			rows, err := benchSupervisor(providers, conc, n, baselineN, snapshots)
			if err != nil {
				return rejected("ccos bench supervisor: " + err.Error())
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), map[string]any{"results": rows})
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "PROVIDER\tMODE\tCONC\tRUNS\tFAILED\tRUNS/S\tP50 ms\tP99 ms")
			for _, r := range rows {
				fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%d\t%.1f\t%.2f\t%.2f\n", r.Provider, r.Mode, r.Concurrency, r.Runs, r.Failed, r.RunsPerSec, r.P50, r.P99)
			}
			return w.Flush()
		},
	}
	cmd.Flags().IntVar(&n, "n", 200, "runs per provider and concurrency")
	cmd.Flags().IntVar(&baselineN, "baseline-n", 20, "runs of the ccos run baseline per provider")
	cmd.Flags().IntSliceVar(&conc, "concurrency", []int{1, 8, 32}, "concurrencies to measure")
	cmd.Flags().StringArrayVar(&providers, "provider", []string{"process", "wasm"}, "providers to measure (repeatable): process, wasm, gvisor, qemu")
	cmd.Flags().BoolVar(&snapshots, "vm-snapshots", false, "start qemu guests from a snapshot")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON document")
	cmd.Flags().StringVar(&cpuProfile, "cpuprofile", "", "write the supervisor process's CPU profile here (sandboxes are other processes)")
	for _, c := range rootCmd.Commands() {
		if c.Name() == "bench" {
			c.AddCommand(cmd)
		}
	}
}

// supervisorBenchRow is one measurement.
type supervisorBenchRow struct {
	Provider string `json:"provider"`
	// Mode is "supervisor" or "ccos run" (the baseline).
	Mode string `json:"mode"`
	client.LoadResult
}

const supervisorBenchPlan = `(plan "bench" :body (step "one" (call :ccos.math.add 1 2)))`

func benchSupervisor(providers []string, conc []int, n, baselineN int, snapshots bool) ([]supervisorBenchRow, error) {
	dir, err := os.MkdirTemp("", "ccos-bench-supervisor-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	eng, err := engine.New(engine.Options{VMSnapshots: snapshots, Logger: cliLogger()})
	if err != nil {
		return nil, err
	}
	defer eng.Close()
	pool := slices.Max(conc)
	limits := map[string]int{}
	for _, p := range providers {
		cfg := `(profile:minimal "bench.` + p + `")`
		if p == "qemu" || p == "firecracker" {
			cfg = `(assoc-in (profile:minimal "bench.` + p + `") [:orchestrator :isolation :mode] :microvm)`
		}
		a, err := eng.LoadAgent([]byte(cfg), "<bench>", engine.AgentOptions{Provider: p, AllowWeaker: true, Pool: min(pool, 8)})
		if err != nil {
			return nil, err
		}
		if err := a.Prepare(); err != nil {
			return nil, fmt.Errorf("provider %s: %w", p, err)
		}
		limits[p] = pool
	}
	store, err := supervisor.OpenStore(filepath.Join(dir, "runs.db"))
	if err != nil {
		return nil, err
	}
	defer store.Close()
	sup, err := supervisor.New(supervisor.Options{Engine: eng, Store: store, Limits: limits, QueueSize: 4 * pool,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, err
	}
	sock := filepath.Join(dir, "s.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: sup.Handler(nil)}
	go srv.Serve(ln)
	defer srv.Close()
	c := client.Unix(sock)
	ctx := context.Background()
	var rows []supervisorBenchRow
	for _, p := range providers {
		// Warm up: the pool fills, the module caches.
		client.Load(ctx, c, "bench."+p, supervisor.Submission{Plan: supervisorBenchPlan}, pool, pool)
		for _, k := range conc {
			res := client.Load(ctx, c, "bench."+p, supervisor.Submission{Plan: supervisorBenchPlan}, n, k)
			rows = append(rows, supervisorBenchRow{Provider: p, Mode: "supervisor", LoadResult: res})
		}
		base, err := benchCcosRun(p, baselineN, dir, snapshots)
		if err != nil {
			return nil, err
		}
		rows = append(rows, supervisorBenchRow{Provider: p, Mode: "ccos run", LoadResult: base})
	}
	ctxD, cancel := context.WithTimeout(ctx, 30*time.Second)
	sup.Drain(ctxD)
	cancel()
	return rows, nil
}

// benchCcosRun runs the plan n times through `ccos run`, one at a time.
func benchCcosRun(provider string, n int, dir string, snapshots bool) (client.LoadResult, error) {
	self, err := os.Executable()
	if err != nil {
		return client.LoadResult{}, err
	}
	planFile := filepath.Join(dir, "plan.rtfs")
	if err := os.WriteFile(planFile, []byte(supervisorBenchPlan), 0o644); err != nil {
		return client.LoadResult{}, err
	}
	args := []string{"run", "--provider", provider, "--allow-weaker", planFile}
	if snapshots {
		args = append(args, "--vm-snapshots")
	}
	var lat []time.Duration
	failed := 0
	start := time.Now()
	for i := 0; i < n; i++ {
		t0 := time.Now()
		cmd := exec.Command(self, args...)
		cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
		if err := cmd.Run(); err != nil {
			failed++
			continue
		}
		lat = append(lat, time.Since(t0))
	}
	el := time.Since(start)
	res := client.LoadResult{Runs: n, Concurrency: 1, Failed: failed, Seconds: el.Seconds(), RunsPerSec: float64(n-failed) / el.Seconds()}
	if len(lat) > 0 {
		slices.Sort(lat)
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		res.P50, res.P99, res.Max = ms(lat[len(lat)/2]), ms(lat[min(len(lat)-1, len(lat)*99/100)]), ms(lat[len(lat)-1])
	}
	return res, nil
}
