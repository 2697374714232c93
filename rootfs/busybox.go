package rootfs

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// ErrBusyBoxNotFound means no BusyBox binary was given or found.
var ErrBusyBoxNotFound = errors.New("no busybox binary found")

// busyboxCandidates are where Debian's and most distributions' packages put
// a static BusyBox, searched when the user names none.
var busyboxCandidates = []string{"/bin/busybox", "/usr/bin/busybox", "/usr/lib/busybox/busybox-static", "/sbin/busybox"}

// BuildOptions says how to build a BusyBox rootfs.
type BuildOptions struct {
	Dir     string // where to build; created if missing
	BusyBox string // the binary to copy; found on the host when empty
	// Force allows a non-empty Dir. Entries that exist are left untouched.
	Force bool
}

// FindBusyBox returns a statically linked BusyBox on the host.
func FindBusyBox() (string, error) {
	var dynamic string
	for _, p := range busyboxCandidates {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			if err := checkStatic(p); err == nil {
				return p, nil
			}
			dynamic = p
		}
	}
	if dynamic != "" {
		return "", fmt.Errorf("%w: %s is dynamically linked", ErrBusyBoxNotFound, dynamic)
	}
	return "", ErrBusyBoxNotFound
}

// checkStatic refuses a dynamically linked binary: the rootfs would lack its
// interpreter and libraries and every applet would fail with "not found".
func checkStatic(p string) error {
	f, err := elf.Open(p)
	if err != nil {
		return fmt.Errorf("%s: not an ELF executable: %w", p, err)
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked (its libraries would be missing in the rootfs); use a static busybox", p)
		}
	}
	return nil
}

// Build makes the minimal root filesystem of the seed article: bin/busybox,
// a symlink for every applet it lists, the mount-point directories, and
// etc/passwd, etc/group and etc/hosts. On failure it removes what it created
// and nothing else.
func Build(o BuildOptions) (err error) {
	bb := o.BusyBox
	if bb == "" {
		if bb, err = FindBusyBox(); err != nil {
			return err
		}
	} else if err := checkStatic(bb); err != nil {
		return err
	}
	applets, err := listApplets(bb)
	if err != nil {
		return err
	}

	createdDir := false
	switch entries, err := os.ReadDir(o.Dir); {
	case errors.Is(err, os.ErrNotExist):
		if err := os.Mkdir(o.Dir, 0o755); err != nil {
			return err
		}
		createdDir = true
	case err != nil:
		return err
	case len(entries) > 0 && !o.Force:
		return fmt.Errorf("%s exists and is not empty (use --force to add to it)", o.Dir)
	}
	root, err := os.OpenRoot(o.Dir)
	if err != nil {
		return err
	}
	defer root.Close()

	b := &builder{root: root, force: o.Force}
	defer func() {
		if err != nil {
			b.undo()
			if createdDir {
				os.Remove(o.Dir)
			}
		}
	}()
	for _, d := range []struct {
		name string
		mode os.FileMode
	}{
		{"bin", 0o755}, {"sbin", 0o755}, {"usr", 0o755}, {"usr/bin", 0o755}, {"usr/sbin", 0o755},
		{"proc", 0o555}, {"sys", 0o555}, {"dev", 0o755}, {"etc", 0o755},
		{"tmp", 0o777 | os.ModeSticky}, {"root", 0o700}, {"var", 0o755}, {"run", 0o755},
	} {
		if err := b.mkdir(d.name, d.mode); err != nil {
			return err
		}
	}
	if err := b.copyFile(bb, "bin/busybox", 0o755); err != nil {
		return err
	}
	for _, a := range applets {
		if err := b.mkdirAll(path.Dir(a), 0o755); err != nil {
			return err
		}
		if err := b.symlink("/bin/busybox", a); err != nil {
			return err
		}
	}
	for name, text := range map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
		"etc/group":  "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n",
		"etc/hosts":  "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
		// A mount point for the resolver configuration of --net slirp, so
		// that running never has to add it to the rootfs.
		"etc/resolv.conf": "",
	} {
		if err := b.writeFile(name, text, 0o644); err != nil {
			return err
		}
	}
	return Mark(o.Dir, "busybox")
}

// listApplets asks the binary for its applets, as paths relative to the root.
func listApplets(bb string) ([]string, error) {
	var out, stderr bytes.Buffer
	cmd := exec.Command(bb, "--list-full")
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s --list-full: %v %s", bb, err, strings.TrimSpace(stderr.String()))
	}
	var applets []string
	for _, l := range strings.Split(out.String(), "\n") {
		l = strings.TrimSpace(l)
		// Never trust a listed name to stay below the root.
		if l == "" || l == "bin/busybox" || !filepath.IsLocal(l) {
			continue
		}
		applets = append(applets, path.Clean(l))
	}
	if len(applets) == 0 {
		return nil, fmt.Errorf("%s --list-full listed no applets", bb)
	}
	slices.Sort(applets)
	return applets, nil
}

// builder writes through an os.Root, which refuses any path that would leave
// the directory through a symlink or "..", and remembers what it created.
type builder struct {
	root    *os.Root
	force   bool
	created []string
}

func (b *builder) exists(name string) bool {
	_, err := b.root.Lstat(name)
	return err == nil
}

func (b *builder) mkdir(name string, mode os.FileMode) error {
	if b.exists(name) {
		return nil
	}
	if err := b.root.Mkdir(name, mode.Perm()); err != nil {
		return err
	}
	b.created = append(b.created, name)
	// Mkdir is subject to the umask; the modes above are meant exactly.
	return b.root.Chmod(name, mode)
}

func (b *builder) mkdirAll(name string, mode os.FileMode) error {
	if name == "." || b.exists(name) {
		return nil
	}
	if err := b.mkdirAll(path.Dir(name), mode); err != nil {
		return err
	}
	return b.mkdir(name, mode)
}

func (b *builder) symlink(target, name string) error {
	if b.exists(name) {
		return nil
	}
	if err := b.root.Symlink(target, name); err != nil {
		return err
	}
	b.created = append(b.created, name)
	return nil
}

func (b *builder) writeFile(name, text string, mode os.FileMode) error {
	if b.exists(name) {
		return nil
	}
	f, err := b.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	b.created = append(b.created, name)
	_, err = io.WriteString(f, text)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func (b *builder) copyFile(src, name string, mode os.FileMode) error {
	if b.exists(name) {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := b.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	b.created = append(b.created, name)
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return b.root.Chmod(name, mode)
}

// undo removes what this build created, newest first.
func (b *builder) undo() {
	for i := len(b.created) - 1; i >= 0; i-- {
		b.root.Remove(b.created[i])
	}
}
