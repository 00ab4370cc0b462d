package image

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestBoot boots an image under QEMU microvm with a test /init
// (testdata/bootcheck) that loads the modules in the order file, mounts the
// rootfs read-only and reports what it sees: the proof that the kernel
// accepts the initramfs and the rootfs as this package writes them.
func TestBoot(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a VM (a few seconds under TCG)")
	}
	installedKernel(t)
	needMksquashfs(t)
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Skip("qemu-system-x86_64 is not installed (Debian package qemu-system-x86)")
	}
	dir := t.TempDir()
	initBin := filepath.Join(dir, "bootcheck")
	build := exec.Command("go", "build", "-trimpath", "-o", initBin, "./testdata/bootcheck")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the test init: %v\n%s", err, out)
	}
	in := testInputs(t, fakeKernel{})
	in.KernelPath, in.ModulesDir = "", ""
	if in.Init, err = os.ReadFile(initBin); err != nil {
		t.Fatal(err)
	}
	img, err := Build(context.Background(), in, filepath.Join(dir, "image"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	appendArgs := "console=ttyS0 quiet panic=-1 reboot=t"
	if khz := cpuKHz(); khz > 0 {
		appendArgs += " tsc_early_khz=" + strconv.Itoa(khz)
	}
	cmd := exec.CommandContext(ctx, qemu,
		"-M", "microvm,x-option-roms=off,isa-serial=on,rtc=on", "-accel", "tcg", "-cpu", "max", "-m", "128",
		"-nodefaults", "-no-user-config", "-nographic", "-no-reboot", "-serial", "stdio",
		"-kernel", img.Kernel, "-initrd", img.Initramfs, "-append", appendArgs,
		"-drive", "id=rootfs,if=none,format=raw,readonly=on,file="+img.Rootfs,
		"-device", "virtio-blk-device,drive=rootfs",
		"-device", "virtio-serial-device", "-chardev", "null,id=c0", "-device", "virtserialport,chardev=c0,name=ctl",
	)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("qemu: %v\n%s", err, out.String())
	}
	t.Logf("booted and powered off in %v", time.Since(start).Round(time.Millisecond))
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(line, "BOOTCHECK") {
			t.Log(strings.TrimSpace(line))
		}
	}
	config, _ := os.ReadFile(in.ConfigFile)
	for _, want := range []string{
		"BOOTCHECK modules 6 loaded",
		"BOOTCHECK config " + digestOf(config),
		`BOOTCHECK capabilities ["/store/capabilities/bin" "/store/capabilities/contracts" "/store/capabilities/empty"]`,
		"BOOTCHECK rootfs read-only",
		"BOOTCHECK port ctl",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("console lacks %q:\n%s", want, out.String())
		}
	}
}

// cpuKHz is the host's TSC frequency for tsc_early_khz (without it about
// one boot in four hangs calibrating the TSC under TCG), or 0.
func cpuKHz() int {
	data, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "cpu MHz" {
			mhz, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return int(mhz * 1000)
			}
		}
	}
	return 0
}
