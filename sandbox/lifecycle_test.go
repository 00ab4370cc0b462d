package sandbox

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestLifecycleStopsOnceAndRemembersWhy(t *testing.T) {
	var kills atomic.Int32
	var l Lifecycle
	l.Init(func() { kills.Add(1) })
	ctx, cancel := context.WithCancel(context.Background())
	l.Arm(ctx, time.Hour)
	cancel()
	for kills.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	l.Stop(ExitDeadline, "later")
	l.Exited()
	l.Finish(l.HostError(9))
	var ee *ExitError
	if err := l.Wait(); !errors.As(err, &ee) || ee.Reason != ExitKilled || kills.Load() != 1 {
		t.Fatalf("err %v, kills %d", err, kills.Load())
	}
	if l.Kill() != nil {
		t.Error("Kill after the end failed")
	}
}

func TestLifecycleDeadline(t *testing.T) {
	done := make(chan struct{})
	var l Lifecycle
	l.Init(func() { close(done) })
	l.Arm(context.Background(), time.Millisecond)
	<-done
	if r, _ := l.Cause(); r != ExitDeadline {
		t.Fatalf("cause %q", r)
	}
}

// A guest that exits by itself is not stopped by a later Kill.
func TestLifecycleExitedFirst(t *testing.T) {
	var l Lifecycle
	l.Init(func() { t.Error("killed after the exit") })
	l.Arm(context.Background(), time.Hour)
	l.Exited()
	go l.Finish(nil)
	if err := l.Kill(); err != nil || l.HostError(9) != nil {
		t.Fatal(err)
	}
}
