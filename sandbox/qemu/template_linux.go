//go:build linux

package qemu

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/ccos-project/ccos/config"
	"github.com/ccos-project/ccos/control"
	"github.com/ccos-project/ccos/internal/atomicfile"
	"github.com/ccos-project/ccos/sandbox"
	"github.com/ccos-project/ccos/vmspec"
	"golang.org/x/sys/unix"
)

// A template is a booted, warmed-up guest that clones start from. Its RAM
// is a memfd that the template's QEMU mapped shared (memory-backend-file
// share=on); once that QEMU has saved the device state (migration with
// x-ignore-shared, which leaves out shared RAM) and exited, the host seals
// the memfd against every write, growth and shrinking. A clone's QEMU maps
// it private (share=off): reads share the template's pages, writes copy
// them, and the sealed file can be written by no one, not even a QEMU the
// guest has taken over. So a clone restores in time independent of the
// guest's RAM size, and the template stays as it was measured.
type template struct {
	key    string
	mem    *os.File // the sealed memfd holding the guest's RAM
	state  *os.File // the sealed memfd holding the device state
	memMiB int
	// meas holds "template-memory" and "template-state".
	meas map[string]string
}

// The measurements of a template, by artifact name.
const (
	measTemplateMemory = "template-memory"
	measTemplateState  = "template-state"
)

// seals make a memfd immutable for good.
const seals = unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE

// maxStateBytes bounds a saved device state (about 64 KiB here).
const maxStateBytes = 64 << 20

// snapshots reports whether Start clones guests from a template: when
// Options.SnapshotDir is set and the VM has no NIC (a NIC's namespace and
// tap are per VM).
func (p *Provider) snapshots(cfg *config.Config) bool {
	return p.o.SnapshotDir != "" && !cfg.MicroVM.Devices.NIC.Enabled
}

// templateKey names the template of a VM: the image's measurements and
// everything of the command line but the per-VM paths and descriptors.
func (p *Provider) templateKey(cfg *config.Config, meas map[string]string, lim sandbox.Limits) (string, error) {
	accel, _ := p.accel()
	argv, err := vmspec.QEMU(cfg, vmspec.Host{RuntimeDir: "/x", Initrd: fdInitrd, Accel: accel, Hold: true, TSCKHz: tscKHz(),
		WorkdirMiB: int(lim.WorkdirBytes >> 20), TBSizeMiB: p.o.TBSizeMiB, MemoryBackend: "/m"})
	if err != nil {
		return "", err
	}
	h := sha256.New()
	fmt.Fprintln(h, "ccos-qemu-template/1")
	for _, k := range slices.Sorted(maps.Keys(meas)) {
		fmt.Fprintln(h, k, meas[k])
	}
	b, _ := json.Marshal(argv)
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))[:32], nil
}

// template returns the template of cfg's VM: the one this provider holds,
// else the one saved in the snapshot directory (refused if it does not
// measure as recorded), else a new one, made now and saved there.
func (p *Provider) template(ctx context.Context, sp sandbox.Spec, cfg *config.Config, lim sandbox.Limits, files []*os.File, meas map[string]string) (*template, error) {
	key, err := p.templateKey(cfg, meas, lim)
	if err != nil {
		return nil, err
	}
	p.tmplMu.Lock()
	defer p.tmplMu.Unlock()
	if t := p.templates[key]; t != nil {
		return t, t.checkSealed()
	}
	memMiB := cfg.MicroVM.Resources.MemMB
	// Another provider or process may be making or loading the same
	// template: one at a time, so that its three files always belong
	// together.
	unlock, err := p.lockTemplate(key)
	if err != nil {
		return nil, err
	}
	defer unlock()
	t, err := p.loadTemplate(key, memMiB)
	if errors.Is(err, os.ErrNotExist) {
		if t, err = p.makeTemplate(ctx, sp, cfg, lim, files, meas); err == nil {
			t.key = key
			err = p.saveTemplate(t)
		}
	}
	if err != nil {
		return nil, err
	}
	if p.templates == nil {
		p.templates = map[string]*template{}
	}
	p.templates[key] = t
	return t, nil
}

