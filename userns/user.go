package userns

import (
	"fmt"
	"path"

	"github.com/isobox/isobox/rootfs"
)

// ResolveUser turns a non-empty --user spec into ids and a home directory,
// looking names up in root's /etc/passwd and /etc/group (the rootfs on
// the host for run, "/" inside the container for exec; never the host's).
// A number that names no account is taken as is, with home "/".
func ResolveUser(root, spec string) (uid, gid uint32, home string, err error) {
	return ResolveUserIn(root, root, spec)
}

// ResolveUserIn is ResolveUser with /etc/passwd read under passwdRoot and
// /etc/group under groupRoot: an image's layers may hold them apart.
func ResolveUserIn(passwdRoot, groupRoot, spec string) (uid, gid uint32, home string, err error) {
	root := passwdRoot
	u, err := ParseUserSpec(spec)
	if err != nil {
		return 0, 0, "", err
	}
	acct, found, err := rootfs.LookupUser(root, u.User)
	if err != nil {
		return 0, 0, "", fmt.Errorf("--user: %w", err)
	}
	switch id, numeric := ParseID(u.User); {
	case found:
		uid, gid, home = acct.UID, acct.GID, acct.Home
	case numeric:
		uid, home = id, "/"
	default:
		return 0, 0, "", fmt.Errorf("--user %q: no such user in %s", u.User, path.Join(root, "etc/passwd"))
	}
	if u.Group != "" {
		if id, numeric := ParseID(u.Group); numeric {
			gid = id
		} else if gid, err = rootfs.LookupGroup(groupRoot, u.Group); err != nil {
			return 0, 0, "", fmt.Errorf("--user: %w", err)
		}
	}
	return uid, gid, home, nil
}
