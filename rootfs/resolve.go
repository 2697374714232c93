package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// root is an open directory of a container's root filesystem. Every path
// given to its methods is an unsafePath: a path inside the rootfs that may
// cross symlinks planted by whoever made the rootfs. It is resolved by the
// kernel as if the rootfs were "/" (openat2 RESOLVE_IN_ROOT), never as a
// string joined onto the host path.
type root struct {
	fd   int
	host string // the host path, for messages only
}

func openRoot(hostPath string) (*root, error) {
	fd, err := unix.Open(hostPath, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: hostPath, Err: err}
	}
	return &root{fd: fd, host: hostPath}, nil
}

func (r *root) close() { unix.Close(r.fd) }

// open resolves unsafePath inside the root. Magic links (/proc/self/...)
// are refused: inside a rootfs they can only point somewhere else.
func (r *root) open(unsafePath string, flags uint64) (int, error) {
	how := unix.OpenHow{
		Flags:   flags | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	}
	rel := strings.TrimLeft(unsafePath, "/")
	if rel == "" {
		rel = "." // the root itself
	}
	for {
		fd, err := unix.Openat2(r.fd, rel, &how)
		if err == unix.EINTR || err == unix.EAGAIN {
			// EAGAIN: a rename raced the lookup; the kernel asks to retry.
			continue
		}
		if err != nil {
			return -1, &os.PathError{Op: "openat2", Path: r.display(unsafePath), Err: err}
		}
		return fd, nil
	}
}

func (r *root) display(unsafePath string) string {
	return path.Join(r.host, path.Clean("/"+unsafePath))
}

// fdPath is how mount(2) is pointed at an already resolved file.
func fdPath(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

// mountPoint opens unsafePath for mounting on, creating it (a directory when
// dir, else an empty file) when it is missing. Only the final component is
// looked at without following: a symlink there is refused, since a mount
// point that is a symlink is how rootfs authors try to move a mount elsewhere
// (CVE-2023-27561 for /proc).
func (r *root) mountPoint(unsafePath string, dir bool, mode uint32) (int, error) {
	clean := path.Clean("/" + unsafePath)
	fd, err := r.open(clean, unix.O_PATH|unix.O_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) {
		if err := r.create(clean, dir, mode); err != nil {
			return -1, err
		}
		fd, err = r.open(clean, unix.O_PATH|unix.O_NOFOLLOW)
	}
	if err != nil {
		return -1, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, &os.PathError{Op: "fstat", Path: r.display(clean), Err: err}
	}
	isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
	switch {
	case st.Mode&unix.S_IFMT == unix.S_IFLNK:
		err = fmt.Errorf("%s is a symlink: isobox mounts only on a real %s", clean, kind(dir))
	case dir && !isDir:
		err = fmt.Errorf("%s is not a directory", clean)
	case !dir && isDir:
		err = fmt.Errorf("%s is a directory, want a file", clean)
	}
	if err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("rootfs %s: %w", r.host, err)
	}
	return fd, nil
}

// destination opens a mount target inside the root (a volume's, or a file
// isobox binds over), following symlinks in every component, inside the
// root (an /etc/resolv.conf that links to ../run/... is usual). When it is
// missing it is created, a directory or an empty file, with its parents;
// mkdirat and O_CREAT|O_EXCL never write through a link, so a dangling
// one is refused instead.
func (r *root) destination(unsafePath string, dir bool) (int, error) {
	clean := path.Clean("/" + unsafePath)
	fd, err := r.open(clean, unix.O_PATH)
	if errors.Is(err, unix.ENOENT) {
		if err := r.mkdirAll(path.Dir(clean), 0o755); err != nil {
			return -1, err
		}
		mode := uint32(0o644)
		if dir {
			mode = 0o755
		}
		if err := r.create(clean, dir, mode); err != nil {
			return -1, err
		}
		fd, err = r.open(clean, unix.O_PATH)
		if errors.Is(err, unix.ENOENT) {
			// Still missing after creating it: a dangling symlink is in
			// the way.
			return -1, fmt.Errorf("rootfs %s: %s is a symlink to a path the rootfs lacks", r.host, clean)
		}
	}
	if err != nil {
		return -1, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, &os.PathError{Op: "fstat", Path: r.display(clean), Err: err}
	}
	if isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR; isDir != dir {
		unix.Close(fd)
		return -1, fmt.Errorf("rootfs %s: %s is a %s, want a %s", r.host, clean, kind(isDir), kind(dir))
	}
	return fd, nil
}

// fileMountPoint is the regular file at unsafePath to bind a file of
// isobox's over (/etc/hosts, /etc/resolv.conf), made if missing.
func (r *root) fileMountPoint(unsafePath string) (int, error) {
	fd, err := r.destination(unsafePath, false)
	if err != nil {
		return -1, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return -1, fmt.Errorf("rootfs %s: %s is not a regular file", r.host, path.Clean("/"+unsafePath))
	}
	return fd, nil
}

func kind(dir bool) string {
	if dir {
		return "directory"
	}
	return "file"
}

// mkdirAll creates the missing directories of unsafePath inside the root.
func (r *root) mkdirAll(unsafePath string, mode uint32) error {
	clean := path.Clean("/" + unsafePath)
	if clean == "/" {
		return nil
	}
	fd, err := r.open(clean, unix.O_PATH|unix.O_DIRECTORY)
	if err == nil {
		unix.Close(fd)
		return nil
	}
	if !errors.Is(err, unix.ENOENT) {
		return err
	}
	if err := r.mkdirAll(path.Dir(clean), mode); err != nil {
		return err
	}
	return r.create(clean, true, mode)
}

// create makes the last component of clean in its resolved parent. mkdirat
// and O_CREAT|O_EXCL never follow a symlink in the last component, so a link
// planted there makes this fail with EEXIST instead of writing through it.
func (r *root) create(clean string, dir bool, mode uint32) error {
	parent, err := r.open(path.Dir(clean), unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return fmt.Errorf("rootfs lacks %s and it cannot be created: %w", clean, err)
	}
	defer unix.Close(parent)
	name := path.Base(clean)
	if dir {
		err = unix.Mkdirat(parent, name, mode)
	} else {
		var fd int
		fd, err = unix.Openat(parent, name, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, mode)
		if err == nil {
			unix.Close(fd)
		}
	}
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("rootfs lacks %s and it cannot be created: %w", clean,
			&os.PathError{Op: "mkdirat", Path: r.display(clean), Err: err})
	}
	return nil
}
