package firecracker_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ccos-project/ccos/internal/testenv"
	"github.com/ccos-project/ccos/sandbox"
	"github.com/ccos-project/ccos/sandbox/firecracker"
	"github.com/ccos-project/ccos/sandbox/firecracker/contract"
)

// TestStartWithFakeFirecracker runs every start-up step against a fake
// jailer and Firecracker (this test binary, see TestMain): the jail is
// prepared, the jailer gets its arguments, the API sequence is validated
// against the API definition, and the control connection is made with the
// vsock handshake. Only the VM itself is missing.
func TestStartWithFakeFirecracker(t *testing.T) {
	bin := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(self, filepath.Join(bin, "jailer")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "firecracker"), []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv(fakeJailerEnv, "1")
	t.Setenv(fakeAPIEnv, testenv.Shared(t, contract.SharedFile))

	images := t.TempDir()
	for _, f := range []string{"vmlinux", "initrd", "rootfs.img"} {
		if err := os.WriteFile(filepath.Join(images, f), []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	vm := exampleVM(t, "microvm-min.rtfs")
	vm.BootSource.KernelImagePath = filepath.Join(images, "vmlinux")
	vm.BootSource.InitrdPath = filepath.Join(images, "initrd")
	vm.Drives[0].PathOnHost = filepath.Join(images, "rootfs.img")
	chroot := t.TempDir()
	// The fakes stand in for Firecracker and the jailer, and so for KVM:
	// the start-up steps run on any host.
	p := firecracker.New(firecracker.Options{VM: &vm, ChrootBase: chroot, CheckKVM: func() error { return nil }})
	if ok, reason := p.Available(); !ok {
		t.Fatalf("not available with fakes: %s", reason)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	box, err := p.Start(ctx, sandbox.Spec{ID: "run.1", Limits: sandbox.Limits{Deadline: 10 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(chroot, "firecracker", "run-1", "root")
	for _, f := range []string{"kernel", "initrd", "drive-rootfs", "firecracker.log", "firecracker.metrics"} {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Errorf("jail lacks %s: %v", f, err)
		}
	}
	ctl := box.Control()
	if _, err := io.WriteString(ctl, "ping"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(ctl, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("control echo %q, %v", buf, err)
	}
	if err := box.Kill(); err != nil {
		t.Fatal(err)
	}
	var ee *sandbox.ExitError
	if err := box.Wait(); !errors.As(err, &ee) || ee.Reason != sandbox.ExitKilled {
		t.Fatalf("Wait = %v", err)
	}
	if _, err := os.Stat(filepath.Dir(root)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("jail not removed: %v", err)
	}
}
