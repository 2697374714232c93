// Package idmap owns the id mappings of isobox's user namespace: it reads the
// caller's subordinate ranges from /etc/subuid and /etc/subgid, decides the
// mapping (Plan), and writes it for a waiting process, through the setuid
// helpers newuidmap/newgidmap or, for a single id, directly.
//
// It never creates namespaces and never changes the credentials of the
// process it runs in. Parse and Plan are pure; Apply is the only function
// that touches the system and it runs in the parent, in the caller's own
// user namespace, against the /proc/PID of a child that waits for it.
//
// The layout is podman's: container id 0 is the caller, container ids 1..N
// are the caller's subordinate ranges in file order. When the caller is real
// root, container root must not be host root, so all container ids come
// from root's own subordinate range.
package idmap
