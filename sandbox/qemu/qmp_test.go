//go:build linux

package qemu

import (
	"errors"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The QMP client against a real QEMU (stopped before it runs anything):
// typed replies, QEMU's refusals as QMPError, quit.
func TestQMPClient(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "qmp.sock")
	cmd := exec.Command("qemu-system-x86_64", "-M", "microvm", "-nodefaults", "-no-user-config", "-display", "none", "-S",
		"-qmp", "unix:"+sock+",server=on,wait=off")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	m, err := dialMonitor(sock, 10*time.Second, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer m.close()
	if st, err := m.queryStatus(); err != nil || st != "prelaunch" {
		t.Errorf("status %q, %v", st, err)
	}
	if info, err := m.queryMigrate(); err != nil || info.Status != "" {
		t.Errorf("migration before any: %+v, %v", info, err)
	}
	if err := m.setCapability("x-ignore-shared", true); err != nil {
		t.Errorf("x-ignore-shared: %v", err)
	}
	var qe *QMPError
	if err := m.setCapability("no-such-capability", true); !errors.As(err, &qe) || qe.Command != "migrate-set-capabilities" || qe.Class == "" {
		t.Errorf("unknown capability: %v", err)
	}
	if err := m.quit(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("QEMU did not quit")
	}
}

// A monitor that stops answering fails the command at its deadline
// instead of blocking.
func TestQMPDeadline(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "mute.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.Write([]byte(`{"QMP": {"version": {}, "capabilities": []}}` + "\n"))
			// ... and never answers qmp_capabilities.
			time.Sleep(5 * time.Second)
			c.Close()
		}
	}()
	t0 := time.Now()
	_, err = dialMonitor(sock, time.Second, 200*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "qmp_capabilities") || time.Since(t0) > 3*time.Second {
		t.Fatalf("err = %v after %v", err, time.Since(t0))
	}
}

func FuzzQMPReply(f *testing.F) {
	f.Add([]byte(`{"return": {"status": "completed", "ram": {"transferred": 10}}}` + "\n"))
	f.Add([]byte(`{"event": "STOP"}` + "\n" + `{"error": {"class": "GenericError", "desc": "no"}}` + "\n"))
	f.Add([]byte("{}\n"))
	f.Fuzz(func(t *testing.T, reply []byte) {
		a, b := net.Pipe()
		defer a.Close()
		go func() {
			buf := make([]byte, 4096)
			b.Read(buf)
			b.Write(reply)
			b.Close()
		}()
		m := &monitor{c: a, timeout: time.Second}
		m.r = newReader(a)
		_, _ = m.queryMigrate()
	})
}
