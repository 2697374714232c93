// Package rootfs owns the container's root filesystem: building a minimal
// BusyBox tree (Build), and preparing a tree for a container (Prepare): the
// self-bind, proc, sys, a small /dev, devpts, shm, mqueue, the runc-style
// masks, and pivot_root.
//
// Prepare runs in isobox's init, as root of a user namespace, in a fresh
// mount namespace owned by it, before pivot_root; it must never be called in
// the host's mount namespace. Every path inside the rootfs is untrusted: it is
// resolved with openat2(RESOLVE_IN_ROOT) against an open descriptor of the
// root and mounted on through /proc/self/fd, so a symlink planted in the
// rootfs (proc -> /, dev -> /etc) cannot move a mount onto the host.
//
// Build runs as the caller on the host and writes only below its target
// directory, through an os.Root, and removes only what it created itself.
package rootfs
