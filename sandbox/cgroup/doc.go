// Package cgroup makes the cgroups that bound a sandbox's memory, processes
// and CPU, for the providers that run host processes (process and gvisor).
// It is Linux only.
//
// A sandbox's group is created beneath this process's own group in each
// hierarchy, so that a delegated or nested ccos stays inside its own budget.
// When any of the required controllers (memory, pids, cpu) is mounted as
// cgroup v1 (hybrid layouts), v1 is used for all of them; otherwise the
// unified v2 hierarchy. A missing controller or a group that cannot be made
// is an error naming the limit it would have enforced: never a silent run
// without the limit.
package cgroup
