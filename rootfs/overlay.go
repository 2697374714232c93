package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Overlay is --overlay: the container writes to an upper layer over the
// rootfs, which stays as it is on disk, so any number of containers can
// share it.
type Overlay struct {
	// Dir keeps the upper layer (DIR/upper, DIR/work) on the host for later
	// inspection; empty for a tmpfs that is gone when the container exits.
	Dir string `json:"dir,omitempty"`
	// Lower are more read-only layers under the rootfs, topmost first: an
	// image's layers, the rootfs being its top one.
	Lower []string `json:"lower,omitempty"`
}

// scratchMounts are where the throw-away layer's tmpfs can go in the
// container's own mount namespace before pivot_root (never seen by the
// host): the first that exists and does not hold the rootfs.
var scratchMounts = []string{"/dev/shm", "/tmp", "/run", "/mnt"}

// mountOverlay mounts overlayfs over root in this (the container's) mount
// namespace: lower the rootfs, upper and work on a fresh tmpfs or in
// o.Dir. "userxattr" keeps overlay's own bookkeeping in user.* xattrs,
// which is what an unprivileged user namespace may write (Linux 5.11+).
func mountOverlay(root string, o Overlay) error {
	upperBase := o.Dir
	if upperBase == "" {
		base, err := scratchFor(append([]string{root}, o.Lower...))
		if err != nil {
			return err
		}
		if err := mount("tmpfs", base, "", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=700"); err != nil {
			return err
		}
		upperBase = base
	}
	upper, work := filepath.Join(upperBase, "upper"), filepath.Join(upperBase, "work")
	for _, d := range []string{upper, work} {
		if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("--overlay: %w", err)
		}
	}
	lower := append([]string{root}, o.Lower...)
	for _, p := range append([]string{upper, work}, lower...) {
		if strings.ContainsAny(p, ",:\\") {
			return fmt.Errorf("--overlay: %q: overlayfs cannot take a path with ',', ':' or '\\\\'", p)
		}
	}
	data := overlayData(lower, upper, work)
	var err error
	if len(data) < maxMountData {
		err = mount("overlay", root, "", "overlay", 0, data)
	} else if err = mountOverlayLayers(root, lower, upper, work); errors.Is(err, errNoLowerdirPlus) {
		err = mountOverlayByFD(root, lower, upper, work)
	}
	if err != nil {
		return fmt.Errorf("%w (overlayfs in a user namespace needs Linux 5.11 or later, and an upper layer on a filesystem with user xattrs: tmpfs since Linux 6.6; isobox has no fuse-overlayfs fallback)", err)
	}
	return nil
}

// maxMountData is what mount(2) copies of its option string: one page,
// about 60 layers with a store's paths. Past it, the layers go one by one.
const maxMountData = 4096

// MaxLayers is overlayfs's limit on lower layers (FILESYSTEM_MAX_STACK_DEPTH
// aside, OVL_MAX_STACK in fs/overlayfs).
const MaxLayers = 500

func overlayData(lower []string, upper, work string) string {
	return "lowerdir=" + strings.Join(lower, ":") + ",upperdir=" + upper + ",workdir=" + work + ",userxattr"
}

// errNoLowerdirPlus: the kernel is older than Linux 6.8.
var errNoLowerdirPlus = errors.New(`this kernel has no "lowerdir+" (Linux 6.8+)`)

// mountOverlayByFD is the way before Linux 6.8 for layers whose paths
// exceed a page: each layer named by a descriptor of this process,
// /proc/self/fd/N, 17 bytes whatever the store's path (about 200 layers in
// a page; containers/storage makes short symlinks in its store for the same
// reason). overlayfs resolves them when it mounts, and keeps no reference
// to the descriptors.
func mountOverlayByFD(root string, lower []string, upper, work string) error {
	short := make([]string, 0, len(lower))
	for _, l := range lower {
		fd, err := unix.Open(l, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return &os.PathError{Op: "open", Path: l, Err: err}
		}
		defer unix.Close(fd)
		short = append(short, "/proc/self/fd/"+strconv.Itoa(fd))
	}
	data := overlayData(short, upper, work)
	if len(data) >= maxMountData {
		return fmt.Errorf("overlay of %d layers: more than one page of mount options even by descriptor, and %w", len(lower), errNoLowerdirPlus)
	}
	return mount("overlay", root, "", "overlay", 0, data)
}

// mountOverlayLayers mounts overlayfs with the new mount API, one
// "lowerdir+" call a layer (Linux 6.8+), so the number of layers is bounded
// by overlayfs's own limit, not by a page of options.
func mountOverlayLayers(root string, lower []string, upper, work string) error {
	if len(lower) > MaxLayers {
		return fmt.Errorf("overlay of %d layers: overlayfs stacks at most %d", len(lower), MaxLayers)
	}
	fsfd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return &os.PathError{Op: "fsopen", Path: "overlay", Err: err}
	}
	defer unix.Close(fsfd)
	set := func(key, val string) error {
		if err := unix.FsconfigSetString(fsfd, key, val); err != nil {
			if errors.Is(err, unix.EINVAL) && key == "lowerdir+" {
				return errNoLowerdirPlus
			}
			return &os.PathError{Op: "fsconfig " + key, Path: val, Err: err}
		}
		return nil
	}
	for _, l := range lower {
		if err := set("lowerdir+", l); err != nil {
			return err
		}
	}
	if err := set("upperdir", upper); err != nil {
		return err
	}
	if err := set("workdir", work); err != nil {
		return err
	}
	if err := unix.FsconfigSetFlag(fsfd, "userxattr"); err != nil {
		return &os.PathError{Op: "fsconfig userxattr", Path: "overlay", Err: err}
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return &os.PathError{Op: "fsconfig create", Path: "overlay", Err: err}
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "fsmount", Path: "overlay", Err: err}
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, root, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return &os.PathError{Op: "move_mount", Path: root, Err: err}
	}
	return nil
}

// scratchFor picks the first of scratchMounts that holds none of layers.
func scratchFor(layers []string) (string, error) {
next:
	for _, p := range scratchMounts {
		st, err := os.Stat(p)
		if err != nil || !st.IsDir() {
			continue
		}
		for _, l := range layers {
			if l == p || strings.HasPrefix(l, p+"/") {
				continue next
			}
		}
		return p, nil
	}
	return "", fmt.Errorf("--overlay: none of %v can hold the throw-away layer", scratchMounts)
}
