package orchestrator

import (
	"encoding/binary"
	"io"
	"os"
	"strings"

	"testing"

	"github.com/ccos-project/ccos/control"
	"github.com/ccos-project/ccos/guest"
	"github.com/ccos-project/ccos/sandbox"
	"github.com/ccos-project/ccos/sandbox/process"
)

// TestMain makes this test binary a sandbox guest when the process
// provider starts it (see attackGuest).
func TestMain(m *testing.M) {
	sandbox.GuestMain = attackGuest
	process.InitIfChild()
	// In-process guests (the mock provider) would otherwise use /work,
	// the sandboxes' workdir, on the host: give them one of their own.
	dir, err := os.MkdirTemp("", "ccos-orchestrator-test-")
	if err != nil {
		panic(err)
	}
	guest.Workdir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// attackGuest is the real guest agent, unless the test put an attack name
// in /capabilities/attack: then it breaks the protocol that way, from
// inside a real process sandbox.
func attackGuest(rw io.ReadWriteCloser) int {
	name, err := os.ReadFile("/capabilities/attack")
	if err != nil {
		return guest.Run(rw)
	}
	c := control.NewConn(rw, control.GuestSide, 0)
	c.Send(&control.Hello{Protocol: 1}, 0)
	c.Recv()
	c.Recv()
	frame := func(payload string) {
		var hdr [4]byte
		binary.BigEndian.PutUint32(hdr[:], uint32(len(payload)))
		rw.Write(append(hdr[:], payload...))
	}
	switch strings.TrimSpace(string(name)) {
	case "oversize":
		var hdr [4]byte
		binary.BigEndian.PutUint32(hdr[:], 1<<31)
		rw.Write(hdr[:])
	case "exec":
		frame(`{"id":2,"type":"exec","body":{"cmd":"/bin/sh","args":["-c","id"]}}`)
	case "garbage":
		frame("not json at all!")
	case "unadmitted":
		c.Request(&control.StepBegin{Name: "exfiltrate"})
	case "flood":
		chunk := strings.Repeat("x", 1<<20)
		n := uint64(64)
		if raceDetector {
			n = 4 // still four times what the host keeps
		}
		for i := uint64(1); i <= n; i++ {
			if _, err := c.Send(&control.Output{Seq: i, Text: chunk}, 0); err != nil {
				return 1
			}
		}
		v := ":flooded"
		c.Send(&control.Done{Value: &v}, 0)
	case "events-flood":
		// Events of the largest payload allowed, as fast as the host takes
		// them, inside the step: a guest trying to fill the host's memory.
		c.Request(&control.StepBegin{Name: "s"})
		c.Recv()
		payload := `{:replayed :ccos.echo :key "` + strings.Repeat("x", control.MaxEventPayload-40) + `"}`
		for seq := uint64(1); ; {
			items := make([]control.EventItem, 16)
			for i := range items {
				items[i] = control.EventItem{Seq: seq, Type: "guest.event", Step: "s", Payload: payload}
				seq++
			}
			if _, err := c.Request(&control.Events{Items: items}); err != nil {
				return 1
			}
			if m, err := c.Recv(); err != nil || m.Type != control.TypeOK {
				return 1
			}
		}
	case "exit":
		return 9
	}
	io.Copy(io.Discard, rw)
	return 0
}
