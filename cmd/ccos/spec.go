package main

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ccos-project/ccos/config"
	"github.com/ccos-project/ccos/vmspec"
	"github.com/spf13/cobra"
)

// specTargets are the documents `ccos spec` can synthesise.
var specTargets = map[string]func(*config.Config, vmspec.Host) (any, error){
	"firecracker": func(c *config.Config, h vmspec.Host) (any, error) { return vmspec.Firecracker(c, h) },
	"qemu":        func(c *config.Config, h vmspec.Host) (any, error) { return vmspec.QEMU(c, h) },
	"oci":         func(c *config.Config, h vmspec.Host) (any, error) { return vmspec.OCI(c, h) },
}

func init() {
	var (
		target string
		h      vmspec.Host
	)
	cmd := &cobra.Command{
		Use:   "spec FILE --target firecracker|qemu|oci",
		Short: "Print the VM or container spec synthesised from an agent config",
		Long: "Print, as one JSON document, what would start the agent's sandbox: the Firecracker\n" +
			"--config-file document, the QEMU -M microvm argument vector, or the OCI runtime config.json.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			build, ok := specTargets[target]
			if !ok {
				return &exitError{code: exitUsage, msg: "ccos spec: --target " + strconv.Quote(target) + ": want firecracker, qemu or oci"}
			}
			res, err := config.LoadFile(args[0], configEvaluator)
			if err != nil {
				return rejected("ccos spec: " + err.Error())
			}
			printDiags(cmd.ErrOrStderr(), res.Diags)
			if res.Diags.HasErrors() || res.Config == nil {
				return rejected("ccos spec: " + args[0] + " is not a valid agent config")
			}
			fillHostDefaults(&h, args[0], target)
			doc, err := build(res.Config, h)
			if err != nil {
				return rejected("ccos spec: " + args[0] + ": " + err.Error())
			}
			return writeJSON(cmd.OutOrStdout(), doc)
		},
	}
	f := cmd.Flags()
	f.StringVar(&target, "target", "", "firecracker, qemu or oci (required)")
	f.StringVar(&h.RuntimeDir, "runtime-dir", vmspec.DefaultRuntimeDir, "directory for per-VM sockets, logs and metrics")
	f.StringVar(&h.BaseDir, "base-dir", "", "directory that relative image paths are resolved against (default: the config file's directory)")
	f.StringVar(&h.Instance, "instance", "", "instance name of the VM (e.g. blue or green during an update)")
	f.StringVar(&h.Initrd, "initrd", "", "guest initramfs (default: the rootfs image path with the extension .initrd)")
	f.StringVar(&h.CapabilitiesImage, "capabilities-image", "", "read-only disk image of the capability store (VM targets)")
	f.IntVar(&h.TSCKHz, "tsc-khz", 0, "host TSC frequency for QEMU guests (default: from /proc/cpuinfo)")
	f.StringVar(&h.Accel, "accel", "", "QEMU accelerator kvm or tcg (default: kvm when /dev/kvm exists)")
	f.StringVar(&h.CCOSBinary, "ccos-binary", "", "host path of the static ccos binary for OCI (default: this executable)")
	f.StringVar(&h.CapabilitiesDir, "capabilities-dir", "", "host capability store bind-mounted read-only at /capabilities (OCI)")
	_ = cmd.MarkFlagRequired("target")
	rootCmd.AddCommand(cmd)
}

// fillHostDefaults fills what the flags left empty from the host.
func fillHostDefaults(h *vmspec.Host, file, target string) {
	if h.BaseDir == "" {
		if abs, err := filepath.Abs(filepath.Dir(file)); err == nil {
			h.BaseDir = abs
		}
	}
	if target == "qemu" {
		if h.Accel == "" {
			h.Accel = "tcg"
			if _, err := os.Stat("/dev/kvm"); err == nil {
				h.Accel = "kvm"
			}
		}
		if h.TSCKHz == 0 {
			h.TSCKHz = hostTSCKHz()
		}
	}
	if target == "oci" && h.CCOSBinary == "" {
		if exe, err := os.Executable(); err == nil {
			h.CCOSBinary = exe
		}
	}
}

// hostTSCKHz reads the "cpu MHz" of the first CPU in /proc/cpuinfo, in kHz;
// 0 when it cannot.
func hostTSCKHz() int {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(key) == "cpu MHz" {
			mhz, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
			if err != nil {
				return 0
			}
			return int(mhz * 1000)
		}
	}
	return 0
}
