package orchestrator

import (
	"context"
	"errors"
	"io"
	mrand "math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ccos-project/ccos/capability"
	"github.com/ccos-project/ccos/chain"
	"github.com/ccos-project/ccos/control/link"
	"github.com/ccos-project/ccos/guest"
	"github.com/ccos-project/ccos/rtfs"
	"github.com/ccos-project/ccos/sandbox"
)

// flakyProvider runs the real guest agent over a link whose transport is
// cut again and again (mid-frame, both ways) and replaced, as a VM's
// control socket is when the host side drops it and QEMU reconnects.
type flakyProvider struct{ last *flakyBox }

func (*flakyProvider) Name() string              { return "flaky" }
func (*flakyProvider) Available() (bool, string) { return true, "test" }

type flakyBox struct {
	host, guest *link.Conn
	done        chan struct{}
	status      int
	stop        chan struct{}
	once        sync.Once
	cuts        int
}

type cutConn struct {
	net.Conn
	mu   sync.Mutex
	left int
}

func (c *cutConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	n := min(len(p), c.left)
	c.left -= n
	c.mu.Unlock()
	w, err := c.Conn.Write(p[:n])
	if err == nil && n < len(p) {
		c.Conn.Close()
		err = errors.New("transport cut")
	}
	return w, err
}

func (p *flakyProvider) Start(ctx context.Context, _ sandbox.Spec) (sandbox.Sandbox, error) {
	b := &flakyBox{host: link.New(1024), guest: link.New(1024), done: make(chan struct{}), stop: make(chan struct{})}
	p.last = b
	attach := func() bool {
		x, y := net.Pipe()
		// Each transport carries a few frames (up to the window) and
		// breaks in the middle of one.
		if b.host.Attach(&cutConn{Conn: x, left: 1200 + mrand.IntN(3000)}) != nil {
			return false
		}
		return b.guest.Attach(&cutConn{Conn: y, left: 1200 + mrand.IntN(3000)}) == nil
	}
	attach()
	go func() {
		for {
			detached := make(chan struct{})
			go func() { b.host.WaitDetached(); close(detached) }()
			select {
			case <-b.stop:
				return
			case <-detached:
			}
			b.guest.WaitDetached()
			if !attach() {
				return
			}
			b.cuts++
		}
	}()
	go func() {
		defer close(b.done)
		b.status = guest.Run(b.guest)
		// The guest's last bytes (its result) must reach the host before
		// the "machine" goes away.
		for b.guest.Unacked() > 0 {
			select {
			case <-b.stop: // killed: the "machine" is gone
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	return b, nil
}

func (b *flakyBox) Control() io.ReadWriteCloser { return b.host }
func (b *flakyBox) Wait() error {
	<-b.done
	b.Kill()
	if b.status != 0 {
		return &sandbox.ExitError{Reason: sandbox.ExitStatus, Status: b.status}
	}
	return nil
}
func (b *flakyBox) Kill() error {
	b.once.Do(func() { close(b.stop); b.guest.Close() })
	return nil
}
func (b *flakyBox) Log() []byte { return nil }

// A plan runs to the right result over a control channel that breaks many
// times: no message is lost or repeated, and the chain holds each step and
// each host call exactly once.
func TestControlChannelSurvivesReconnects(t *testing.T) {
	caps := capability.Builtins(func() time.Time { return time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC) })
	var body strings.Builder
	body.WriteString(`(plan "many" :body (do`)
	for i := 0; i < 30; i++ {
		body.WriteString(` (step "s` + string(rune('a'+i%26)) + string(rune('a'+i/26)) + `" (println "step output line with some padding to fill frames") (call :ccos.system.current-time) (call :ccos.math.add 1 2))`)
	}
	body.WriteString(` (call :ccos.string.concat "all " "done")))`)
	p, a := admit(t, body.String(), caps)
	store := chain.NewMemoryStore()
	rec, err := chain.NewRecorder(store, nil, chain.Options{})
	if err != nil {
		t.Fatal(err)
	}
	prov := &flakyProvider{}
	deadline := 30 * time.Second
	if raceDetector {
		deadline = 3 * time.Minute
	}
	rep, err := Run(context.Background(), Request{Plan: p, Admission: a, Provider: prov, Caps: caps, Recorder: rec,
		Spec: sandbox.Spec{Limits: sandbox.Limits{Deadline: deadline}}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Error != nil || rtfs.Print(rep.Value) != `"all done"` || strings.Count(rep.Output, "step output line") != 30 || len(rep.Steps) != 30 {
		t.Fatalf("value %s, error %+v, %d output lines, %d steps", rtfs.Print(rep.Value), rep.Error, strings.Count(rep.Output, "step output line"), len(rep.Steps))
	}
	counts := map[chain.Type]int{}
	store.Records(func(_ uint64, data []byte) error {
		e, err := chain.Decode(data)
		if err != nil {
			return err
		}
		counts[e.Type]++
		if e.Type == chain.TypeCapabilityCall && e.Origin == chain.OriginHost {
			counts["host call"]++
		}
		return nil
	})
	t.Logf("%d reconnects", prov.last.cuts)
	if prov.last.cuts < 3 {
		t.Errorf("only %d reconnects: the test did not exercise them", prov.last.cuts)
	}
	if counts[chain.TypeStepStarted] != 30 || counts[chain.TypeStepFinished] != 30 || counts["host call"] != 30 {
		t.Errorf("chain counts %v", counts)
	}
}
