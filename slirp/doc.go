// Package slirp owns the container's network: what is configured inside the
// container's network namespace, and (for user-mode networking) the helper
// that connects it to the host.
//
// LoopbackUp runs in isobox's init, inside the container's network
// namespace, as root of the container's user namespace; it never touches a
// network namespace it was not created in. User-mode networking through
// RootlessKit's drivers is not built yet: until it is, a container has
// either its own namespace with only lo (--net none) or the host's.
package slirp
