// Package process is the "process" sandbox provider: the guest runs as a
// re-executed copy of the ccos binary inside fresh Linux namespaces (user,
// mount, pid, net, uts, ipc), in a read-only root built from nothing on a
// tmpfs, behind a seccomp filter, with rlimits, cgroup memory/pids/cpu limits,
// no_new_privs, an unprivileged uid and no capabilities.
//
// The host starts the child with /proc/self/exe, the marker argument
// "__ccos-sandbox-init" and two inherited sockets: fd 3 is the control
// connection (Sandbox.Control on the host, the conn given to
// sandbox.GuestMain in the guest), fd 4 is the setup channel on which the
// host releases the child once it sits in its cgroups and on which the child
// reports "ok" or the setup step that failed. A root host also passes, as
// fds 5 and 6, detached read-only mounts of the binary and of the
// capabilities directory. Nothing else crosses: stdin and stdout are
// /dev/null, stderr is a pipe the host drains into a buffer capped at
// Limits.LogBytes, the environment is empty.
//
// The ccos binary (and any test binary using this package) must set
// sandbox.GuestMain and then call InitIfChild, first thing in main (or
// TestMain); in a sandbox child InitIfChild never returns.
//
// Start-up on each side is an ordered list of named steps (hostSteps and
// childSteps), so that the order can be read, tested and reported: a failed
// child step ends the sandbox with an *sandbox.ExitError whose Reason is
// sandbox.ExitSetup and whose Detail names the step.
package process
