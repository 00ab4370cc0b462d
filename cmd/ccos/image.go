package main

import (
	"context"
	"fmt"
	"io"
	"math"

	"github.com/ccos-project/ccos/config"
	"github.com/ccos-project/ccos/engine"
	"github.com/ccos-project/ccos/image"
	"github.com/ccos-project/ccos/image/initbin"
	"github.com/ccos-project/ccos/internal/input"
	"github.com/spf13/cobra"
)

func init() {
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Build the guest images that microVM sandboxes boot",
	}
	cmd.AddCommand(imageBuildCmd(), imageVerifyCmd())
	rootCmd.AddCommand(cmd)
}

// imageBuildFlags are the flags of ccos image build.
type imageBuildFlags struct {
	config, out, kernel, modulesDir, capabilities, init string
	nic, asJSON                                         bool
	epoch                                               int64
}

// imageReport is the --json output of ccos image build and verify.
type imageReport struct {
	Dir          string             `json:"dir"`
	Kernel       string             `json:"kernel"`
	Initramfs    string             `json:"initramfs"`
	Rootfs       string             `json:"rootfs"`
	Measurements image.Measurements `json:"measurements"`
	Manifest     image.Manifest     `json:"manifest"`
}

func reportOf(img *image.Image) imageReport {
	return imageReport{
		Dir: img.Dir, Kernel: img.Kernel, Initramfs: img.Initramfs, Rootfs: img.Rootfs,
		Measurements: img.Measurements, Manifest: img.Manifest,
	}
}

func imageBuildCmd() *cobra.Command {
	var f imageBuildFlags
	cmd := &cobra.Command{
		Use:   "build --config FILE --out DIR",
		Short: "Build a reproducible guest image and print its sha256 measurements",
		Long: "build writes into DIR the guest kernel (vmlinuz, a copy of the host's Debian cloud\n" +
			"kernel), the initramfs (rootfs.initrd: the static guest /init and the kernel modules it\n" +
			"loads), the read-only squashfs rootfs (rootfs.img: the agent config and the capability\n" +
			"store) and manifest.json, then prints the sha256 of the three images. The same inputs\n" +
			"give the same bytes; file times are --epoch (default: $SOURCE_DATE_EPOCH, else 0).\n" +
			"A NIC driver is included with --nic or when the config enables :microvm :devices :nic.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("epoch") {
				e, err := image.EpochFromEnv()
				if err != nil {
					return &exitError{code: exitUsage, msg: "ccos image build: " + err.Error()}
				}
				f.epoch = e
			}
			if f.epoch < 0 || f.epoch > math.MaxUint32 {
				return &exitError{code: exitUsage, msg: fmt.Sprintf("ccos image build: --epoch %d: want seconds between 0 and %d", f.epoch, uint32(math.MaxUint32))}
			}
			return runImageBuild(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.config, "config", "", "agent config (RTFS) to put into the rootfs as /agent.config.rtfs (required)")
	fl.StringVar(&f.out, "out", "", "directory to write the image into (required)")
	fl.StringVar(&f.kernel, "kernel", "", "guest kernel image (default: the newest /boot/vmlinuz-*-cloud-amd64)")
	fl.StringVar(&f.modulesDir, "modules-dir", "", "the kernel's modules directory (default: /lib/modules/VERSION of the kernel)")
	fl.StringVar(&f.capabilities, "capabilities", "", "directory to put into the rootfs as /capabilities/")
	fl.StringVar(&f.init, "init", "", "guest /init binary (default: the one built into this ccos)")
	fl.BoolVar(&f.nic, "nic", false, "include the virtio_net driver")
	fl.Int64Var(&f.epoch, "epoch", 0, "time of every file in the image, in seconds since 1970")
	fl.BoolVar(&f.asJSON, "json", false, "print one JSON document")
	_ = cmd.MarkFlagRequired("config")
	_ = cmd.MarkFlagRequired("out")
	return cmd
}

func runImageBuild(ctx context.Context, stdout, stderr io.Writer, f imageBuildFlags) error {
	res, err := config.LoadFile(f.config, configEvaluator)
	if err != nil {
		return rejected("ccos image build: " + err.Error())
	}
	printDiags(stderr, res.Diags)
	if res.Diags.HasErrors() || res.Config == nil {
		return rejected("ccos image build: " + f.config + " is not a valid agent config; the image would carry it into every guest")
	}
	in := image.Inputs{
		KernelPath:      f.kernel,
		ModulesDir:      f.modulesDir,
		NIC:             f.nic || (res.Config.MicroVM != nil && res.Config.MicroVM.Devices.NIC.Enabled),
		Vsock:           res.Config.MicroVM != nil && res.Config.MicroVM.Devices.Vsock.Enabled,
		ConfigFile:      f.config,
		ConfigData:      engine.GuestConfig(res),
		CapabilitiesDir: f.capabilities,
		Epoch:           f.epoch,
	}
	if f.init != "" {
		in.Init, err = input.ReadFile(f.init, input.MaxBinary)
	} else {
		in.Init, err = initbin.Bytes()
	}
	if err != nil {
		return rejected("ccos image build: " + err.Error())
	}
	img, err := image.Build(ctx, in, f.out)
	if err != nil {
		return rejected("ccos image build: " + err.Error())
	}
	noteExpectedHash(stderr, f.config, res.Config, img.Measurements.Rootfs)
	if f.asJSON {
		return writeJSON(stdout, reportOf(img))
	}
	printMeasurements(stdout, img)
	return nil
}

func printMeasurements(w io.Writer, img *image.Image) {
	fmt.Fprintf(w, "kernel     %s  %s\n", img.Measurements.Kernel, img.Kernel)
	fmt.Fprintf(w, "initramfs  %s  %s\n", img.Measurements.Initramfs, img.Initramfs)
	fmt.Fprintf(w, "rootfs     %s  %s\n", img.Measurements.Rootfs, img.Rootfs)
}

// noteExpectedHash tells the user, when the config enables attestation but
// expects another rootfs hash, what to write into it. The image does not
// depend on that value (see guestConfig), so writing it in is final.
func noteExpectedHash(w io.Writer, file string, cfg *config.Config, rootfs string) {
	if cfg.MicroVM == nil || !cfg.MicroVM.Attestation.Enabled {
		return
	}
	expect := cfg.MicroVM.Attestation.ExpectRootfsHash
	if expect != nil && *expect == rootfs {
		return
	}
	fmt.Fprintf(w, "note: %s enables :attestation; set :microvm :attestation :expect_rootfs_hash to %q (the image does not change when you do)\n", file, rootfs)
}

func imageVerifyCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "verify DIR",
		Short: "Measure the files of a built image again and compare them with its manifest",
		Long: "verify hashes the kernel, initramfs and rootfs of the image in DIR and compares\n" +
			"them with the measurements its manifest.json recorded; exit 1 naming the file\n" +
			"that differs.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			img, err := image.Open(args[0])
			if err != nil {
				return rejected("ccos image verify: " + err.Error())
			}
			if err := img.Verify(); err != nil {
				return rejected("ccos image verify: " + err.Error())
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), reportOf(img))
			}
			printMeasurements(cmd.OutOrStdout(), img)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON document")
	return cmd
}
