package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path"
	"slices"

	"golang.org/x/sys/unix"
)

// Spec says how to prepare a root filesystem.
type Spec struct {
	// Root is the host path of the rootfs directory, absolute and clean. The
	// user chose it and it is trusted; what is inside it is not.
	Root string
	// TTYGroup is set when gid 5 (tty) is mapped, so devpts can give new
	// terminals that group as Docker does; an unmapped gid makes the mount
	// fail with EINVAL.
	TTYGroup bool
	// Files are placed in the container's view (bound over the path, the
	// rootfs on disk untouched unless the path is missing): /etc/hosts and
	// /etc/resolv.conf for the container's network.
	Files []File
	// Mounts are the user's volumes and tmpfs mounts, in order.
	Mounts []Mount
	// Readonly mounts the rootfs read-only, with tmpfs on /run and /tmp.
	Readonly bool
	// Overlay, when set, puts a copy-on-write layer over the rootfs.
	Overlay *Overlay
	// MaskedPaths and ReadonlyPaths are hidden, or made read-only, in
	// addition to runc's defaults (an OCI bundle's own lists); paths
	// inside the container.
	MaskedPaths, ReadonlyPaths []string
	// Devices are bound from the host into the container's /dev (an OCI
	// bundle's linux.devices): a user namespace cannot make device nodes.
	Devices []Device
	// RootPropagation is set on the new / after pivot_root (an OCI
	// bundle's rootfsPropagation: MS_SHARED, MS_SLAVE... with MS_REC).
	RootPropagation uintptr
	// Cgroup mounts cgroup2 read-only at /sys/fs/cgroup: the container has
	// a cgroup of its own (limits), and a cgroup namespace rooted there.
	Cgroup bool
	// NoMqueue leaves /dev/mqueue unmounted: the IPC namespace is one the
	// container joined, owned by a user namespace it is not root of.
	NoMqueue bool
	// Trace, when set, is told each step's key as it begins (the debug
	// log that `run --explain` is checked against).
	Trace func(key string) `json:"-"`
}

// File is content to show at Path inside the container.
type File struct {
	Path    string
	Content string
}

// hostDevices are bound from the host's /dev: a user namespace may not
// create device nodes (mknod needs CAP_MKNOD in the initial namespace).
var hostDevices = []string{"null", "zero", "full", "random", "urandom", "tty"}

// Device is a device node the container asks for, found on the host at
// the same path with the same type and numbers.
type Device struct {
	Path  string `json:"path"` // absolute, under /dev
	Type  rune   `json:"type"` // 'c' or 'b'
	Major int64  `json:"major"`
	Minor int64  `json:"minor"`
}

// bindDevices binds each of s.Devices from the host, after checking that
// the host's node is the one asked for.
func bindDevices(r *root, s Spec) error {
	for _, d := range s.Devices {
		var st unix.Stat_t
		if err := unix.Stat(d.Path, &st); err != nil {
			return fmt.Errorf("device %s: %w (a user namespace cannot make device nodes: it can only be given the host's)", d.Path, err)
		}
		typ := map[uint32]rune{unix.S_IFCHR: 'c', unix.S_IFBLK: 'b'}[st.Mode&unix.S_IFMT]
		if typ != d.Type || int64(unix.Major(st.Rdev)) != d.Major || int64(unix.Minor(st.Rdev)) != d.Minor {
			return fmt.Errorf("device %s: the host's is %c %d:%d, not %c %d:%d", d.Path, typ, unix.Major(st.Rdev), unix.Minor(st.Rdev), d.Type, d.Major, d.Minor)
		}
		if err := unix.Access(d.Path, unix.R_OK|unix.W_OK); err != nil {
			return fmt.Errorf("device %s: %w: you may not open the host's, so the container could not either", d.Path, err)
		}
		if err := r.mkdirAll(path.Dir(d.Path), 0o755); err != nil {
			return err
		}
		if err := r.mountAt(d.Path, false, d.Path, "", unix.MS_BIND, ""); err != nil {
			return err
		}
	}
	return nil
}

// MaskedPaths are hidden from the container, as runc does by default: files
// get /dev/null bound over them, directories an empty read-only tmpfs.
var MaskedPaths = []string{
	"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
	"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
	"/sys/firmware", "/sys/devices/virtual/powercap",
}

// ReadonlyPaths are bound read-only, as runc does by default.
var ReadonlyPaths = []string{
	"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
}

// Prepare mounts the container's filesystems under s.Root and makes it the
// root of the calling process's mount namespace with pivot_root. It must run
// in a mount namespace of its own (see the package doc); on return the
// working directory is "/" of the new root.
func Prepare(s Spec) error {
	pivot, err := PrepareToPivot(s)
	if err != nil {
		return err
	}
	return pivot()
}

