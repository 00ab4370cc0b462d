// Command bootcheck is a test /init for package image's boot test: it does
// with an image what the guest's init does (load the modules of
// /lib/modules/order, mount the rootfs read-only) and prints what it finds
// on the console, one "BOOTCHECK" line per fact, then powers off.
package main

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	if err := check(); err != nil {
		fmt.Println("BOOTCHECK error:", err)
	}
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
}

func check() error {
	for _, m := range []struct{ src, dst, typ string }{
		{"devtmpfs", "/dev", "devtmpfs"}, {"proc", "/proc", "proc"}, {"sysfs", "/sys", "sysfs"},
	} {
		if err := unix.Mount(m.src, m.dst, m.typ, 0, ""); err != nil {
			return fmt.Errorf("mount %s: %w", m.dst, err)
		}
	}
	order, err := os.ReadFile("/lib/modules/order")
	if err != nil {
		return err
	}
	start := time.Now()
	for _, p := range strings.Fields(string(order)) {
		if err := load(p); err != nil {
			return fmt.Errorf("loading %s: %w", p, err)
		}
	}
	fmt.Printf("BOOTCHECK modules %d loaded in %v\n", len(strings.Fields(string(order))), time.Since(start).Round(time.Millisecond))
	if err := waitFor("/dev/vda", 10*time.Second); err != nil {
		return err
	}
	if err := unix.Mount("/dev/vda", "/store", "squashfs", unix.MS_RDONLY, ""); err != nil {
		return fmt.Errorf("mount /dev/vda: %w", err)
	}
	config, err := os.ReadFile("/store/agent.config.rtfs")
	if err != nil {
		return err
	}
	fmt.Printf("BOOTCHECK config sha256:%x\n", sha256.Sum256(config))
	caps, _ := filepath.Glob("/store/capabilities/*")
	fmt.Printf("BOOTCHECK capabilities %q\n", caps)
	if err := os.WriteFile("/store/x", nil, 0o644); errors.Is(err, unix.EROFS) {
		fmt.Println("BOOTCHECK rootfs read-only")
	} else {
		fmt.Println("BOOTCHECK rootfs write:", err)
	}
	ports, _ := filepath.Glob("/sys/class/virtio-ports/*/name")
	for _, p := range ports {
		name, _ := os.ReadFile(p)
		fmt.Printf("BOOTCHECK port %s\n", strings.TrimSpace(string(name)))
	}
	return nil
}

func load(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.FinitModule(int(f.Fd()), "", 0); err != nil && !errors.Is(err, unix.EEXIST) {
		return err
	}
	return nil
}

func waitFor(path string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		} else if time.Now().After(deadline) {
			return fmt.Errorf("%s did not appear in %v: %w", path, limit, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
