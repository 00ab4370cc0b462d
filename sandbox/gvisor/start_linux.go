//go:build linux

package gvisor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/ccos-project/ccos/sandbox"
	"github.com/ccos-project/ccos/sandbox/cgroup"
)

// starter holds what the steps of Start build; on failure undo releases it.
type starter struct {
	p    *Provider
	ctx  context.Context
	spec sandbox.Spec
	lim  sandbox.Limits
	host *hostCheck

	name string // container id and cgroup name
	dir  string // private directory: bundle/, state/, runsc.log
	cg   *cgroup.Group
	cmd  *exec.Cmd
	// host and runsc ends of the standard streams
	stdin, childStdin   *os.File
	stdout, childStdout *os.File
	stderr, childStderr *os.File
}

// step is one named step of Start.
type step struct {
	name string
	run  func(*starter) error
}

// startSteps is Start, in order.
var startSteps = []step{
	{"check-spec", (*starter).checkSpec},
	{"check-host", (*starter).checkHost},
	{"make-private-dir", (*starter).makePrivateDir},
	{"create-cgroup", (*starter).createCgroup},
	{"write-bundle", (*starter).writeBundle},
	{"create-pipes", (*starter).createPipes},
	{"start-runsc", (*starter).startRunsc},
}

// Start starts a guest in a new gVisor sandbox. Errors of the host-side
// steps are returned here, naming the step; a failure inside runsc is
// reported by Wait as an ExitSetup error carrying runsc's message.
func (p *Provider) Start(ctx context.Context, spec sandbox.Spec) (sandbox.Sandbox, error) {
	st := &starter{p: p, ctx: ctx, spec: spec}
	for _, s := range startSteps {
		if err := s.run(st); err != nil {
			st.undo()
			return nil, fmt.Errorf("gvisor sandbox %q: %s: %w", spec.ID, s.name, err)
		}
	}
	sb := st.watch()
	if p.Raw {
		return sb, nil
	}
	if err := sb.waitReady(readyTimeout); err != nil {
		sb.Stop(sandbox.ExitSetup, err.Error())
		return nil, fmt.Errorf("gvisor sandbox %q: %w: %v", spec.ID, err, sb.Wait())
	}
	return sb, nil
}

// readyTimeout bounds the wait for the guest's first bytes.
const readyTimeout = 30 * time.Second

func (st *starter) checkSpec() error {
	if err := st.ctx.Err(); err != nil {
		return err
	}
	st.lim = st.spec.Limits.WithDefaults()
	if d := st.spec.CapabilitiesDir; d != "" {
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("capabilities dir: %w", err)
		}
		if !fi.IsDir() {
			return fmt.Errorf("capabilities dir %s is not a directory", d)
		}
	}
	st.name = containerName(st.spec.ID)
	return nil
}

func (st *starter) checkHost() (err error) {
	if st.host, err = st.p.checkHost(); err != nil {
		return fmt.Errorf("%w: %w", sandbox.ErrUnavailable, err)
	}
	return nil
}

// containerName is "ccos-<id>-<random>", the id reduced to the characters
// runsc and cgroup names accept.
func containerName(id string) string {
	clean := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '_'
	}, id)
	if len(clean) > 48 {
		clean = clean[:48]
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "ccos-" + clean + "-" + hex.EncodeToString(b[:])
}

// makePrivateDir creates the 0700 directory that holds the bundle, runsc's
// state (--root) and runsc's log.
func (st *starter) makePrivateDir() (err error) {
	if st.dir, err = os.MkdirTemp("", "ccos-gvisor-"); err != nil {
		return err
	}
	for _, d := range []string{"bundle", "state"} {
		if err := os.Mkdir(filepath.Join(st.dir, d), 0o700); err != nil {
			return err
		}
	}
	return nil
}

// pidsOverhead is what the pids limit allows on top of Limits.PIDs for the
// sandbox's own host tasks: the sentry's and gofer's threads and the ptrace
// stubs' (an idle sandbox counted 34).
const pidsOverhead = 96

func (st *starter) createCgroup() (err error) {
	st.cg, err = cgroup.New(st.host.layout, st.name, cgroup.Limits{
		MemoryBytes: st.lim.MemoryBytes, PIDs: st.lim.PIDs + pidsOverhead, CPUPercent: st.lim.CPUPercent})
	return err
}

func (st *starter) writeBundle() error {
	return writeBundle(filepath.Join(st.dir, "bundle"), bundleConfig{
		binary:       st.host.binary,
		capabilities: st.spec.CapabilitiesDir,
		cgroupsPath:  st.name,
		lim:          st.lim,
	})
}

func (st *starter) createPipes() (err error) {
	if st.childStdin, st.stdin, err = os.Pipe(); err != nil {
		return err
	}
	if st.stdout, st.childStdout, err = os.Pipe(); err != nil {
		return err
	}
	st.stderr, st.childStderr, err = os.Pipe()
	return err
}

// runscArgs is the runsc command line. --network=none: the sandbox has
// only its own loopback (the default mode would need host iptables and
// turn on forwarding); a private --root: no other runsc user sees or
// touches the state; --log to a file: runsc's own messages stay off the
// control channel (its default log is standard output).
func (st *starter) runscArgs() []string {
	return []string{
		"--root", filepath.Join(st.dir, "state"),
		"--network=none",
		"--platform=" + st.host.platform,
		"--log", filepath.Join(st.dir, "runsc.log"),
		"--log-format=json",
		"run", "--bundle", filepath.Join(st.dir, "bundle"), st.name,
	}
}

func (st *starter) startRunsc() error {
	st.cmd = &exec.Cmd{
		Path:   st.host.runsc.path,
		Args:   append([]string{"runsc"}, st.runscArgs()...),
		Env:    []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"},
		Dir:    st.dir,
		Stdin:  st.childStdin,
		Stdout: st.childStdout,
		Stderr: st.childStderr,
		// runsc runs the sandbox "attached": it dies with runsc, and runsc
		// dies with us.
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL},
	}
	if err := st.cmd.Start(); err != nil {
		return err
	}
	for _, f := range []*os.File{st.childStdin, st.childStdout, st.childStderr} {
		f.Close()
	}
	st.childStdin, st.childStdout, st.childStderr = nil, nil, nil
	return nil
}

// undo releases whatever the steps built, after a failed step.
func (st *starter) undo() {
	if st.cmd != nil && st.cmd.Process != nil {
		_ = st.cmd.Process.Kill()
		_ = st.cmd.Wait()
	}
	for _, f := range []*os.File{st.stdin, st.childStdin, st.stdout, st.childStdout, st.stderr, st.childStderr} {
		if f != nil {
			f.Close()
		}
	}
	if st.cg != nil {
		_ = st.cg.Remove()
	}
	if st.dir != "" {
		_ = os.RemoveAll(st.dir)
	}
}
