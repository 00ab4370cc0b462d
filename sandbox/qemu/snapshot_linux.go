//go:build linux

package qemu

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/ccos-project/ccos/config"
	"github.com/ccos-project/ccos/internal/atomicfile"
	"github.com/ccos-project/ccos/sandbox"
	"github.com/ccos-project/ccos/vmspec"
	"github.com/digitalocean/go-qemu/qmp"
)

// snapshots reports whether Start restores guests from a snapshot: when
// Options.SnapshotDir is set and the VM has no NIC (a NIC's namespace and
// tap are per VM).
func (p *Provider) snapshots(cfg *config.Config) bool {
	return p.o.SnapshotDir != "" && !cfg.MicroVM.Devices.NIC.Enabled
}

// snapshotKey names the snapshot of a VM: the image's measurements and
// everything of the command line but the per-VM paths.
func snapshotKey(cfg *config.Config, meas map[string]string, lim sandbox.Limits, accel string) (string, error) {
	argv, err := vmspec.QEMU(cfg, vmspec.Host{RuntimeDir: "/x", Initrd: fdInitrd, Accel: accel, Hold: true, TSCKHz: tscKHz(),
		WorkdirMiB: int(lim.WorkdirBytes >> 20)})
	if err != nil {
		return "", err
	}
	names := make([]string, 0, len(meas))
	for k := range meas {
		names = append(names, k)
	}
	sort.Strings(names)
	h := sha256.New()
	fmt.Fprintln(h, "ccos-qemu-snapshot/1")
	for _, k := range names {
		fmt.Fprintln(h, k, meas[k])
	}
	b, _ := json.Marshal(argv)
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))[:32], nil
}

// snapshot returns the snapshot of cfg's VM, open for reading, creating it
// first if there is none: a template VM boots with ccos.hold=1, warms its
// guest agent up, says it is ready and waits; the host pauses it, saves it
// (QMP migrate to a descriptor) and ends it. The file is the host's own,
// mode 0600, written atomically; its measurement joins the others.
func (p *Provider) snapshot(ctx context.Context, sp sandbox.Spec, cfg *config.Config, lim sandbox.Limits, files []*os.File, meas map[string]string) (*os.File, error) {
	accel, _ := p.accel()
	key, err := snapshotKey(cfg, meas, lim, accel)
	if err != nil {
		return nil, fmt.Errorf("qemu: snapshot: %w", err)
	}
	p.snapMu.Lock()
	defer p.snapMu.Unlock()
	if err := os.MkdirAll(p.o.SnapshotDir, 0o700); err != nil {
		return nil, fmt.Errorf("qemu: snapshot directory: %w", err)
	}
	path := filepath.Join(p.o.SnapshotDir, key+".vmstate")
	if f, err := os.Open(path); err == nil {
		return p.measureSnapshot(f, meas)
	}
	tmp, err := atomicfile.Create(path, 0o600)
	if err != nil {
		return nil, fmt.Errorf("qemu: snapshot: %w", err)
	}
	defer tmp.Abort()
	if err := p.saveTemplate(ctx, sp, cfg, lim, files, meas, tmp.File); err != nil {
		return nil, fmt.Errorf("qemu: making the snapshot: %w", err)
	}
	if err := tmp.Commit(); err != nil {
		return nil, fmt.Errorf("qemu: snapshot: %w", err)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	return p.measureSnapshot(f, meas)
}

func (p *Provider) measureSnapshot(f *os.File, meas map[string]string) (*os.File, error) {
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	m, err := measure(f, fi)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("qemu: measuring the snapshot: %w", err)
	}
	meas["snapshot"] = m
	return f, nil
}

// saveTemplate boots the template VM and saves it into out.
func (p *Provider) saveTemplate(ctx context.Context, sp sandbox.Spec, cfg *config.Config, lim sandbox.Limits, files []*os.File, meas map[string]string, out *os.File) error {
	sp.ID += "-template"
	b, conn, _, err := p.launch(ctx, sp, cfg, lim, files, meas, launch{hold: true})
	if err != nil {
		return err
	}
	defer func() {
		b.Stop(sandbox.ExitKilled, "template saved")
		<-b.Done()
	}()
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(p.o.BootTimeout))
	ready := make([]byte, 1)
	if _, err := io.ReadFull(conn, ready); err != nil || ready[0] != 'S' {
		return fmt.Errorf("the template guest did not get ready (%q, %v)%s", ready, err, logSuffix(b.Log()))
	}
	// QEMU sends the saved VM to a socket in its directory (this QEMU
	// cannot migrate to a file, and its seccomp filter forbids exec:);
	// the host copies the stream into out.
	migPath := filepath.Join(filepath.Dir(b.qmpPath), "save.sock")
	mln, err := net.ListenUnix("unix", &net.UnixAddr{Name: migPath, Net: "unix"})
	if err != nil {
		return err
	}
	defer mln.Close()
	if err := os.Chown(migPath, int(p.o.UID), int(p.o.GID)); err != nil {
		return err
	}
	copied := make(chan error, 1)
	go func() {
		c, err := mln.AcceptUnix()
		if err != nil {
			copied <- err
			return
		}
		defer c.Close()
		_, err = io.Copy(out, c)
		copied <- err
	}()
	mon, err := qmp.NewSocketMonitor("unix", b.qmpPath, 2*time.Second)
	if err != nil {
		return err
	}
	if err := mon.Connect(); err != nil {
		return err
	}
	defer mon.Disconnect()
	// The guest is idle (blocked reading the port), so a live migration
	// converges at once; it is not paused first, so that the saved state
	// is "running" and a restored copy starts by itself.
	for _, c := range []string{fmt.Sprintf(`{"execute":"migrate","arguments":{"uri":"unix:%s"}}`, migPath)} {
		if _, err := mon.Run([]byte(c)); err != nil {
			return fmt.Errorf("QMP %s: %w", c, err)
		}
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		raw, err := mon.Run([]byte(`{"execute":"query-migrate"}`))
		if err != nil {
			return fmt.Errorf("QMP query-migrate: %w", err)
		}
		var r struct {
			Return struct {
				Status    string `json:"status"`
				ErrorDesc string `json:"error-desc"`
			} `json:"return"`
		}
		if err := json.Unmarshal(raw, &r); err != nil {
			return err
		}
		switch r.Return.Status {
		case "completed":
			select {
			case err := <-copied:
				return err
			case <-time.After(30 * time.Second):
				return errors.New("the saved VM's stream did not end")
			}
		case "failed", "cancelled":
			return fmt.Errorf("saving the VM: %s %s", r.Return.Status, r.Return.ErrorDesc)
		}
		if time.Now().After(deadline) {
			return errors.New("saving the VM took more than 2 minutes")
		}
		if strings.Contains(string(raw), "error") && r.Return.Status == "" {
			return fmt.Errorf("QMP query-migrate: %s", raw)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
