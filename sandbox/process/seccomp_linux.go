package process

import (
	"fmt"
	"runtime"
	"unsafe"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// Syscall-denial policy. The default is allow (the guest is a Go program
// whose runtime uses a wide, version-dependent set of syscalls); what is
// denied is what reaches kernel attack surface or could undo the sandbox.
// Denials return EPERM rather than kill, so that a runtime probing a feature
// gets an error it handles; clone3 returns ENOSYS so that runtimes and libc
// fall back to clone, whose flags the filter can inspect.
var (
	// deniedSyscalls are refused outright.
	deniedSyscalls = []string{
		// Debugging and reading other processes.
		"ptrace", "process_vm_readv", "process_vm_writev", "kcmp",
		// Mounts and namespaces: the root must stay as built.
		"mount", "umount2", "pivot_root", "chroot", "unshare", "setns",
		"open_tree", "move_mount", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
		// Kernel code, keys, BPF, perf.
		"kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
		"bpf", "perf_event_open", "keyctl", "add_key", "request_key",
		// Whole-machine operations.
		"reboot", "swapon", "swapoff", "acct", "quotactl", "syslog",
		"settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
		"sethostname", "setdomainname", "iopl", "ioperm", "vhangup",
		// Filesystem handles bypass path checks; io_uring bypasses this filter;
		// userfaultfd is a common exploitation primitive.
		"name_to_handle_at", "open_by_handle_at",
		"io_uring_setup", "io_uring_enter", "io_uring_register",
		"userfaultfd", "personality", "uselib",
	}
	// namespaceCloneFlags are the clone flags that would create namespaces
	// (CLONE_NEWTIME only exists for clone3 and unshare, both denied).
	namespaceCloneFlags uint64 = unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC |
		unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWNET | unix.CLONE_NEWCGROUP
)

// errnoENOSYS is the action that makes a syscall look unimplemented.
const errnoENOSYS = seccomp.Action(unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS))

// policy is the syscall policy of every process sandbox.
func policy() seccomp.Policy {
	return seccomp.Policy{
		DefaultAction: seccomp.ActionAllow,
		Syscalls: []seccomp.SyscallGroup{
			{Action: seccomp.ActionErrno, Names: deniedSyscalls},
			{
				Action: seccomp.ActionErrno,
				NamesWithCondtions: []seccomp.NameWithConditions{
					// Only AF_UNIX sockets: not even an inet socket can be created.
					{Name: "socket", Conditions: seccomp.ArgumentConditions{{Argument: 0, Operation: seccomp.NotEqual, Value: unix.AF_UNIX}}},
					{Name: "socketpair", Conditions: seccomp.ArgumentConditions{{Argument: 0, Operation: seccomp.NotEqual, Value: unix.AF_UNIX}}},
					{Name: "clone", Conditions: seccomp.ArgumentConditions{{Argument: 0, Operation: seccomp.BitsSet, Value: namespaceCloneFlags}}},
				},
			},
			{Action: errnoENOSYS, Names: []string{"clone3"}},
		},
	}
}

// auditArchX86_64 is the only architecture the filter lets through.
const auditArchX86_64 = unix.AUDIT_ARCH_X86_64

// filterProgram assembles the policy behind an explicit architecture check:
// a syscall made through any other ABI (i386 via int 0x80, for instance)
// kills the process, since the numbers the policy compares mean other
// syscalls there. The library also checks, but falls through to the default
// action, which here is allow.
func filterProgram() ([]unix.SockFilter, error) {
	if runtime.GOARCH != "amd64" {
		return nil, fmt.Errorf("seccomp filter is written for x86_64, not %s", runtime.GOARCH)
	}
	p := policy()
	body, err := p.Assemble()
	if err != nil {
		return nil, fmt.Errorf("assemble seccomp policy: %w", err)
	}
	archCheck := []bpf.Instruction{
		bpf.LoadAbsolute{Off: 4, Size: 4}, // seccomp_data.arch
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: auditArchX86_64, SkipTrue: 1},
		bpf.RetConstant{Val: uint32(seccomp.ActionKillProcess)},
	}
	raw, err := bpf.Assemble(append(archCheck, body...))
	if err != nil {
		return nil, fmt.Errorf("assemble seccomp BPF: %w", err)
	}
	out := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		out[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	return out, nil
}

// loadFilter sets no_new_privs and installs the filter on every thread of
// the process (TSYNC, which also spreads no_new_privs).
func loadFilter(prog []unix.SockFilter) error {
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("no_new_privs: %w", err)
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	_, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER,
		unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&fprog)))
	runtime.KeepAlive(prog)
	if errno != 0 {
		return fmt.Errorf("install seccomp filter: %w", errno)
	}
	return nil
}
