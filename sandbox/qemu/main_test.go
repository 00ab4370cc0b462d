//go:build linux

package qemu

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ccos-project/ccos/image"
	"github.com/ccos-project/ccos/internal/testenv"
)

// Images built once for all tests: the real guest (cmd/ccos-init) and the
// hostile test guest in its two modes.
var images = map[string]Image{}

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		// The one rule (internal/testenv): skip here, required under CI.
		return testenv.MainMissing("sandbox/qemu", "qemu-system-x86_64 is not installed",
			fmt.Sprintf("install the Debian packages %s (scripts/test does)", DebianPackages))
	}
	if _, err := image.DefaultKernel(); err != nil {
		return testenv.MainMissing("sandbox/qemu", "no guest kernel: "+err.Error(),
			fmt.Sprintf("install the Debian packages %s (scripts/test does)", DebianPackages))
	}
	if _, err := exec.LookPath("mksquashfs"); err != nil {
		return testenv.MainMissing("sandbox/qemu", "mksquashfs is not installed",
			"install the Debian package squashfs-tools (scripts/test does)")
	}
	dir, err := os.MkdirTemp("", "ccos-qemu-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := buildImages(dir); err != nil {
		fmt.Fprintln(os.Stderr, "qemu tests:", err)
		return 1
	}
	return m.Run()
}

func buildImages(dir string) error {
	cfg := filepath.Join(dir, "agent.rtfs")
	if err := os.WriteFile(cfg, []byte(`(profile:minimal "agent.qemu-test")`+"\n"), 0o644); err != nil {
		return err
	}
	bins := map[string]string{"ccos-init": "github.com/ccos-project/ccos/cmd/ccos-init", "hostile": "./testdata/hostile"}
	inits := map[string][]byte{}
	for name, pkg := range bins {
		out := filepath.Join(dir, name)
		cmd := exec.Command("go", "build", "-trimpath", "-o", out, pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("building %s: %v\n%s", pkg, err, b)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			return err
		}
		inits[name] = b
	}
	for _, v := range []struct{ name, init, mode string }{
		{"guest", "ccos-init", ""}, {"escape", "hostile", "escape"}, {"hold", "hostile", "hold"}, {"nic", "hostile", "nic"},
		{"vsock", "hostile", "vsock"}, {"random", "hostile", "random"}, {"scribble", "hostile", "scribble"},
	} {
		in := image.Inputs{Init: inits[v.init], ConfigFile: cfg, NIC: v.mode == "nic", Vsock: v.mode == "vsock"}
		if v.mode == "vsock" {
			// The guest talks to itself over vsock loopback: no host
			// vsock device is needed (none here).
			in.Modules = append(append([]string(nil), image.DefaultModules...), "vsock_loopback")
		}
		if v.mode != "" {
			caps := filepath.Join(dir, "caps-"+v.name)
			if err := os.MkdirAll(caps, 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(caps, "mode"), []byte(v.mode), 0o644); err != nil {
				return err
			}
			in.CapabilitiesDir = caps
		}
		img, err := image.Build(context.Background(), in, filepath.Join(dir, "img-"+v.name))
		if err != nil {
			return fmt.Errorf("building the %s image: %w", v.name, err)
		}
		images[v.name] = Image{Kernel: img.Kernel, Initrd: img.Initramfs, Rootfs: img.Rootfs}
	}
	return nil
}
