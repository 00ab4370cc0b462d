//go:build linux

package gvisor

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ccos-project/ccos/sandbox"
)

// BenchmarkGvisorColdStart is one whole sandbox: Start, one control round
// trip (ping, pong) and the exit with cleanup. It also reports the resident
// memory of the sandbox's host processes (runsc, sentry, gofer, stubs)
// while a guest waits.
func BenchmarkGvisorColdStart(b *testing.B) {
	p := hostile()
	if ok, why := p.Available(); !ok {
		b.Fatal(why)
	}
	rss := sandboxRSS(b)
	lives := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		sb, err := p.Start(context.Background(), sandbox.Spec{ID: fmt.Sprintf("bench-%d", i)})
		if err != nil {
			b.Fatal(err)
		}
		pingPong(b, sb.Control())
		if err := sb.Wait(); err != nil {
			b.Fatal(err, string(sb.Log()))
		}
		sb.Control().Close()
		lives = append(lives, time.Since(start))
	}
	reportPercentiles(b, lives)
	b.ReportMetric(float64(rss)/(1<<20), "rss-MiB")
}

// BenchmarkRunscBare is the same round trip with runsc alone: the same
// bundle shape and flags, one state directory for all runs, runsc making
// and removing the cgroup itself, no checks, no monitoring.
func BenchmarkRunscBare(b *testing.B) {
	info := probeRunsc("runsc")
	if info.err != nil {
		b.Fatal(info.err)
	}
	dir := b.TempDir()
	bundle, state := filepath.Join(dir, "bundle"), filepath.Join(dir, "state")
	for _, d := range []string{bundle, state} {
		if err := os.Mkdir(d, 0o700); err != nil {
			b.Fatal(err)
		}
	}
	lim := sandbox.Limits{}.WithDefaults()
	if err := writeBundle(bundle, bundleConfig{binary: hostileBinary, cgroupsPath: "ccos-bench-bare", lim: lim}); err != nil {
		b.Fatal(err)
	}
	lives := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		cmd := exec.Command(info.path, "--root", state, "--network=none", "--platform=ptrace",
			"--log", filepath.Join(dir, "runsc.log"), "run", "--bundle", bundle, fmt.Sprintf("bare-%d", i))
		in, err := cmd.StdinPipe()
		if err != nil {
			b.Fatal(err)
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		fmt.Fprintln(in, "ping")
		if reply, _ := bufio.NewReader(out).ReadString('\n'); reply != "pong\n" {
			b.Fatalf("reply %q", reply)
		}
		if err := cmd.Wait(); err != nil {
			b.Fatal(err)
		}
		in.Close()
		lives = append(lives, time.Since(start))
	}
	reportPercentiles(b, lives)
}

// reportPercentiles reports the median and 90th percentile of one life.
func reportPercentiles(b *testing.B, lives []time.Duration) {
	slices.Sort(lives)
	b.ReportMetric(float64(lives[len(lives)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(lives[len(lives)*9/10].Nanoseconds()), "p90-ns")
}

type readWriter interface {
	Write([]byte) (int, error)
	Read([]byte) (int, error)
}

func pingPong(b *testing.B, c readWriter) {
	if _, err := fmt.Fprintln(c, "ping"); err != nil {
		b.Fatal(err)
	}
	if reply, _ := bufio.NewReader(c).ReadString('\n'); reply != "pong\n" {
		b.Fatalf("reply %q", reply)
	}
}

// sandboxRSS starts a guest that waits, and sums the resident memory of
// runsc and of every process in the sandbox's cgroup.
func sandboxRSS(b *testing.B) int64 {
	caps := b.TempDir()
	if err := os.WriteFile(filepath.Join(caps, "attack"), []byte("hold"), 0o644); err != nil {
		b.Fatal(err)
	}
	sb, err := hostile().Start(context.Background(), sandbox.Spec{ID: "bench-rss", CapabilitiesDir: caps})
	if err != nil {
		b.Fatal(err)
	}
	defer sb.Kill()
	if reply, _ := bufio.NewReader(sb.Control()).ReadString('\n'); reply != "ready\n" {
		b.Fatalf("reply %q", reply)
	}
	g := sb.(*gvSandbox)
	var total int64
	for _, pid := range append(g.cg.PIDs(), g.cmd.Process.Pid) {
		total += rssOf(pid)
	}
	return total
}

func rssOf(pid int) int64 {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