// lockTemplate takes the snapshot directory's lock of the template key
// (flock on KEY.lock); nothing to lock without a directory.
func (p *Provider) lockTemplate(key string) (func(), error) {
	if p.o.SnapshotDir == "" {
		return func() {}, nil
	}
	if err := os.MkdirAll(p.o.SnapshotDir, 0o700); err != nil {
		return nil, fmt.Errorf("snapshot directory: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(p.o.SnapshotDir, key+".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("template lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("template lock: %w", err)
	}
	return func() { f.Close() }, nil
}

// openState opens the device state for one clone: a descriptor of its own,
// read-only, at offset 0.
func (t *template) openState() (*os.File, error) {
	return os.Open(fdPath(int(t.state.Fd())))
}

// checkSealed makes sure the template's files are still sealed.
func (t *template) checkSealed() error {
	for _, f := range []*os.File{t.mem, t.state} {
		got, err := unix.FcntlInt(f.Fd(), unix.F_GET_SEALS, 0)
		if err != nil {
			return fmt.Errorf("template seals: %w", err)
		}
		if got&seals != seals {
			return fmt.Errorf("template %s is not sealed (seals %#x, want %#x): refusing to clone it", f.Name(), got, seals)
		}
	}
	return nil
}

// makeTemplate boots the template guest with its RAM in a new memfd, waits
// until it is warmed up and holds, saves its device state, ends it, seals
// both files and measures them.
func (p *Provider) makeTemplate(ctx context.Context, sp sandbox.Spec, cfg *config.Config, lim sandbox.Limits, files []*os.File, meas map[string]string) (*template, error) {
	sp.ID += "-template"
	st := &starter{p: p, ctx: ctx, spec: sp, lim: lim, cfg: cfg, role: roleTemplate, files: files, meas: maps.Clone(meas)}
	if err := st.run(templateSteps); err != nil {
		if st.mem != nil {
			st.mem.Close()
		}
		return nil, err
	}
	t := &template{mem: st.mem, memMiB: cfg.MicroVM.Resources.MemMB}
	err := st.saveDeviceState(t)
	// The template's QEMU must be gone before its memory can be sealed
	// against writes (no writable shared mapping may remain).
	st.conn.Close()
	st.b.Stop(sandbox.ExitKilled, "template saved")
	<-st.b.Done()
	if err == nil {
		err = t.seal()
	}
	if err == nil {
		t.meas, err = t.measure()
	}
	if err != nil {
		t.close()
		return nil, fmt.Errorf("qemu sandbox %q: making the template: %w", sp.ID, err)
	}
	return t, nil
}

func (t *template) close() {
	for _, f := range []*os.File{t.mem, t.state} {
		if f != nil {
			f.Close()
		}
	}
}

func (t *template) seal() error {
	for _, f := range []*os.File{t.mem, t.state} {
		if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, seals); err != nil {
			return fmt.Errorf("sealing %s: %w", f.Name(), err)
		}
	}
	return nil
}

// measure measures the template's memory (pageDigest) and device state.
func (t *template) measure() (map[string]string, error) {
	mem, err := pageDigest(t.mem, int64(t.memMiB)<<20, nil)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(t.state, 0, maxStateBytes)); err != nil {
		return nil, err
	}
	return map[string]string{measTemplateMemory: mem, measTemplateState: "sha256:" + hex.EncodeToString(h.Sum(nil))}, nil
}

// newMemfd makes a sealable memfd of size bytes.
func newMemfd(name string, size int64) (*os.File, error) {
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("memfd: %w", err)
	}
	f := os.NewFile(uintptr(fd), name)
	if err := f.Truncate(size); err != nil {
		f.Close()
		return nil, fmt.Errorf("memfd: %w", err)
	}
	return f, nil
}

// createTemplateMemory makes the memfd the template guest's RAM lives in.
func (st *starter) createTemplateMemory() (err error) {
	st.mem, err = newMemfd("ccos-template-memory", int64(st.cfg.MicroVM.Resources.MemMB)<<20)
	return err
}

// awaitTemplateReady waits for the template guest's ready byte: it has
// booted, warmed its agent up and waits for a wake-up.
func (st *starter) awaitTemplateReady() error {
	st.conn.SetReadDeadline(time.Now().Add(st.p.o.BootTimeout))
	defer st.conn.SetReadDeadline(time.Time{})
	ready := make([]byte, 1)
	if _, err := io.ReadFull(st.conn, ready); err != nil || ready[0] != control.WakeReady {
		return fmt.Errorf("the template guest did not get ready (%q, %v)%s", ready, err, logSuffix(st.b.Log()))
	}
	st.b.ready = time.Now()
	return nil
}

