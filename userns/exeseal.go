package userns

import (
	"fmt"
	"io"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// The container can see init, its PID 1, and through /proc/1/exe the binary
// init runs: this isobox binary, which usually belongs to the very user
// container root is mapped to. Were that the file on disk, a process in the
// container could open it for writing and replace isobox for the user's
// next run (runc's CVE-2019-5736). Today the kernel refuses writes to a
// running executable (ETXTBSY), but that lasts only while some isobox
// process runs it, and the kernel has tried to drop the rule before.
//
// So the holder execs init from a binary that cannot be written through any
// path: a clone of the binary's mount, detached and made read-only
// (open_tree and mount_setattr, Linux 5.12+), which costs a few syscalls and
// no copy; on older kernels a sealed memfd copy, as runc's exeseal does. The
// mount exists in no mount namespace, so nothing in the container can
// reach it to remount it read-write.

// sealedSelf returns a path through which this binary can be executed but
// never written, valid while the returned descriptor stays open.
func sealedSelf() (path string, fd int, err error) {
	fd, err = readOnlySelfMount()
	if err != nil {
		if fd, err = memfdSelf(); err != nil {
			return "", -1, err
		}
	}
	// Named through this process's /proc entry, not /proc/self: the child
	// that execs it renumbers descriptors first.
	return "/proc/" + strconv.Itoa(os.Getpid()) + "/fd/" + strconv.Itoa(fd), fd, nil
}

func readOnlySelfMount() (int, error) {
	// By name, not through /proc/self/exe: that link leads to the mount in
	// the runner's mount namespace, which open_tree may not clone from
	// here. The name is then checked to still be this very binary.
	name, err := os.Readlink(selfExe)
	if err != nil {
		return -1, err
	}
	var self, named unix.Stat_t
	if err := unix.Stat(selfExe, &self); err != nil {
		return -1, &os.PathError{Op: "stat", Path: selfExe, Err: err}
	}
	fd, err := unix.OpenTree(unix.AT_FDCWD, name, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("open_tree %s: %w", name, err)
	}
	if err := unix.Fstat(fd, &named); err != nil || named.Dev != self.Dev || named.Ino != self.Ino {
		unix.Close(fd)
		return -1, fmt.Errorf("%s is no longer the running binary", name)
	}
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, &attr); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("mount_setattr read-only: %w", err)
	}
	return fd, nil
}

func memfdSelf() (int, error) {
	src, err := os.Open(selfExe)
	if err != nil {
		return -1, err
	}
	defer src.Close()
	fd, err := unix.MemfdCreate("isobox", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return -1, fmt.Errorf("memfd_create: %w", err)
	}
	dst := os.NewFile(uintptr(fd), "memfd:isobox")
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return -1, fmt.Errorf("copy %s to a memfd: %w", selfExe, err)
	}
	seals := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
		dst.Close()
		return -1, fmt.Errorf("seal the memfd copy: %w", err)
	}
	// dst must not close fd when collected.
	fd2, err := unix.Dup(fd)
	dst.Close()
	if err != nil {
		return -1, err
	}
	unix.CloseOnExec(fd2)
	return fd2, nil
}
