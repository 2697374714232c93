package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Mount is a volume (-v) or a tmpfs (--tmpfs) to mount in the container.
type Mount struct {
	// Source is the host path of a bind, absolute; empty for a tmpfs.
	Source string `json:"source,omitempty"`
	// Dest is the path inside the container, absolute and clean; it is
	// resolved inside the rootfs, symlinks included, as if it were /.
	Dest     string `json:"dest"`
	Readonly bool   `json:"readonly,omitempty"`
	// Flags are the other mount flags asked for (nosuid, nodev, noexec).
	Flags uintptr `json:"flags,omitempty"`
	// Data are a tmpfs's options (size=, mode=).
	Data string `json:"data,omitempty"`
	// Propagation is set on the mount once made (MS_SHARED, MS_SLAVE,
	// MS_PRIVATE or MS_UNBINDABLE, with MS_REC for the r- forms): within
	// the container's mount namespace only, whose root is private.
	Propagation uintptr `json:"propagation,omitempty"`
}

// Tmpfs reports whether m is a tmpfs.
func (m Mount) Tmpfs() bool { return m.Source == "" }

// ParseVolume reads -v SRC:DST[:OPTS] (OPTS: ro, rw, nosuid, nodev,
// noexec). A relative SRC is taken from cwd. SRC must exist; nothing is
// created for it.
func ParseVolume(spec, cwd string) (Mount, error) {
	parts := strings.Split(spec, ":")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return Mount{}, fmt.Errorf("--volume %q: want SRC:DST[:OPTS]", spec)
	}
	src := parts[0]
	if !filepath.IsAbs(src) {
		src = filepath.Join(cwd, src)
	}
	src = filepath.Clean(src)
	if _, err := os.Stat(src); err != nil {
		return Mount{}, fmt.Errorf("--volume %q: source: %w", spec, err)
	}
	dest, err := checkDest(parts[1])
	if err != nil {
		return Mount{}, fmt.Errorf("--volume %q: %w", spec, err)
	}
	m := Mount{Source: src, Dest: dest}
	if len(parts) == 3 {
		seen := map[string]bool{}
		for _, o := range strings.Split(parts[2], ",") {
			if seen[o] {
				return Mount{}, fmt.Errorf("--volume %q: option %q given twice", spec, o)
			}
			seen[o] = true
			if err := m.Option(o); err != nil {
				return Mount{}, fmt.Errorf("--volume %q: %w", spec, err)
			}
		}
		if seen["ro"] && seen["rw"] {
			return Mount{}, fmt.Errorf("--volume %q: ro and rw together", spec)
		}
	}
	return m, nil
}

// Option applies one of ro, rw, nosuid, nodev, noexec.
func (m *Mount) Option(o string) error {
	switch o {
	case "ro":
		m.Readonly = true
	case "rw":
		m.Readonly = false
	case "nosuid":
		m.Flags |= unix.MS_NOSUID
	case "nodev":
		m.Flags |= unix.MS_NODEV
	case "noexec":
		m.Flags |= unix.MS_NOEXEC
	default:
		return fmt.Errorf("unknown option %q (want ro, rw, nosuid, nodev, noexec)", o)
	}
	return nil
}

// ParseTmpfs reads --tmpfs DST[:OPTS] (OPTS: size=BYTES[k|m|g],
// mode=OCTAL, ro, rw, nosuid, nodev, noexec). A tmpfs is always nosuid and
// nodev, as Docker's is.
func ParseTmpfs(spec string) (Mount, error) {
	destSpec, opts, _ := strings.Cut(spec, ":")
	dest, err := checkDest(destSpec)
	if err != nil {
		return Mount{}, fmt.Errorf("--tmpfs %q: %w", spec, err)
	}
	m := Mount{Dest: dest, Flags: unix.MS_NOSUID | unix.MS_NODEV}
	var data []string
	if opts != "" {
		for _, o := range strings.Split(opts, ",") {
			k, v, hasVal := strings.Cut(o, "=")
			switch {
			case k == "size" && hasVal:
				if !validSize(v) {
					return Mount{}, fmt.Errorf("--tmpfs %q: size %q: want bytes with k, m or g, or a percentage", spec, v)
				}
				data = append(data, "size="+v)
			case k == "mode" && hasVal:
				n, err := strconv.ParseUint(v, 8, 32)
				if err != nil || n > 0o7777 {
					return Mount{}, fmt.Errorf("--tmpfs %q: mode %q: want octal, at most 7777", spec, v)
				}
				data = append(data, "mode="+strconv.FormatUint(n, 8))
			case !hasVal:
				if err := m.Option(k); err != nil {
					return Mount{}, fmt.Errorf("--tmpfs %q: %w", spec, err)
				}
			default:
				return Mount{}, fmt.Errorf("--tmpfs %q: unknown option %q (want size=, mode=, ro, rw, noexec)", spec, o)
			}
		}
	}
	m.Data = strings.Join(data, ",")
	return m, nil
}

