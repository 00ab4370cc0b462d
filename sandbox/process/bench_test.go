//go:build linux

package process

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/ccos-project/ccos/sandbox"
)

// BenchmarkProcessColdStart measures one whole sandbox life: Start, one
// round trip on the control connection, exit, cleanup (Wait).
func BenchmarkProcessColdStart(b *testing.B) {
	p := &Provider{}
	var times []time.Duration
	defer func() { reportPercentiles(b, times) }()
	for b.Loop() {
		start := time.Now()
		sb, err := p.Start(context.Background(), sandbox.Spec{ID: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		pingPong(b, sb.Control())
		if err := sb.Wait(); err != nil {
			b.Fatal(err, string(sb.Log()))
		}
		sb.Control().Close()
		times = append(times, time.Since(start))
	}
}

// BenchmarkBwrapColdStart does the same with bubblewrap around the same test
// binary (which serves the ping on fd 3 without setup of its own), for
// comparison: bwrap --unshare-all --die-with-parent --ro-bind / / --dev /dev
// --proc /proc --tmpfs /tmp, the binary bound into the new /tmp because
// `go test` builds it under the /tmp that the tmpfs hides.
func BenchmarkBwrapColdStart(b *testing.B) {
	bwrap, err := exec.LookPath("bwrap")
	if err != nil {
		b.Fatalf("bubblewrap (bwrap) is needed for this benchmark: %v", err)
	}
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	var times []time.Duration
	defer func() { reportPercentiles(b, times) }()
	for b.Loop() {
		start := time.Now()
		host, child, err := socketPair("control")
		if err != nil {
			b.Fatal(err)
		}
		cmd := exec.Command(bwrap, "--unshare-all", "--die-with-parent",
			"--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
			"--ro-bind", self, "/tmp/guest", "/tmp/guest", bwrapGuestArg)
		cmd.ExtraFiles = []*os.File{child}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		child.Close()
		pingPong(b, host)
		if err := cmd.Wait(); err != nil {
			b.Fatal(err)
		}
		host.Close()
		times = append(times, time.Since(start))
	}
}

// reportPercentiles adds the median and 90th percentile of one sandbox
// life to the benchmark's output (ns/op is the mean).
func reportPercentiles(b *testing.B, times []time.Duration) {
	if len(times) == 0 {
		return
	}
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(times[len(times)*9/10].Nanoseconds()), "p90-ns")
}

func pingPong(b *testing.B, conn interface {
	Write([]byte) (int, error)
	Read([]byte) (int, error)
}) {
	if _, err := fmt.Fprintln(conn, "ping"); err != nil {
		b.Fatal(err)
	}
	reply, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || reply != "pong\n" {
		b.Fatalf("reply %q, %v", reply, err)
	}
}
