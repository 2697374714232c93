// Package tests runs the real isobox binary the way a user does.
//
// Every isobox command runs as an unprivileged user. When the tests run as
// root (CI does), TestMain creates two users, isobox-test with subordinate
// ranges and isobox-nosub without, and drops to them with
// SysProcAttr.Credential; otherwise the tests run isobox as the caller and
// skip what needs a second user. The binary, its rootfs and every scratch
// directory live under a directory the test user can reach: t.TempDir() is
// root's and 0700.
//
// Nothing here sends traffic anywhere but loopback inside a container.
package tests