func validSize(v string) bool {
	if strings.HasSuffix(v, "%") {
		n, err := strconv.ParseUint(strings.TrimSuffix(v, "%"), 10, 8)
		return err == nil && n > 0 && n <= 100
	}
	num := strings.TrimRight(v, "kKmMgG")
	if len(v)-len(num) > 1 {
		return false
	}
	n, err := strconv.ParseUint(num, 10, 63)
	return err == nil && n > 0
}

// checkDest refuses, by the text alone and before any symlink is followed,
// a destination that is not absolute, is the root, or is under /proc,
// where a bind could cover a mask or redirect the runtime's own view
// (runc refuses /proc the same way).
func checkDest(d string) (string, error) {
	if !path.IsAbs(d) {
		return "", fmt.Errorf("destination %q: must be an absolute path", d)
	}
	c := path.Clean(d)
	switch {
	case c == "/":
		return "", errors.New("destination /: the rootfs itself cannot be covered")
	case c == "/proc" || strings.HasPrefix(c, "/proc/"):
		return "", fmt.Errorf("destination %s: nothing may be mounted on /proc", c)
	}
	return c, nil
}

// userMounts mounts the volumes and tmpfs mounts in order. Each
// destination is resolved inside the root (openat2 RESOLVE_IN_ROOT: a
// symlink on the way, absolute, relative, to / or to .., stays inside) and
// mounted on through its descriptor, so swapping a directory for a symlink
// meanwhile changes nothing (CVE-2021-30465).
func userMounts(r *root, s Spec) error {
	for _, m := range s.Mounts {
		if err := userMount(r, m); err != nil {
			return err
		}
	}
	return nil
}

// mountFlags are m's flags for mount(2): Flags, and MS_RDONLY for ro.
func (m Mount) mountFlags() uintptr {
	if m.Readonly {
		return m.Flags | unix.MS_RDONLY
	}
	return m.Flags
}

func userMount(r *root, m Mount) error {
	if err := mountOne(r, m); err != nil || m.Propagation == 0 {
		return err
	}
	top, err := r.open(m.Dest, unix.O_PATH)
	if err != nil {
		return err
	}
	defer unix.Close(top)
	return mount("", fdPath(top), r.display(m.Dest), "", m.Propagation, "")
}

func mountOne(r *root, m Mount) error {
	if m.Tmpfs() {
		fd, err := r.destination(m.Dest, true)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return mount("tmpfs", fdPath(fd), r.display(m.Dest), "tmpfs", m.mountFlags(), m.Data)
	}
	// The source is the user's host path, trusted and followed; it is
	// opened once and bound from its descriptor.
	src, err := unix.Open(m.Source, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open volume source", Path: m.Source, Err: err}
	}
	defer unix.Close(src)
	var st unix.Stat_t
	if err := unix.Fstat(src, &st); err != nil {
		return &os.PathError{Op: "fstat", Path: m.Source, Err: err}
	}
	dst, err := r.destination(m.Dest, st.Mode&unix.S_IFMT == unix.S_IFDIR)
	if err != nil {
		return err
	}
	defer unix.Close(dst)
	if err := mount(fdPath(src), fdPath(dst), r.display(m.Dest), "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return err
	}
	flags := m.mountFlags()
	if flags == 0 {
		return nil
	}
	// Flags of a bind are set by remounting it. Reopened: the old
	// descriptor is under the bind, not on it.
	top, err := r.open(m.Dest, unix.O_PATH)
	if err != nil {
		return err
	}
	defer unix.Close(top)
	if err := remountBind(top, r.display(m.Dest), flags); err != nil {
		return err
	}
	if m.Readonly {
		// Mounts under the source stay read-only too (mount_setattr with
		// AT_RECURSIVE, Linux 5.12+; older kernels keep them as they are).
		attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
		if err := unix.MountSetattr(top, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &attr); err != nil && !errors.Is(err, unix.ENOSYS) {
			return fmt.Errorf("mount_setattr(MOUNT_ATTR_RDONLY, AT_RECURSIVE) %s: %w", r.display(m.Dest), err)
		}
	}
	return nil
}

// readonlyScratch are writable tmpfs mounts a read-only root gets where
// programs expect to write, unless the user mounted something there
// (/dev and /dev/shm are tmpfs already).
var readonlyScratch = []string{"/run", "/tmp"}

func readonlyDefaults(r *root, s Spec) error {
	if !s.Readonly {
		return nil
	}
next:
	for _, p := range readonlyScratch {
		for _, m := range s.Mounts {
			if m.Dest == p {
				continue next
			}
		}
		fd, err := r.destination(p, true)
		if err != nil {
			return err
		}
		err = mount("tmpfs", fdPath(fd), r.display(p), "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1777")
		unix.Close(fd)
		if err != nil {
			return err
		}
	}
	return nil
}

// remountRootReadonly makes the root's own mount read-only (--read-only);
// the mounts on it keep their own flags.
func remountRootReadonly(r *root, s Spec) error {
	if !s.Readonly {
		return nil
	}
	return remountBind(r.fd, r.display("/"), unix.MS_RDONLY)
}
