// Package slirp owns the container's network: the user-mode network helper
// on the host side, and what is configured inside the container's network
// namespace.
//
// The host side (Start) runs in the parent, as the caller, in the caller's
// namespaces. It uses RootlessKit's slirp4netns driver, which creates the
// tap through `nsenter ... ip tuntap add` into the holder's user and mount
// namespaces and the container's network namespace, then starts slirp4netns
// on it (or starts the isobox-gvisor helper, which runs gvisor-tap-vsock's
// stack; see slirp/gvisor for why it is a program of its own). The parent
// side of the builtin port driver (Ports) runs there too.
//
// The child sides (RunNetChild, RunPortChild, Configure) run in the holder,
// in the container's user namespace with the host's filesystem, and act on
// the container's network namespace by path (netlink opened inside it,
// setns on a locked thread); LoopbackUp runs in init, inside that network
// namespace. None of them needs anything from the rootfs (no `ip` inside).
//
// Not here yet: the pasta driver.
package slirp