// PrepareToPivot is Prepare without the pivot_root: the caller pivots, once,
// with the function it returns, and until then keeps the host's files as
// its root (a helper run in this mount namespace meanwhile finds the host's
// programs, not the container's). The mounts stay in place on an error.
func PrepareToPivot(s Spec) (pivotRoot func() error, err error) {
	p := &preparer{s: s}
	for _, st := range steps {
		if st.applies != nil && !st.applies(s) {
			continue
		}
		if s.Trace != nil {
			s.Trace(st.key)
		}
		if err := st.run(p); err != nil {
			if p.r != nil {
				p.r.close()
			}
			return nil, err
		}
	}
	return func() error {
		defer p.r.close()
		if s.Trace != nil {
			s.Trace(pivotStep.key)
		}
		if err := pivot(p.r); err != nil || s.RootPropagation == 0 {
			return err
		}
		// Within the container's mount namespace only: the host's side
		// was made private first.
		return mount("", "/", "/", "", s.RootPropagation, "")
	}, nil
}

// mountAt mounts onto unsafePath, resolved inside the root and created if
// missing, through its descriptor.
func (r *root) mountAt(unsafePath string, dir bool, source, fstype string, flags uintptr, data string) error {
	fd, err := r.mountPoint(unsafePath, dir, 0o755)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return mount(source, fdPath(fd), r.display(unsafePath), fstype, flags, data)
}

func mountProc(r *root, _ Spec) error {
	err := r.mountAt("/proc", true, "proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		// Inside another container the host's masks over /proc make a new
		// proc mount fail (the kernel wants a fully visible proc first); a
		// recursive bind keeps the masks. It shows the outer PID namespace.
		return r.mountAt("/proc", true, "/proc", "", unix.MS_BIND|unix.MS_REC, "")
	}
	return err
}

// mountCgroup mounts the cgroup namespace's view of cgroup v2: the
// container's own cgroup and nothing above it.
func mountCgroup(r *root, _ Spec) error {
	const flags = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_RDONLY
	err := r.mountAt("/sys/fs/cgroup", true, "cgroup2", "cgroup2", flags, "")
	if !errors.Is(err, unix.EBUSY) {
		return err
	}
	// With the host's /sys bound (no network namespace of its own), the
	// mount point is the root of the host's cgroup2 mount, and the kernel
	// refuses a mount of the same superblock on a mount's own root: put a
	// small tmpfs between them (its own locked copy cannot be unmounted).
	if err := r.mountAt("/sys/fs/cgroup", true, "tmpfs", "tmpfs", flags&^unix.MS_RDONLY, "size=4k,mode=755"); err != nil {
		return err
	}
	return r.mountAt("/sys/fs/cgroup", true, "cgroup2", "cgroup2", flags, "")
}

func mountSys(r *root, _ Spec) error {
	const flags = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_RDONLY
	err := r.mountAt("/sys", true, "sysfs", "sysfs", flags, "")
	if !errors.Is(err, unix.EPERM) && !errors.Is(err, unix.EACCES) {
		return err
	}
	// sysfs needs a network namespace owned by our user namespace; without
	// one (--net host) bind the host's and make it read-only.
	if err := r.mountAt("/sys", true, "/sys", "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return err
	}
	// Read-only with the host's mounts under it, its cgroup hierarchies
	// among them (mount_setattr with AT_RECURSIVE, Linux 5.12+); an older
	// kernel gets the top one read-only.
	fd, err := r.open("/sys", unix.O_PATH)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
	err = unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &attr)
	if errors.Is(err, unix.ENOSYS) {
		return r.remountReadonly("/sys")
	}
	if err != nil {
		return fmt.Errorf("mount_setattr(MOUNT_ATTR_RDONLY, AT_RECURSIVE) %s: %w", r.display("/sys"), err)
	}
	return nil
}

