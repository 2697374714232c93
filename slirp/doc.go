// Package slirp owns the container's network: the user-mode network helper
// on the host side, and what is configured inside the container's network
// namespace.
//
// The host side (Start) runs in the parent, as the caller, in the caller's
// namespaces. It uses RootlessKit's slirp4netns driver, which creates the
// tap through `nsenter ... ip tuntap add` into the holder's user and mount
// namespaces and the container's network namespace, then starts slirp4netns
// on it. The container side (LoopbackUp, Configure) runs in isobox's init,
// inside the container's network namespace, as root of the container's
// user namespace, with netlink; it never touches a namespace it was not
// created in, and it needs nothing from the rootfs (no `ip` inside).
//
// Not here yet: published ports, the in-process gvisor driver and pasta.
package slirp
