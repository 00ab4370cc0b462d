package capability

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ccos-project/ccos/rtfs"
)

// Invoke holds a call to the earlier of its contract's :max_time_ms and
// its caller's deadline, even for an implementation that ignores its
// context.
func TestInvokeTimeLimit(t *testing.T) {
	slow := &Capability{ID: "test.slow", Contract: Contract{MaxTimeMS: 40}, Fn: func(context.Context, []rtfs.Value) (rtfs.Value, error) {
		time.Sleep(150 * time.Millisecond)
		return rtfs.Int{V: 1}, nil
	}}
	var tl *TimeLimitError
	if _, err := Invoke(context.Background(), slow, nil); !errors.As(err, &tl) || !tl.Contract || tl.Limit != 40*time.Millisecond || !errors.Is(err, ErrTimeLimit) {
		t.Errorf("contract limit: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := Invoke(ctx, slow, nil); !errors.As(err, &tl) || tl.Contract {
		t.Errorf("caller's deadline: %v", err)
	}
	fast := &Capability{ID: "test.fast", Contract: Contract{MaxTimeMS: 1000}, Fn: echo}
	if v, err := Invoke(context.Background(), fast, []rtfs.Value{rtfs.Int{V: 7}}); err != nil || rtfs.Print(v) != "7" {
		t.Errorf("within the limit: %v %v", v, err)
	}
	// concat watches its context and refuses a result over MaxValueBytes
	// before building it.
	big := rtfs.String{V: string(make([]byte, MaxValueBytes/2+1))}
	if _, err := concat(context.Background(), []rtfs.Value{big, big}); err == nil {
		t.Error("concat built a result over MaxValueBytes")
	}
	done, stop := context.WithCancel(context.Background())
	stop()
	if _, err := concat(done, []rtfs.Value{rtfs.String{V: "a"}}); err == nil {
		t.Error("concat ran after its context ended")
	}
}
