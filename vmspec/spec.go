// Package spec synthesises, from an agent configuration, the documents that
// start its sandbox: the Firecracker --config-file document, the QEMU
// `-M microvm` command line, and the OCI runtime config.json.
//
// Synthesis is pure: the config and a Host (where the runtime directory is,
// which files make up the image) go in, a document comes out, and the same
// inputs always give the same bytes. Each synthesiser is a named, ordered
// list of steps (see FirecrackerSteps, QEMUSteps, OCISteps) that tests can
// inspect; a step either adds its part of the document or fails with an
// error that names the config field to fix.
//
// Names and paths derived from the agent id are sanitised once, here:
// VMName is the agent id reduced to [a-z0-9-] (plus a digest when that
// changed it, so distinct ids never collide), TapName fits Linux's 15-byte
// interface names, and every socket lives in a per-VM directory under
// Host.RuntimeDir, so two agents never share a vsock or API socket.
package vmspec

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/ccos-project/ccos/config"
)

// DefaultRuntimeDir is where per-VM sockets, logs and metrics go when
// Host.RuntimeDir is empty.
const DefaultRuntimeDir = "/run/ccos"

// ControlPort is the vsock port the guest agent listens on for the host's
// control connection (host-initiated, `CONNECT 1024\n`).
const ControlPort = 1024

// ControlSerialName is the virtio-serial port name of the control channel
// in QEMU guests.
const ControlSerialName = "ctl"

// The network of a guest with a NIC: a /30 between the guest and the tap
// device in the VM's proxy namespace, where the egress proxy listens. The
// guest gets no default route: the proxy is the only address it can reach.
const (
	// GuestNetAddr is the guest's eth0 address (ccos.net=).
	GuestNetAddr = "10.77.0.2/30"
	// ProxyNetAddr is the tap's address in the proxy namespace.
	ProxyNetAddr = "10.77.0.1/30"
	// ProxyListen is where the proxy listens in that namespace
	// (ccos.proxy=).
	ProxyListen = "10.77.0.1:3128"
)

// maxSocketPath is the longest Unix socket path Linux accepts (sun_path is
// 108 bytes including the terminating NUL).
const maxSocketPath = 107

// The errors of synthesis; each is wrapped with the field to fix.
var (
	// ErrNoMicroVM: the config has no :microvm block to boot.
	ErrNoMicroVM = errors.New("the config has no :microvm block")
	// ErrWritableRootfs: ccos only boots a read-only rootfs.
	ErrWritableRootfs = errors.New("the rootfs must be read-only")
	// ErrNoControlChannel: the guest would have no way to talk to the host.
	ErrNoControlChannel = errors.New("no control channel")
	// ErrNoProxyNS: a NIC must be bridged into the egress proxy namespace.
	ErrNoProxyNS = errors.New("NIC without a proxy namespace")
	// ErrReservedBootArg: :kernel :cmdline sets a parameter ccos owns.
	ErrReservedBootArg = errors.New("boot argument reserved by ccos")
	// ErrPathTooLong: a socket path exceeds the 107 bytes of sun_path.
	ErrPathTooLong = errors.New("socket path too long")
	// ErrTooLittleMemory: the target cannot start with this little memory.
	ErrTooLittleMemory = errors.New("too little memory")
)

// Host is what synthesis needs to know about the host beyond the config.
type Host struct {
	// RuntimeDir holds one directory per VM (sockets, logs, metrics);
	// DefaultRuntimeDir when empty.
	RuntimeDir string
	// BaseDir resolves relative image paths of the config (normally the
	// config file's directory); the working directory when empty.
	BaseDir string
	// Instance distinguishes VMs of the same agent that run at once, such
	// as "blue" and "green" during an update; empty for none.
	Instance string
	// Initrd is the guest initramfs; when empty, the file beside the rootfs
	// image with the extension ".initrd" (images/agent-rootfs.img ->
	// images/agent-rootfs.initrd), which is part of the image.
	Initrd string
	// CapabilitiesImage is an optional read-only disk image holding the
	// capability store, attached as a second drive.
	CapabilitiesImage string
	// TSCKHz is the host TSC frequency passed to QEMU guests as
	// tsc_early_khz (without it about one boot in four hangs at TSC
	// calibration); 0 leaves it out.
	TSCKHz int
	// Accel is the QEMU accelerator, "kvm" or "tcg"; "kvm" when empty.
	Accel string
	// QEMUBinary is argv[0] of the QEMU command; "qemu-system-x86_64" when
	// empty.
	QEMUBinary string
	// CCOSBinary is the host path of the static ccos binary, bind-mounted
	// read-only at /ccos in OCI containers.
	CCOSBinary string
	// CapabilitiesDir is the host capability store, bind-mounted read-only
	// at /capabilities in OCI containers; empty for none.
	CapabilitiesDir string
	// Hold makes a QEMU guest a snapshot template (or a copy of one): its
	// /init waits on the control port for the host's go (ccos.hold=1).
	Hold bool
	// Incoming, when set, restores a QEMU VM instead of booting it
	// (-incoming): "defer" waits for QMP migrate-incoming, so that
	// migration capabilities can be set first; "fd:N" reads the saved VM
	// from descriptor N at once.
	Incoming string
	// MemoryBackend, when set, is the file QEMU maps as the guest's RAM
	// (memory-backend-file mem-path=), such as /proc/self/fd/N of a memfd
	// the host made. MemoryShared maps it shared (share=on: a snapshot
	// template, whose RAM is the file); otherwise it is mapped private,
	// copy on write (a clone of the template).
	MemoryBackend string
	MemoryShared  bool
	// TBSizeMiB bounds TCG's translated-code cache (tb-size); QEMU's
	// default when zero. Ignored under KVM.
	TBSizeMiB int
	// WorkdirMiB sizes the /work tmpfs of OCI containers (64 when zero)
	// and of QEMU guests (ccos.workdir_mb; the guest's default when zero).
	WorkdirMiB int
}