// saveDeviceState saves the template VM, all but its shared RAM
// (x-ignore-shared), into a new memfd t.state. QEMU sends the stream to a
// socket in its directory (its seccomp filter forbids exec:, and this
// QEMU cannot migrate to a file); the host copies it. The guest is idle,
// so the migration converges at once; the VM is not paused first, so that
// the saved run state is "running" and a clone runs as soon as it is
// restored.
func (st *starter) saveDeviceState(t *template) error {
	var err error
	if t.state, err = newMemfd("ccos-template-state", 0); err != nil {
		return err
	}
	path := filepath.Join(st.paths.Dir, "save.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return err
	}
	defer ln.Close()
	if err := os.Chown(path, int(st.p.o.UID), int(st.p.o.GID)); err != nil {
		return err
	}
	copied := make(chan error, 1)
	go func() {
		c, err := ln.AcceptUnix()
		if err != nil {
			copied <- err
			return
		}
		defer c.Close()
		n, err := io.Copy(t.state, io.LimitReader(c, maxStateBytes+1))
		if err == nil && n > maxStateBytes {
			err = fmt.Errorf("the device state exceeds %d bytes", maxStateBytes)
		}
		copied <- err
	}()
	m, err := dialMonitor(st.paths.QMPSocket, 5*time.Second, 5*time.Second)
	if err != nil {
		return err
	}
	defer m.close()
	if err := m.setCapability("x-ignore-shared", true); err != nil {
		return err
	}
	if err := m.migrate("unix:" + path); err != nil {
		return err
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		info, err := m.queryMigrate()
		if err != nil {
			return err
		}
		switch info.Status {
		case "completed":
			select {
			case err := <-copied:
				return err
			case <-time.After(30 * time.Second):
				return errors.New("the saved device state's stream did not end")
			}
		case "failed", "cancelled":
			return fmt.Errorf("saving the VM: %s %s", info.Status, info.ErrorDesc)
		}
		if time.Now().After(deadline) {
			return errors.New("saving the VM took more than 2 minutes")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// pageSize is the unit of pageDigest and of template copies.
const pageSize = 4096

// pageDigest measures size bytes of f as "sha256-pages:<hex>": SHA-256
// over "ccos-pages/1", the size as 8 bytes big-endian, then for each
// 4 KiB page that holds a non-zero byte, in order, its offset as 8 bytes
// big-endian and its 4096 bytes. Zero pages (holes included) are left out,
// so the digest depends on the bytes alone, not on which pages a file
// system allocated, and a guest's mostly empty RAM measures in the time of
// its used pages. copyTo, when set, gets every non-zero page (to copy a
// template while measuring it).
func pageDigest(f *os.File, size int64, copyTo func(off int64, page []byte) error) (string, error) {
	h := sha256.New()
	h.Write([]byte("ccos-pages/1"))
	binary.Write(h, binary.BigEndian, size)
	if err := forEachPage(f, size, func(off int64, page []byte) error {
		writePage(h, off, page)
		if copyTo != nil {
			return copyTo(off, page)
		}
		return nil
	}); err != nil {
		return "", err
	}
	return "sha256-pages:" + hex.EncodeToString(h.Sum(nil)), nil
}

func writePage(h hash.Hash, off int64, page []byte) {
	var o [8]byte
	binary.BigEndian.PutUint64(o[:], uint64(off))
	h.Write(o[:])
	h.Write(page)
}

var zeroPage [pageSize]byte

// forEachPage calls fn for every page of f below size that holds a
// non-zero byte, in order; holes are skipped without reading them.
func forEachPage(f *os.File, size int64, fn func(off int64, page []byte) error) error {
	buf := make([]byte, 1<<20)
	fd := int(f.Fd())
	for off := int64(0); off < size; {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) || err == nil && data >= size {
			return nil // only holes from here on
		}
		if err != nil {
			return fmt.Errorf("seeking data: %w", err)
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			return fmt.Errorf("seeking a hole: %w", err)
		}
		data -= data % pageSize
		hole = min(hole, size)
		for data < hole {
			n := min(int64(len(buf)), hole-data)
			n = (n + pageSize - 1) / pageSize * pageSize
			got, err := f.ReadAt(buf[:n], data)
			if err != nil && !errors.Is(err, io.EOF) {
				return err
			}
			for i := 0; i < got; i += pageSize {
				page := buf[i:min(i+pageSize, got)]
				if !bytes.Equal(page, zeroPage[:len(page)]) {
					if err := fn(data+int64(i), page); err != nil {
						return err
					}
				}
			}
			if got == 0 {
				break
			}
			data += int64(got)
		}
		off = max(hole, data)
	}
	return nil
}

// manifest records a saved template's measurements, checked when it is
// loaded.
type manifest struct {
	Format string `json:"format"`
	MemMiB int    `json:"memory_mib"`
	Memory string `json:"template-memory"`
	State  string `json:"template-state"`
}

const manifestFormat = "ccos-qemu-template/1"

// templatePaths are a template's files in the snapshot directory.
func (p *Provider) templatePaths(key string) (mem, state, man string) {
	base := filepath.Join(p.o.SnapshotDir, key)
	return base + ".mem", base + ".state", base + ".json"
}

// saveTemplate writes t to the snapshot directory, owned by the host and
// unreadable to QEMU's user: the memory as a sparse file, the state, and
// last the manifest with their measurements, each written to a temporary
// file, synced and renamed.
func (p *Provider) saveTemplate(t *template) error {
	if err := os.MkdirAll(p.o.SnapshotDir, 0o700); err != nil {
		return fmt.Errorf("snapshot directory: %w", err)
	}
	memPath, statePath, manPath := p.templatePaths(t.key)
	size := int64(t.memMiB) << 20
	err := writeAtomic(memPath, func(f *os.File) error {
		if err := f.Truncate(size); err != nil {
			return err
		}
		return forEachPage(t.mem, size, func(off int64, page []byte) error {
			_, err := f.WriteAt(page, off)
			return err
		})
	})
	if err == nil {
		err = writeAtomic(statePath, func(f *os.File) error {
			_, err := io.Copy(f, io.NewSectionReader(t.state, 0, maxStateBytes))
			return err
		})
	}
	if err == nil {
		b, _ := json.MarshalIndent(manifest{Format: manifestFormat, MemMiB: t.memMiB, Memory: t.meas[measTemplateMemory], State: t.meas[measTemplateState]}, "", "  ")
		err = writeAtomic(manPath, func(f *os.File) error {
			_, err := f.Write(append(b, '\n'))
			return err
		})
	}
	if err != nil {
		return fmt.Errorf("saving the template: %w", err)
	}
	return nil
}

// writeAtomic writes path (mode 0600) through fill, atomically
// (internal/atomicfile: temp file beside it, fsync, rename, directory
// fsync): readers see the old file or the whole new one.
func writeAtomic(path string, fill func(*os.File) error) error {
	f, err := atomicfile.Create(path, 0o600)
	if err != nil {
		return err
	}
	defer f.Abort()
	if err := fill(f.File); err != nil {
		return err
	}
	return f.Commit()
}

// loadTemplate loads the template saved under key into new sealed memfds,
// measuring while it copies; a template that does not measure as its
// manifest says is refused with an AttestationError. An error wrapping
// os.ErrNotExist means there is none.
func (p *Provider) loadTemplate(key string, memMiB int) (*template, error) {
	if p.o.SnapshotDir == "" {
		return nil, os.ErrNotExist
	}
	memPath, statePath, manPath := p.templatePaths(key)
	b, err := os.ReadFile(manPath)
	if err != nil {
		return nil, err
	}
	var man manifest
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&man); err != nil || man.Format != manifestFormat || man.MemMiB != memMiB {
		return nil, fmt.Errorf("template manifest %s: not a %s manifest for %d MiB (%v); remove the template's files to make a new one", manPath, manifestFormat, memMiB, err)
	}
	t := &template{key: key, memMiB: memMiB}
	if t.mem, err = newMemfd("ccos-template-memory", int64(memMiB)<<20); err == nil {
		t.state, err = newMemfd("ccos-template-state", 0)
	}
	if err == nil {
		err = t.load(memPath, statePath)
	}
	if err == nil {
		err = t.seal()
	}
	if err != nil {
		t.close()
		return nil, fmt.Errorf("loading the template %s: %w", key, err)
	}
	for _, c := range []struct{ name, path, want string }{
		{measTemplateMemory, memPath, man.Memory}, {measTemplateState, statePath, man.State},
	} {
		if t.meas[c.name] != c.want {
			t.close()
			return nil, &sandbox.AttestationError{Artifact: "the snapshot " + c.name + " " + c.path, Expected: c.want, Actual: t.meas[c.name],
				Measurements: t.meas, Source: "its manifest " + manPath,
				Remedy: "the template was changed after it was made; remove " + filepath.Join(p.o.SnapshotDir, key) + ".* to make a new one"}
		}
	}
	return t, nil
}

// load copies the saved files into t's memfds and measures them.
func (t *template) load(memPath, statePath string) error {
	mf, err := os.Open(memPath)
	if err != nil {
		return err
	}
	defer mf.Close()
	size := int64(t.memMiB) << 20
	if fi, err := mf.Stat(); err != nil || fi.Size() != size {
		return fmt.Errorf("%s is not %d bytes", memPath, size)
	}
	mem, err := pageDigest(mf, size, func(off int64, page []byte) error {
		_, err := t.mem.WriteAt(page, off)
		return err
	})
	if err != nil {
		return err
	}
	sf, err := os.Open(statePath)
	if err != nil {
		return err
	}
	defer sf.Close()
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(t.state, h), io.LimitReader(sf, maxStateBytes)); err != nil {
		return err
	}
	t.meas = map[string]string{measTemplateMemory: mem, measTemplateState: "sha256:" + hex.EncodeToString(h.Sum(nil))}
	return nil
}
