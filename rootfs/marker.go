package rootfs

import (
	"errors"

	"golang.org/x/sys/unix"
)

// markerXattr marks a directory as a root filesystem isobox made or
// imported, so that `isobox rootfs rm` can refuse anything else. An
// extended attribute, not a file, so the container never sees it.
const markerXattr = "user.isobox.rootfs"

// Mark records how dir was made ("busybox", "import"). Filesystems without
// user xattrs (tmpfs before Linux 6.6) cannot hold it; rm then needs --force.
func Mark(dir, how string) error {
	err := unix.Lsetxattr(dir, markerXattr, []byte(how), 0)
	if errors.Is(err, unix.ENOTSUP) {
		return nil
	}
	return err
}

// Marked reports whether dir carries the mark.
func Marked(dir string) bool {
	_, err := unix.Lgetxattr(dir, markerXattr, nil)
	return err == nil
}
