//go:build linux

package qemu

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/ccos-project/ccos/config"
	"github.com/ccos-project/ccos/sandbox"
)

// BenchmarkCloneStart measures a clone's start to the guest's hello, for
// 256 MiB and 1 GiB guests (the template is made before the timer runs):
// the restore reads only the device state, so the two should not differ.
func BenchmarkCloneStart(b *testing.B) {
	for _, mib := range []int{256, 1024} {
		b.Run(fmt.Sprintf("%dMiB", mib), func(b *testing.B) {
			cfg := &config.Config{AgentID: "agent.bench", MicroVM: &config.MicroVM{Rootfs: config.Rootfs{RO: true},
				Resources: config.Resources{VCPUs: 1, MemMB: mib}}}
			p := provider("guest", cfg)
			p.o.SnapshotDir = b.TempDir()
			start := func() (time.Duration, Timeline) {
				t0 := time.Now()
				sb, err := p.Start(context.Background(), sandbox.Spec{ID: "bench", Limits: sandbox.Limits{Deadline: time.Minute}})
				if err != nil {
					b.Fatal(err)
				}
				took := time.Since(t0)
				tl, _ := TimelineOf(sb)
				sb.Kill()
				sb.Wait()
				return took, tl
			}
			start() // makes the template
			b.ResetTimer()
			var all []time.Duration
			var tls []Timeline
			for i := 0; i < b.N; i++ {
				d, tl := start()
				all = append(all, d)
				tls = append(tls, tl)
			}
			b.StopTimer()
			slices.Sort(all)
			b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
			fmt.Fprintf(os.Stderr, "%s, a median clone:\n%s", b.Name(), tls[len(tls)/2])
		})
	}
}
