package sandbox_test

import (
	"context"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ccos-project/ccos/sandbox"
	"github.com/ccos-project/ccos/sandbox/mock"
)

// countingGuest counts the guests started and holds each until its
// connection closes.
func countingGuest(started *atomic.Int32) func(io.ReadWriteCloser) int {
	return func(rw io.ReadWriteCloser) int {
		started.Add(1)
		io.Copy(io.Discard, rw)
		return 0
	}
}

func waitReady(t *testing.T, pl *sandbox.Pool, n int) {
	t.Helper()
	for i := 0; i < 1000; i++ {
		if pl.Stats().Ready == n {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("pool never reached %d ready sandboxes: %+v", n, pl.Stats())
}

func TestPoolHandsOutEachSandboxOnce(t *testing.T) {
	var started atomic.Int32
	spec := sandbox.Spec{Limits: sandbox.Limits{MemoryBytes: 64 << 20}}
	pl := sandbox.NewPool(&mock.Provider{Guest: countingGuest(&started)}, spec, 2)
	defer pl.Close()
	waitReady(t, pl, 2)

	seen := map[sandbox.Sandbox]bool{}
	for i := 0; i < 5; i++ {
		sb, err := pl.Start(context.Background(), sandbox.Spec{ID: "run", Limits: spec.Limits})
		if err != nil {
			t.Fatal(err)
		}
		if seen[sb] {
			t.Fatal("a sandbox was handed out twice")
		}
		seen[sb] = true
		sb.Kill()
		sb.Wait()
		waitReady(t, pl, 2)
	}
	// 2 initial + one replacement per run.
	if got := started.Load(); got != 7 {
		t.Errorf("started %d guests, want 7", got)
	}
}

func TestPoolOtherSpecStartsCold(t *testing.T) {
	var started atomic.Int32
	pl := sandbox.NewPool(&mock.Provider{Guest: countingGuest(&started)}, sandbox.Spec{}, 1)
	defer pl.Close()
	waitReady(t, pl, 1)
	sb, err := pl.Start(context.Background(), sandbox.Spec{Limits: sandbox.Limits{PIDs: 3}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { sb.Kill(); sb.Wait() }()
	if pl.Stats().Ready != 1 {
		t.Errorf("a cold start took the pooled sandbox: %+v", pl.Stats())
	}
}

func TestPoolClose(t *testing.T) {
	var started atomic.Int32
	pl := sandbox.NewPool(&mock.Provider{Guest: countingGuest(&started)}, sandbox.Spec{}, 3)
	waitReady(t, pl, 3)
	pl.Close()
	if _, err := pl.Start(context.Background(), sandbox.Spec{}); !errors.Is(err, sandbox.ErrPoolClosed) {
		t.Errorf("Start after Close: %v", err)
	}
	if s := pl.Stats(); s.Ready != 0 {
		t.Errorf("sandboxes left after Close: %+v", s)
	}
}
