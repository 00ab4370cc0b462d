package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/ccos-project/ccos/config"
	"github.com/ccos-project/ccos/engine"
	"github.com/ccos-project/ccos/sandbox"
	"github.com/ccos-project/ccos/sandbox/qemu"
)

// qemuBench are the settings of `ccos bench sandbox --provider qemu` with
// --burst or --milestones.
type qemuBench struct {
	n, burst, memMiB      int
	snapshots, milestones bool
	json                  bool
}

// usageError makes ccos exit 2 with msg.
func usageError(msg string) error { return &exitError{code: exitUsage, msg: msg} }

// benchQEMU runs the qemu-only benchmark modes.
func benchQEMU(w io.Writer, qb qemuBench) error {
	if qb.n < 1 || qb.burst < 0 || qb.memMiB < 0 {
		return usageError("--n must be at least 1, --burst and --vm-mem not negative")
	}
	prov, closeEngine, err := benchQEMUProvider(qb)
	if err != nil {
		return rejected("ccos bench: " + err.Error())
	}
	defer closeEngine()
	// One start first: it makes (or loads) the template and fills the page
	// cache, for every mode alike.
	if _, _, err := benchStartOne(prov); err != nil {
		return rejected("ccos bench: " + err.Error())
	}
	out := map[string]any{"load_average": loadAverage(), "vm_snapshots": qb.snapshots}
	if qb.milestones {
		runs, err := benchMilestones(prov, qb.n)
		if err != nil {
			return rejected("ccos bench: " + err.Error())
		}
		out["starts"] = runs
		if !qb.json {
			printMilestones(w, runs)
		}
	}
	if qb.burst > 0 {
		res, err := benchBurst(prov, qb.burst)
		if err != nil {
			return rejected("ccos bench: " + err.Error())
		}
		out["burst"] = res
		if !qb.json {
			printBurst(w, res, qb.snapshots)
		}
	}
	if qb.json {
		return writeJSON(w, out)
	}
	return nil
}

// benchQEMUProvider is a qemu provider built by the engine for the default
// config, with the guest memory of --vm-mem; close ends the engine.
func benchQEMUProvider(qb qemuBench) (prov *qemu.Provider, close func(), err error) {
	eng, err := engine.New(engine.Options{VMSnapshots: qb.snapshots, Logger: cliLogger()})
	if err != nil {
		return nil, nil, err
	}
	agent, err := eng.LoadAgent([]byte(defaultConfig), "<default config>", engine.AgentOptions{})
	if err != nil {
		eng.Close()
		return nil, nil, err
	}
	var q *qemu.Provider
	for _, p := range agent.SandboxProviders() {
		if p, ok := p.(*qemu.Provider); ok {
			q = p
		}
	}
	if q == nil {
		eng.Close()
		return nil, nil, errors.New("the engine has no qemu provider")
	}
	o := q.Options()
	if qb.memMiB > 0 {
		cfg := *o.Config
		vm := config.MicroVM{}
		if cfg.MicroVM != nil {
			vm = *cfg.MicroVM
		}
		vm.Rootfs.RO = true
		vm.Resources.MemMB = qb.memMiB
		cfg.MicroVM = &vm
		o.Config = &cfg
	}
	prov = qemu.New(o)
	if ok, why := prov.Available(); !ok {
		eng.Close()
		return nil, nil, fmt.Errorf("provider qemu is not available: %s", why)
	}
	return prov, func() { eng.Close() }, nil
}

// benchStartOne starts one guest, waits until it is ready, and returns its
// timeline and how long Start took, then ends it.
func benchStartOne(prov *qemu.Provider) (time.Duration, qemu.Timeline, error) {
	t0 := time.Now()
	sb, err := prov.Start(context.Background(), sandbox.Spec{ID: "bench", Limits: sandbox.Limits{Deadline: 2 * time.Minute}})
	if err != nil {
		return 0, qemu.Timeline{}, err
	}
	took := time.Since(t0)
	tl, _ := qemu.TimelineOf(sb)
	sb.Kill()
	sb.Wait()
	return took, tl, nil
}

// milestoneRun is one start of the milestones mode.
type milestoneRun struct {
	LoadAverage string        `json:"load_average"`
	Start       time.Duration `json:"start_ns"`
	Timeline    qemu.Timeline `json:"timeline"`
}

func benchMilestones(prov *qemu.Provider, n int) ([]milestoneRun, error) {
	var runs []milestoneRun
	for i := 0; i < n; i++ {
		load := loadAverage()
		took, tl, err := benchStartOne(prov)
		if err != nil {
			return nil, err
		}
		runs = append(runs, milestoneRun{LoadAverage: load, Start: took, Timeline: tl})
	}
	return runs, nil
}

// phases are the spans of a start between milestones: the host's and,
// for a boot, the guest's (kernel start is the guest's uptime 0).
func phases(r milestoneRun) []struct {
	name string
	d    time.Duration
} {
	type ph = struct {
		name string
		d    time.Duration
	}
	var out []ph
	tl := r.Timeline
	prev, prevName := time.Duration(0), "kernel start"
	if !tl.Clone {
		for _, g := range tl.Guest {
			out = append(out, ph{prevName + " → " + g.What, g.Uptime - prev})
			prev, prevName = g.Uptime, g.What
		}
		if n := len(tl.Guest); n > 0 {
			// The host's ready (first bytes) less the guest's last
			// milestone: QEMU's own start until the kernel runs, and the
			// guest's hello.
			out = append([]ph{{"QEMU start → kernel start, + hello (host ready − guest ready)", tl.Ready - tl.Guest[n-1].Uptime}}, out...)
		}
	} else {
		for _, s := range tl.Steps {
			if s.Took >= time.Millisecond {
				out = append(out, ph{"host " + s.Name, s.Took})
			}
		}
	}
	out = append(out, ph{"QEMU CPU time to ready", tl.ReadyCPU})
	return out
}

