package rootfs

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// MountError is a failed mount(2) with everything that was asked of it.
// It matches the errno with errors.Is.
type MountError struct {
	Source, Target, FSType string
	Flags                  uintptr
	Data                   string
	Err                    error
}

func (e *MountError) Error() string {
	var b strings.Builder
	b.WriteString("mount")
	if e.Source != "" {
		fmt.Fprintf(&b, " src=%s", e.Source)
	}
	fmt.Fprintf(&b, " dst=%s", e.Target)
	if e.FSType != "" {
		fmt.Fprintf(&b, " type=%s", e.FSType)
	}
	if e.Flags != 0 {
		fmt.Fprintf(&b, " flags=%s", FlagString(e.Flags))
	}
	if e.Data != "" {
		fmt.Fprintf(&b, " data=%s", e.Data)
	}
	fmt.Fprintf(&b, ": %v", e.Err)
	return b.String()
}

func (e *MountError) Unwrap() error { return e.Err }

var flagNames = []struct {
	flag uintptr
	name string
}{
	{unix.MS_RDONLY, "MS_RDONLY"}, {unix.MS_NOSUID, "MS_NOSUID"}, {unix.MS_NODEV, "MS_NODEV"},
	{unix.MS_NOEXEC, "MS_NOEXEC"}, {unix.MS_REMOUNT, "MS_REMOUNT"}, {unix.MS_BIND, "MS_BIND"},
	{unix.MS_REC, "MS_REC"}, {unix.MS_PRIVATE, "MS_PRIVATE"}, {unix.MS_SLAVE, "MS_SLAVE"},
	{unix.MS_NOATIME, "MS_NOATIME"}, {unix.MS_NODIRATIME, "MS_NODIRATIME"},
	{unix.MS_RELATIME, "MS_RELATIME"}, {unix.MS_STRICTATIME, "MS_STRICTATIME"},
}

// FlagString renders mount flags the way they are spelled in C.
func FlagString(f uintptr) string {
	var parts []string
	for _, n := range flagNames {
		if f&n.flag != 0 {
			parts = append(parts, n.name)
			f &^= n.flag
		}
	}
	if f != 0 {
		parts = append(parts, fmt.Sprintf("%#x", f))
	}
	return strings.Join(parts, "|")
}

// mount calls mount(2), retrying on EINTR, and names every argument on error.
// display is what the error shows as the target when target is a
// /proc/self/fd path that would mean nothing to the user.
func mount(source, target, display, fstype string, flags uintptr, data string) error {
	for {
		err := unix.Mount(source, target, fstype, flags, data)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			if display == "" {
				display = target
			}
			return &MountError{Source: source, Target: display, FSType: fstype, Flags: flags, Data: data, Err: err}
		}
		return nil
	}
}

// remountBind changes the flags of the bind mount fd is on. The flags the
// kernel locked on it (nosuid, nodev... of a mount made in a more
// privileged namespace) must be repeated, or the remount fails with EPERM.
func remountBind(fd int, display string, flags uintptr) error {
	p := fdPath(fd)
	locked, err := lockedFlags(p)
	if err != nil {
		return err
	}
	return mount("", p, display, "", unix.MS_BIND|unix.MS_REMOUNT|locked|flags, "")
}

// lockedFlags returns the flags of the mount holding path that a user
// namespace may not drop: a remount of a bind that leaves out any of them
// fails with EPERM (mount_namespaces(7), "locked mounts").
func lockedFlags(path string) (uintptr, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, &os.PathError{Op: "statfs", Path: path, Err: err}
	}
	var f uintptr
	for _, m := range []struct {
		st int64
		ms uintptr
	}{
		{unix.ST_RDONLY, unix.MS_RDONLY}, {unix.ST_NOSUID, unix.MS_NOSUID},
		{unix.ST_NODEV, unix.MS_NODEV}, {unix.ST_NOEXEC, unix.MS_NOEXEC},
		{unix.ST_NOATIME, unix.MS_NOATIME}, {unix.ST_NODIRATIME, unix.MS_NODIRATIME},
		{unix.ST_RELATIME, unix.MS_RELATIME},
	} {
		if st.Flags&m.st != 0 {
			f |= m.ms
		}
	}
	return f, nil
}
