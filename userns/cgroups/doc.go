// Package cgroups gives a container a cgroup v2 of its own, as a child of
// the cgroup the caller was started in when that cgroup is delegated to
// the caller (systemd's user@.service with Delegate=yes, `systemd-run
// --user --scope -p Delegate=yes`, a Slurm job's or a CI runner's own
// subtree). It writes the container's limits there before the container's
// first process exists, reads its usage (stats), and removes it.
//
// It owns only what is under the caller's delegated cgroup, and of that
// only the children named isobox-*, plus the one move below. It never
// touches a cgroup v1 hierarchy, a cgroup it cannot write as the caller,
// or anything above the caller's own cgroup.
//
// # The one move
//
// cgroup v2 enables a controller for children through the parent's
// cgroup.subtree_control, and a cgroup that has processes may not do so
// ("no internal processes"). The caller's own cgroup holds the caller.
// When a limit needs a controller that is not enabled yet, isobox does what
// podman and crun do there (and Docker-in-Docker's entrypoint): it moves
// every process of that cgroup into a child leaf named init, then enables
// the controller. Later starts from that leaf see init's parent as their
// base. Without limits nothing is moved, and a container gets a cgroup
// only where one can be made as things are.
//
// # Life and cleanup
//
// The runner (run's parent, or the detached monitor) makes the cgroup,
// holds an flock on its directory for as long as it lives, clones the
// container's first process straight into it (clone3 with
// CLONE_INTO_CGROUP, Linux 5.7+: the limits apply from its first
// instruction), and removes it once the container is gone. A runner killed
// with kill -9 loses its lock with its life: the next start, rm or delete
// sweeps every isobox-* child that is unlocked and has no process left.
//
// It assumes it runs as the caller, in the caller's cgroup namespace, and
// makes no namespace itself.
package cgroups