func printMilestones(w io.Writer, runs []milestoneRun) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tLOAD (1, 5, 15 min)\tSTART ms\tREADY ms\tQEMU CPU ms\tTBs\tGUEST MILESTONES (uptime, ms)")
	for i, r := range runs {
		var marks []string
		for _, g := range r.Timeline.Guest {
			marks = append(marks, fmt.Sprintf("%s %.0f", g.What, msf(g.Uptime)))
		}
		fmt.Fprintf(tw, "%d\t%s\t%.1f\t%.1f\t%.1f\t%d\t%s\n", i+1, r.LoadAverage, msf(r.Start), msf(r.Timeline.Ready), msf(r.Timeline.ReadyCPU), r.Timeline.TranslatedBlocks, strings.Join(marks, "; "))
	}
	tw.Flush()
	// Each phase over the runs: its median and spread show which part of
	// the start varies between runs.
	byName := map[string][]time.Duration{}
	var order []string
	for _, r := range runs {
		for _, p := range phases(r) {
			if _, ok := byName[p.name]; !ok {
				order = append(order, p.name)
			}
			byName[p.name] = append(byName[p.name], p.d)
		}
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PHASE\tP50 ms\tMIN ms\tMAX ms\tSPREAD ms")
	for _, name := range order {
		ds := slices.Clone(byName[name])
		slices.Sort(ds)
		fmt.Fprintf(tw, "%s\t%.1f\t%.1f\t%.1f\t%.1f\n", name, msf(ds[len(ds)/2]), msf(ds[0]), msf(ds[len(ds)-1]), msf(ds[len(ds)-1]-ds[0]))
	}
	tw.Flush()
}

// burstResult is a burst of starts at once.
type burstResult struct {
	N int `json:"n"`
	// AllReady is the time from the first Start to the last guest ready.
	AllReady time.Duration `json:"all_ready_ns"`
	// Ready are each start's times to ready, sorted.
	Ready []time.Duration `json:"ready_ns"`
	// Memory of each QEMU while all are ready, and the totals.
	Memory                 []qemu.Memory `json:"memory"`
	TotalPSS, TotalPrivate int64         `json:"-"`
	LoadBefore, LoadAfter  string        `json:"-"`
}

func benchBurst(prov *qemu.Provider, n int) (*burstResult, error) {
	res := &burstResult{N: n, LoadBefore: loadAverage()}
	sbs := make([]sandbox.Sandbox, n)
	errs := make([]error, n)
	ready := make([]time.Duration, n)
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sbs[i], errs[i] = prov.Start(context.Background(), sandbox.Spec{ID: fmt.Sprintf("burst-%d", i), Limits: sandbox.Limits{Deadline: 5 * time.Minute}})
			ready[i] = time.Since(t0)
		}()
	}
	wg.Wait()
	res.AllReady = time.Since(t0)
	defer func() {
		for _, sb := range sbs {
			if sb != nil {
				sb.Kill()
				sb.Wait()
			}
		}
	}()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	slices.Sort(ready)
	res.Ready = ready
	for _, sb := range sbs {
		for _, pid := range sb.(sandbox.HostProcesses).HostPIDs() {
			m, err := qemu.ProcessMemory(pid)
			if err != nil {
				return nil, err
			}
			res.Memory = append(res.Memory, m)
			res.TotalPSS += m.PSS
			res.TotalPrivate += m.Private
		}
	}
	res.LoadAfter = loadAverage()
	return res, nil
}

func printBurst(w io.Writer, r *burstResult, clones bool) {
	what := "booted guests"
	if clones {
		what = "clones"
	}
	mib := func(b int64) float64 { return float64(b) / (1 << 20) }
	per := func(f func(qemu.Memory) int64) (p50, max float64) {
		v := make([]int64, len(r.Memory))
		for i, m := range r.Memory {
			v[i] = f(m)
		}
		slices.Sort(v)
		return mib(v[len(v)/2]), mib(v[len(v)-1])
	}
	pssP50, pssMax := per(func(m qemu.Memory) int64 { return m.PSS })
	privP50, privMax := per(func(m qemu.Memory) int64 { return m.Private })
	rssP50, _ := per(func(m qemu.Memory) int64 { return m.RSS })
	fmt.Fprintf(w, "burst of %d %s (load average before %s, after %s)\n", r.N, what, r.LoadBefore, r.LoadAfter)
	fmt.Fprintf(w, "  all ready        %.1f ms (first %.1f ms, p50 %.1f ms)\n", msf(r.AllReady), msf(r.Ready[0]), msf(r.Ready[len(r.Ready)/2]))
	fmt.Fprintf(w, "  PSS total        %.1f MiB (per guest p50 %.1f, max %.1f)\n", mib(r.TotalPSS), pssP50, pssMax)
	fmt.Fprintf(w, "  private total    %.1f MiB (per guest p50 %.1f, max %.1f)\n", mib(r.TotalPrivate), privP50, privMax)
	fmt.Fprintf(w, "  RSS per guest    %.1f MiB p50\n", rssP50)
}

// loadAverage is the host's load average, as /proc/loadavg says it.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func msf(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
