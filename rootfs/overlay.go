package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
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
		base, err := scratchFor(root)
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
	for _, p := range []string{root, upper, work} {
		if strings.ContainsAny(p, ",:\\") {
			return fmt.Errorf("--overlay: %q: overlayfs cannot take a path with ',', ':' or '\\\\'", p)
		}
	}
	data := "lowerdir=" + root + ",upperdir=" + upper + ",workdir=" + work + ",userxattr"
	err := mount("overlay", root, "", "overlay", 0, data)
	if err != nil {
		return fmt.Errorf("%w (overlayfs in a user namespace needs Linux 5.11 or later, and an upper layer on a filesystem with user xattrs: tmpfs since Linux 6.6; isobox has no fuse-overlayfs fallback)", err)
	}
	return nil
}

func scratchFor(root string) (string, error) {
	for _, p := range scratchMounts {
		st, err := os.Stat(p)
		if err != nil || !st.IsDir() || root == p || strings.HasPrefix(root, p+"/") {
			continue
		}
		return p, nil
	}
	return "", fmt.Errorf("--overlay: none of %v can hold the throw-away layer", scratchMounts)
}
