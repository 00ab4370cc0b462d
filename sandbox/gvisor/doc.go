// Package gvisor is the "gvisor" sandbox provider: the guest (the ccos
// binary's hidden "guest" command) runs inside gVisor's runsc, a user-space
// kernel that answers the guest's system calls itself, so the host kernel is
// reached only through the sentry's own narrow seccomp-filtered surface.
//
// Each Start writes an OCI bundle (github.com/opencontainers/runtime-spec
// types) into a private temporary directory: an empty, read-only root file
// system holding only mount points; the ccos binary bound read-only at /ccos;
// Spec.CapabilitiesDir bound read-only at /capabilities; a tmpfs /work of
// Limits.WorkdirBytes; gVisor's own /proc, /sys and /dev; a read-only empty
// /tmp. The process is "/ccos guest" as uid and gid 1000 with no
// capabilities, no_new_privs, an empty environment and rlimits.
//
// The host then runs
//
//	runsc --root STATE --network=none --platform=P --log=LOG --log-format=json \
//	    run --bundle BUNDLE ID
//
// with STATE a private state directory per sandbox and P the platform
// chosen by Available (kvm when the host can really run it, else ptrace).
// runsc's standard input and output are the control channel
// (Sandbox.Control); its standard error, which carries the guest's, is kept
// up to Limits.LogBytes (Sandbox.Log).
//
// Memory, pids and CPU limits are enforced by a cgroup the provider creates
// itself before runsc starts and names in the bundle's cgroupsPath: runsc
// finds it existing, joins its sandbox and gofer processes to it and leaves
// its settings alone, and the provider reads its OOM count and removes it
// after the end. A host where that cgroup cannot be made fails Start; no
// sandbox runs without its limits. The provider never uses "runsc do" (which
// turns on IP forwarding on the host) nor --ignore-cgroups.
package gvisor
