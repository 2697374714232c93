package rootfs

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrNoSuchUser means a user or group name is not in the rootfs's files.
var ErrNoSuchUser = errors.New("not found")

// Account is a user of the rootfs's /etc/passwd.
type Account struct {
	UID, GID uint32
	Home     string
}

// LookupUser finds a user by name or numeric id in the rootfs's
// /etc/passwd, read through the root so a planted symlink cannot make isobox
// read a host file instead. A numeric id that is not listed is no error:
// found is false and the caller uses defaults, as Docker does.
func LookupUser(rootPath, nameOrID string) (a Account, found bool, err error) {
	err = scanRootFile(rootPath, "/etc/passwd", func(f []string) bool {
		if len(f) < 6 || (f[0] != nameOrID && f[2] != nameOrID) {
			return false
		}
		uid, err1 := strconv.ParseUint(f[2], 10, 32)
		gid, err2 := strconv.ParseUint(f[3], 10, 32)
		if err1 != nil || err2 != nil {
			return false
		}
		a, found = Account{UID: uint32(uid), GID: uint32(gid), Home: f[5]}, true
		return true
	})
	return a, found, err
}

// LookupGroup finds a group's id by name in the rootfs's /etc/group.
func LookupGroup(rootPath, name string) (gid uint32, err error) {
	found := false
	err = scanRootFile(rootPath, "/etc/group", func(f []string) bool {
		if len(f) < 3 || f[0] != name {
			return false
		}
		n, perr := strconv.ParseUint(f[2], 10, 32)
		if perr != nil {
			return false
		}
		gid, found = uint32(n), true
		return true
	})
	if err == nil && !found {
		err = fmt.Errorf("group %q: %w in %s/etc/group", name, ErrNoSuchUser, rootPath)
	}
	return gid, err
}

// scanRootFile calls match with the colon-separated fields of each line of
// unsafePath inside the rootfs until it returns true. A missing file is no
// error: a rootfs need not have one.
func scanRootFile(rootPath, unsafePath string, match func([]string) bool) error {
	r, err := openRoot(rootPath)
	if err != nil {
		return err
	}
	defer r.close()
	fd, err := r.open(unsafePath, unix.O_RDONLY|unix.O_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), r.display(unsafePath))
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", r.display(unsafePath))
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if match(strings.Split(sc.Text(), ":")) {
			return nil
		}
	}
	return sc.Err()
}
