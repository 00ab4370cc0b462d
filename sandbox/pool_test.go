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

// blockingGuest waits for its connection to close.
func blockingGuest(rw io.ReadWriteCloser) int {
	io.Copy(io.Discard, rw)
	return 0
}

// TestPoolDeadlineStartsAtHandOut: a pool whose runs have a 100 ms
// deadline, idle for far longer, still hands out a live sandbox, and that
// sandbox's deadline counts from the hand-out.
func TestPoolDeadlineStartsAtHandOut(t *testing.T) {
	spec := sandbox.Spec{Limits: sandbox.Limits{Deadline: 100 * time.Millisecond}}
	pl := sandbox.NewPool(&mock.Provider{Guest: blockingGuest}, spec, 1)
	defer pl.Close()
	waitReady(t, pl, 1)
	time.Sleep(time.Second)
	if st := pl.Stats(); st.Ready != 1 || st.Died != 0 {
		t.Fatalf("after 1 s idle: %+v", st)
	}
	sb, err := pl.Start(context.Background(), sandbox.Spec{ID: "run", Limits: spec.Limits})
	if err != nil {
		t.Fatal(err)
	}
	// Alive at hand-out; ended by its deadline soon after.
	select {
	case <-sb.(sandbox.Holdable).Done():
		t.Fatal("the sandbox handed out had already ended")
	default:
	}
	var ee *sandbox.ExitError
	if err := sb.Wait(); !errors.As(err, &ee) || ee.Reason != sandbox.ExitDeadline {
		t.Fatalf("Wait = %v, want the deadline", err)
	}
}

// TestPoolReplacesDeadSandbox: a waiting sandbox that dies (its idle limit
// passed) leaves the pool at once and is replaced, and none is ever handed
// out dead.
func TestPoolReplacesDeadSandbox(t *testing.T) {
	var started atomic.Int32
	pl := sandbox.NewPoolIdle(&mock.Provider{Guest: countingGuest(&started)}, sandbox.Spec{}, 1, 50*time.Millisecond)
	defer pl.Close()
	for i := 0; i < 400 && pl.Stats().Died < 3; i++ {
		time.Sleep(5 * time.Millisecond)
	}
	if st := pl.Stats(); st.Died < 3 {
		t.Fatalf("idle sandboxes were not replaced: %+v", st)
	}
	waitReady(t, pl, 1)
	for i := 0; i < 20; i++ {
		sb, err := pl.Start(context.Background(), sandbox.Spec{ID: "run"})
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-sb.(sandbox.Holdable).Done():
			t.Fatal("a dead sandbox was handed out")
		default:
		}
		sb.Kill()
		sb.Wait()
		time.Sleep(10 * time.Millisecond)
	}
}

// flakyProvider fails its first starts.
type flakyProvider struct {
	mock.Provider
	fails atomic.Int32
}

func (f *flakyProvider) Start(ctx context.Context, spec sandbox.Spec) (sandbox.Sandbox, error) {
	if f.fails.Add(-1) >= 0 {
		return nil, errors.New("the provider failed to start a sandbox")
	}
	return f.Provider.Start(ctx, spec)
}

// A pool whose starts fail retries after a pause, fills once they work,
// and clears its error.
func TestPoolRetriesFailedStarts(t *testing.T) {
	p := &flakyProvider{Provider: mock.Provider{Guest: blockingGuest}}
	p.fails.Store(2)
	pl := sandbox.NewPool(p, sandbox.Spec{}, 1)
	defer pl.Close()
	deadline := time.Now().Add(20 * time.Second)
	for pl.Stats().Ready == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if st := pl.Stats(); st.Ready != 1 || st.LastFillError != nil {
		t.Fatalf("after two failed starts: %+v", st)
	}
}