// VMPaths are the host paths of one VM's runtime files.
type VMPaths struct {
	// Dir is the VM's own directory under the runtime directory.
	Dir string
	// APISocket is Firecracker's API socket.
	APISocket string
	// VsockUDS is the Unix socket behind the guest's vsock device; the
	// guest's connections to host port P arrive at VsockUDS + "_P".
	VsockUDS string
	// Log and Metrics are Firecracker's log and metrics files.
	Log, Metrics string
	// QMPSocket, ControlSocket and SerialLog are QEMU's monitor socket,
	// virtio-serial control socket and console log.
	QMPSocket, ControlSocket, SerialLog string
}

// VMName is the sanitised, deterministic name of an agent's VM: the agent
// id in [a-z0-9-] (at most 32 bytes), a digest of the id when sanitising
// changed it, and the sanitised instance name. It is at most 61 bytes of
// letters, digits and hyphens, so it is also a valid jailer --id.
func VMName(agentID, instance string) string {
	name := sanitize(agentID, 32)
	if name != agentID {
		name = joinName(name, digest(agentID, 8))
	}
	if instance != "" {
		inst := sanitize(instance, 12)
		if inst != instance {
			inst = joinName(inst, digest(instance, 6))
		}
		name += "-" + inst
	}
	return name
}

func sanitize(s string, max int) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	out := strings.Trim(b.String(), "-")
	if len(out) > max {
		out = strings.Trim(out[:max], "-")
	}
	return out
}

func joinName(a, b string) string {
	if a == "" {
		return b
	}
	return a + "-" + b
}

// TapName is the host tap device of a VM: "ccos" and a digest of the VM
// name, 14 bytes, within Linux's 15-byte limit whatever the agent id.
func TapName(vmName string) string { return "ccos" + digest(vmName, 10) }

// GuestMAC is the VM's deterministic, locally administered unicast MAC.
func GuestMAC(vmName string) string {
	sum := sha256.Sum256([]byte("mac:" + vmName))
	return fmt.Sprintf("06:%02x:%02x:%02x:%02x:%02x", sum[0], sum[1], sum[2], sum[3], sum[4])
}

func digest(s string, n int) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:n]
}

// Paths returns the runtime paths of the VM of cfg on h.
func (h Host) Paths(cfg *config.Config) VMPaths {
	root := h.RuntimeDir
	if root == "" {
		root = DefaultRuntimeDir
	}
	dir := filepath.Join(root, "vm", VMName(cfg.AgentID, h.Instance))
	return VMPaths{
		Dir:           dir,
		APISocket:     filepath.Join(dir, "api.sock"),
		VsockUDS:      filepath.Join(dir, "vsock.sock"),
		Log:           filepath.Join(dir, "firecracker.log"),
		Metrics:       filepath.Join(dir, "firecracker.metrics"),
		QMPSocket:     filepath.Join(dir, "qmp.sock"),
		ControlSocket: filepath.Join(dir, "control.sock"),
		SerialLog:     filepath.Join(dir, "serial.log"),
	}
}

// Image is the guest image: kernel, initramfs and root file system.
type Image struct {
	Kernel, Initrd, Rootfs string
}

// Image resolves the image files of cfg: kernel and rootfs from :microvm,
// the initramfs from h.Initrd or beside the rootfs.
func (h Host) Image(cfg *config.Config) (Image, error) {
	if cfg.MicroVM == nil {
		return Image{}, fmt.Errorf("%w (add :microvm {:kernel ... :rootfs ...})", ErrNoMicroVM)
	}
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(h.BaseDir, p)
	}
	img := Image{Kernel: abs(cfg.MicroVM.Kernel.Image), Rootfs: abs(cfg.MicroVM.Rootfs.Image), Initrd: h.Initrd}
	if img.Initrd == "" {
		img.Initrd = strings.TrimSuffix(img.Rootfs, filepath.Ext(img.Rootfs)) + ".initrd"
	}
	return img, nil
}

func checkSocket(field, p string) error {
	if len(p) > maxSocketPath {
		return fmt.Errorf("%w: %s %q is %d bytes, the limit is %d (choose a shorter runtime directory)", ErrPathTooLong, field, p, len(p), maxSocketPath)
	}
	return nil
}