func mountDev(r *root, s Spec) error {
	if err := r.mountAt("/dev", true, "tmpfs", "tmpfs", unix.MS_NOSUID|unix.MS_STRICTATIME, "mode=755,size=65536k"); err != nil {
		return err
	}
	// Everything below is created in the fresh tmpfs, which the rootfs
	// cannot have planted anything in.
	for _, name := range hostDevices {
		if err := r.mountAt("/dev/"+name, false, "/dev/"+name, "", unix.MS_BIND, ""); err != nil {
			return err
		}
	}
	ptsData := "newinstance,ptmxmode=0666,mode=0620"
	if s.TTYGroup {
		ptsData += ",gid=5"
	}
	// The sources are runc's (its spec's): the OCI suite matches them in
	// mountinfo.
	mounts := []struct {
		path, source, fstype string
		flags                uintptr
		data                 string
	}{
		{"/dev/pts", "devpts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, ptsData},
		{"/dev/shm", "shm", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, "mode=1777,size=65536k"},
		{"/dev/mqueue", "mqueue", "mqueue", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	}
	for _, m := range mounts {
		if m.fstype == "mqueue" && s.NoMqueue {
			continue
		}
		if err := r.mountAt(m.path, true, m.source, m.fstype, m.flags, m.data); err != nil {
			return err
		}
	}
	dev, err := r.open("/dev", unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return err
	}
	defer unix.Close(dev)
	for _, l := range [][2]string{
		{"pts/ptmx", "ptmx"}, {"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"},
		{"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"}, {"/proc/kcore", "core"},
	} {
		if err := unix.Symlinkat(l[0], dev, l[1]); err != nil {
			return &os.PathError{Op: "symlinkat", Path: r.display("/dev/" + l[1]), Err: err}
		}
	}
	return nil
}

// bindFiles writes each file on the container's fresh /dev tmpfs, binds it
// over its path and unlinks it there: the content lives only as long as the
// mount, and nothing is written on the host.
func bindFiles(r *root, s Spec) error {
	if len(s.Files) == 0 {
		return nil
	}
	dev, err := r.open("/dev", unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return err
	}
	defer unix.Close(dev)
	for _, f := range s.Files {
		if err := bindFile(r, dev, f); err != nil {
			return err
		}
	}
	return nil
}

func bindFile(r *root, dev int, f File) error {
	const scratch = ".isobox-file"
	fd, err := unix.Openat(dev, scratch, unix.O_CREAT|unix.O_EXCL|unix.O_RDWR|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return &os.PathError{Op: "openat", Path: r.display("/dev/" + scratch), Err: err}
	}
	defer unix.Close(fd)
	defer unix.Unlinkat(dev, scratch, 0)
	if _, err := unix.Write(fd, []byte(f.Content)); err != nil {
		return &os.PathError{Op: "write", Path: r.display("/dev/" + scratch), Err: err}
	}
	target, err := r.fileMountPoint(f.Path)
	if err != nil {
		return err
	}
	defer unix.Close(target)
	return mount(fdPath(fd), fdPath(target), r.display(f.Path), "", unix.MS_BIND, "")
}

// masked and readonly are runc's default lists and s's own.
func (s Spec) masked() []string   { return append(slices.Clip(MaskedPaths), s.MaskedPaths...) }
func (s Spec) readonly() []string { return append(slices.Clip(ReadonlyPaths), s.ReadonlyPaths...) }

func maskPaths(r *root, s Spec) error {
	for _, p := range s.masked() {
		fd, err := r.open(p, unix.O_PATH|unix.O_NOFOLLOW)
		if errors.Is(err, unix.ENOENT) {
			continue
		}
		if err != nil {
			return err
		}
		var st unix.Stat_t
		err = unix.Fstat(fd, &st)
		if err == nil {
			if st.Mode&unix.S_IFMT == unix.S_IFDIR {
				err = mount("tmpfs", fdPath(fd), r.display(p), "tmpfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "size=0")
			} else {
				err = mount("/dev/null", fdPath(fd), r.display(p), "", unix.MS_BIND, "")
			}
		}
		unix.Close(fd)
		if err != nil {
			return err
		}
	}
	for _, p := range s.readonly() {
		if err := r.remountReadonly(p); err != nil && !errors.Is(err, unix.ENOENT) {
			return err
		}
	}
	return nil
}

// remountReadonly binds unsafePath onto itself and makes the bind read-only,
// keeping the flags the kernel has locked on it.
func (r *root) remountReadonly(unsafePath string) error {
	fd, err := r.open(unsafePath, unix.O_PATH|unix.O_NOFOLLOW)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	p := fdPath(fd)
	if err := mount(p, p, r.display(unsafePath), "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return err
	}
	// Reopen: the old descriptor is under the new bind, not on it.
	fd2, err := r.open(unsafePath, unix.O_PATH|unix.O_NOFOLLOW)
	if err != nil {
		return err
	}
	defer unix.Close(fd2)
	return remountBind(fd2, r.display(unsafePath), unix.MS_RDONLY)
}

// pivot makes the root the process's "/" and detaches the old root. With
// pivot_root(".", ".") the old root is stacked under the new one and
// unmounted at once, so no put_old directory is needed (pivot_root(2)).
//
// The old root's mounts, this mount namespace's copies of the host's, are
// made read-only first, all of them. Detached, they stay alive as long as
// something holds a file on them, and init's own binary is such a file
// when init was exec'd by its path in this namespace: /proc/1/exe then
// leads to a read-only mount nobody can reach to remount (CVE-2019-5736).
// The host's own mounts are not touched: these are copies.
func pivot(r *root) error {
	old, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: "/", Err: err}
	}
	defer unix.Close(old)
	if err := unix.Fchdir(r.fd); err != nil {
		return &os.PathError{Op: "fchdir", Path: r.host, Err: err}
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return &os.PathError{Op: "pivot_root", Path: r.host, Err: err}
	}
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
	if err := unix.MountSetattr(old, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &attr); err != nil {
		return &os.PathError{Op: "mount_setattr read-only", Path: "old root", Err: err}
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return &os.PathError{Op: "umount2", Path: "old root", Err: err}
	}
	if err := unix.Chdir("/"); err != nil {
		return &os.PathError{Op: "chdir", Path: "/", Err: err}
	}
	return nil
}
