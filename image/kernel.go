package image

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// ErrKernelNotFound is returned (wrapped, naming the path or what to
// install) when there is no kernel to build an image for.
var ErrKernelNotFound = errors.New("guest kernel not found")

// bootDir is where DefaultKernel looks for kernels; tests change it.
var bootDir = "/boot"

// modulesRoot is where a kernel's modules directory is derived from.
var modulesRoot = "/lib/modules"

// kernelPrefix starts the file name of a Debian kernel image.
const kernelPrefix = "vmlinuz-"

// DefaultKernel returns the newest Debian cloud kernel installed in /boot
// (/boot/vmlinuz-<version>-cloud-amd64): the kernel whose virtio drivers
// are modules that DefaultModules names.
func DefaultKernel() (string, error) {
	matches, err := filepath.Glob(filepath.Join(bootDir, kernelPrefix+"*-cloud-amd64"))
	if err != nil {
		return "", err
	}
	if len(matches) == 0 {
		return "", fmt.Errorf("%w: no %s*-cloud-amd64 in %s (install the Debian package linux-image-cloud-amd64, or name a kernel)", ErrKernelNotFound, kernelPrefix, bootDir)
	}
	slices.SortFunc(matches, func(a, b string) int {
		return compareVersions(kernelVersion(a), kernelVersion(b))
	})
	return matches[len(matches)-1], nil
}

// kernelVersion is the version in the name of a kernel image
// (vmlinuz-6.1.0-56-cloud-amd64 -> 6.1.0-56-cloud-amd64), or "" when the
// name does not carry one.
func kernelVersion(kernelPath string) string {
	v, ok := strings.CutPrefix(filepath.Base(kernelPath), kernelPrefix)
	if !ok {
		return ""
	}
	return v
}

// compareVersions orders kernel versions: runs of digits compare as
// numbers, everything else byte-wise (6.1.0-9 < 6.1.0-10 < 6.10.0-1).
func compareVersions(a, b string) int {
	for a != "" && b != "" {
		ra, restA := versionRun(a)
		rb, restB := versionRun(b)
		if c := compareRun(ra, rb); c != 0 {
			return c
		}
		a, b = restA, restB
	}
	return len(a) - len(b)
}

// versionRun splits off the leading run of digits or of non-digits of s.
func versionRun(s string) (run, rest string) {
	digit := isDigit(s[0])
	i := 1
	for i < len(s) && isDigit(s[i]) == digit {
		i++
	}
	return s[:i], s[i:]
}

func compareRun(a, b string) int {
	if isDigit(a[0]) && isDigit(b[0]) {
		a, b = strings.TrimLeft(a, "0"), strings.TrimLeft(b, "0")
		if len(a) != len(b) {
			return len(a) - len(b)
		}
	}
	return strings.Compare(a, b)
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// squashfsCompression picks the rootfs compressor the kernel can read: zstd
// when the kernel's config (config-<version> beside the kernel image) has
// CONFIG_SQUASHFS_ZSTD=y or cannot be found, else gzip, which every
// squashfs kernel reads.
func squashfsCompression(kernelPath, version string) string {
	f, err := os.Open(filepath.Join(filepath.Dir(kernelPath), "config-"+version))
	if err != nil {
		return "zstd"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "CONFIG_SQUASHFS_ZSTD=y" {
			return "zstd"
		}
	}
	return "gzip"
}
