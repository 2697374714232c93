package rootfs

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ExtractOptions says how to unpack a root filesystem archive.
type ExtractOptions struct {
	// Dir is the directory to fill, existing and empty.
	Dir string
	// Owners applies the archive's uids and gids (run as root of a user
	// namespace with the full mapping, they land on the caller and its
	// subordinate ids); without it every file is the caller's.
	Owners bool
	// Progress, when set, is told the compressed bytes read so far.
	Progress func(done int64)
	// Layer says the archive is an image layer, unpacked into a directory
	// of its own for overlayfs: its whiteouts (".wh.NAME") become
	// overlayfs's (a 0/0 character device, which a user namespace may make
	// since Linux 5.8) and ".wh..wh..opq" marks its directory opaque with
	// user.overlay.opaque, what a mount with "userxattr" reads.
	Layer bool
}

// ExtractStats counts what was unpacked and what was left out.
type ExtractStats struct {
	Entries, Bytes int64
	// Devices are device nodes, which a user namespace cannot create.
	Devices int
	// Xattrs are extended attributes the kernel refused (trusted.*, ...).
	Xattrs int
	// Unmapped are owners outside the mapping, left to the caller.
	Unmapped int
}

// EntryError is an archive entry refused as unsafe, named.
type EntryError struct {
	Name   string
	Reason string
}

func (e *EntryError) Error() string { return fmt.Sprintf("archive entry %q: %s", e.Name, e.Reason) }

// Decompress recognizes gzip, bzip2, xz and zstd by their magic numbers
// (so that stdin needs no name), or a plain tar. xz and zstd go through the
// host's xz and zstd: Go packages for them would run their package
// initialization in every isobox process, each container's start included,
// for the sake of the odd import. (Image layers are decoded in-process by
// rootfs/image/layer, which only isobox-image links.)
func Decompress(r io.Reader) (io.ReadCloser, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	head, err := br.Peek(6)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	switch {
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return gzip.NewReader(br)
	case bytes.HasPrefix(head, []byte("BZh")):
		return io.NopCloser(bzip2.NewReader(br)), nil
	case bytes.HasPrefix(head, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		return filter(br, "xz", "xz-utils")
	case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return filter(br, "zstd", "zstd")
	}
	return io.NopCloser(br), nil
}

// ErrDecompressorMissing: the archive needs a tool the host lacks.
var ErrDecompressorMissing = errors.New("decompressor not installed")

// filter decompresses through `tool -dc`; Close waits for it and reports
// its failure.
func filter(in io.Reader, tool, pkg string) (io.ReadCloser, error) {
	path, err := exec.LookPath(tool)
	if err != nil {
		return nil, fmt.Errorf("the archive is %s-compressed and %s is not installed (sudo apt-get install %s, or decompress it first): %w", tool, tool, pkg, ErrDecompressorMissing)
	}
	cmd := exec.Command(path, "-dc")
	cmd.Stdin = in
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &filterReader{ReadCloser: out, cmd: cmd, stderr: &stderr, tool: tool}, nil
}

type filterReader struct {
	io.ReadCloser
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	tool   string
}

func (f *filterReader) Read(p []byte) (int, error) {
	n, err := f.ReadCloser.Read(p)
	if errors.Is(err, io.EOF) {
		if werr := f.cmd.Wait(); werr != nil {
			return n, fmt.Errorf("%s: %s", f.tool, strings.TrimSpace(f.stderr.String()))
		}
	}
	return n, err
}

func (f *filterReader) Close() error {
	f.ReadCloser.Close()
	if f.cmd.ProcessState == nil {
		f.cmd.Process.Kill()
		f.cmd.Wait()
	}
	return nil
}

// countingReader tells Progress how far the input is.
type countingReader struct {
	r    io.Reader
	n    int64
	tell func(int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.tell != nil {
		c.tell(c.n)
	}
	return n, err
}

// Extract unpacks a tar archive (compressed or not) into o.Dir. Every
// entry is created through an os.Root opened on the directory, so no name
// and no symlink in the archive can lead outside it; names that are
// absolute or have a ".." component are refused outright, naming the
// entry, as are links whose target would be outside.
func Extract(r io.Reader, o ExtractOptions) (ExtractStats, error) {
	var st ExtractStats
	in := &countingReader{r: r, tell: o.Progress}
	plain, err := Decompress(in)
	if err != nil {
		return st, fmt.Errorf("read archive: %w", err)
	}
	defer plain.Close()
	root, err := os.OpenRoot(o.Dir)
	if err != nil {
		return st, err
	}
	defer root.Close()
	type dirTimes struct {
		name         string
		mode         fs.FileMode
		atime, mtime time.Time
	}
	var dirs []dirTimes
	tr := tar.NewReader(plain)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return st, fmt.Errorf("read archive: %w", err)
		}
		name, err := entryName(hdr.Name)
		if err != nil {
			return st, err
		}
		st.Entries++
		if o.Layer {
			if done, err := whiteout(root, name); done || err != nil {
				if err != nil {
					return st, &EntryError{name, err.Error()}
				}
				continue
			}
		}
		if name != "." {
			// A later entry for the same name replaces the earlier one, as
			// tar does; a directory stays (its contents may follow).
			if fi, err := root.Lstat(name); err == nil && !(fi.IsDir() && hdr.Typeflag == tar.TypeDir) {
				if err := root.RemoveAll(name); err != nil {
					return st, &EntryError{name, err.Error()}
				}
			}
			if err := root.MkdirAll(path.Dir(name), 0o755); err != nil {
				return st, &EntryError{name, err.Error()}
			}
		}
		mode := fs.FileMode(hdr.Mode).Perm() | modeBits(hdr.Mode)
		switch hdr.Typeflag {
		case tar.TypeDir:
			if name != "." {
				if err := root.Mkdir(name, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
					return st, &EntryError{name, err.Error()}
				}
			}
			dirs = append(dirs, dirTimes{name, mode, hdr.AccessTime, hdr.ModTime})
		case tar.TypeReg, tar.TypeRegA:
			f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return st, &EntryError{name, err.Error()}
			}
			n, err := io.Copy(f, tr)
			st.Bytes += n
			if err == nil {
				err = setXattrs(int(f.Fd()), hdr, &st)
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return st, &EntryError{name, err.Error()}
			}
		case tar.TypeSymlink:
			// The target is stored as written; it is only ever followed
			// inside the container's root or through os.Root here.
			if err := root.Symlink(hdr.Linkname, name); err != nil {
				return st, &EntryError{name, err.Error()}
			}
		case tar.TypeLink:
			target, err := entryName(hdr.Linkname)
			if err != nil {
				return st, &EntryError{name, "hard link to " + hdr.Linkname + ": outside the archive"}
			}
			if err := root.Link(target, name); err != nil {
				return st, &EntryError{name, err.Error()}
			}
		case tar.TypeFifo:
			if err := mkfifoIn(root, name); err != nil {
				return st, &EntryError{name, err.Error()}
			}
		case tar.TypeChar, tar.TypeBlock:
			st.Devices++ // mknod needs CAP_MKNOD in the initial namespace
			continue
		case tar.TypeXGlobalHeader:
			continue
		default:
			return st, &EntryError{name, fmt.Sprintf("unsupported type %q", hdr.Typeflag)}
		}
		if hdr.Typeflag == tar.TypeLink {
			continue // one inode: its owner, mode and times are the target's
		}
		if o.Owners {
			if err := root.Lchown(name, hdr.Uid, hdr.Gid); err != nil {
				if !errors.Is(err, unix.EINVAL) {
					return st, &EntryError{name, err.Error()}
				}
				st.Unmapped++ // an id the namespace does not map
			}
		}
		if hdr.Typeflag != tar.TypeSymlink && hdr.Typeflag != tar.TypeDir {
			// After chown, which clears setuid and setgid bits.
			if err := root.Chmod(name, mode); err != nil {
				return st, &EntryError{name, err.Error()}
			}
			if err := root.Chtimes(name, hdr.AccessTime, hdr.ModTime); err != nil {
				return st, &EntryError{name, err.Error()}
			}
		}
	}
	// Directories last, deepest first: a read-only one would refuse its
	// entries, and filling one changes its times.
	sort.SliceStable(dirs, func(i, j int) bool { return strings.Count(dirs[i].name, "/") > strings.Count(dirs[j].name, "/") })
	for _, d := range dirs {
		if err := root.Chmod(d.name, d.mode); err != nil {
			return st, &EntryError{d.name, err.Error()}
		}
		if err := root.Chtimes(d.name, d.atime, d.mtime); err != nil {
			return st, &EntryError{d.name, err.Error()}
		}
	}
	return st, nil
}

// entryName cleans an archive name ("./usr/bin/" is "usr/bin") and refuses
// an absolute one or one with a ".." component.
func entryName(n string) (string, error) {
	if strings.HasPrefix(n, "/") {
		return "", &EntryError{n, "absolute path"}
	}
	for _, c := range strings.Split(n, "/") {
		if c == ".." {
			return "", &EntryError{n, `".." component`}
		}
	}
	if strings.ContainsRune(n, 0) {
		return "", &EntryError{n, "NUL in name"}
	}
	c := path.Clean(n)
	if c == "" {
		c = "."
	}
	return c, nil
}

// OpaqueXattr marks an overlayfs directory opaque in a user namespace.
const OpaqueXattr = "user.overlay.opaque"

// whiteout turns a layer's whiteout entry into overlayfs's form, inside
// the root; done is false for an ordinary entry. name is already clean and
// inside the root: the whiteout's target is its sibling.
func whiteout(root *os.Root, name string) (done bool, err error) {
	dir, base := path.Dir(name), path.Base(name)
	if !strings.HasPrefix(base, ".wh.") {
		return false, nil
	}
	if err := root.MkdirAll(dir, 0o755); err != nil {
		return true, err
	}
	d, err := root.Open(dir)
	if err != nil {
		return true, err
	}
	defer d.Close()
	switch target := strings.TrimPrefix(base, ".wh."); {
	case base == ".wh..wh..opq":
		if err := unix.Fsetxattr(int(d.Fd()), OpaqueXattr, []byte("y"), 0); err != nil {
			return true, &os.PathError{Op: "setxattr " + OpaqueXattr, Path: dir, Err: err}
		}
		return true, nil
	case strings.HasPrefix(target, ".wh."):
		return true, nil // aufs's own bookkeeping (.wh..wh.plnk): nothing to show
	case target == "" || target == "." || target == "..":
		return true, errors.New("whiteout without a name")
	default:
		// The layer's own earlier entry of that name, if any, goes first.
		if err := root.RemoveAll(path.Join(dir, target)); err != nil {
			return true, err
		}
		if err := unix.Mknodat(int(d.Fd()), target, unix.S_IFCHR, 0); err != nil {
			return true, &os.PathError{Op: "mknod whiteout", Path: path.Join(dir, target), Err: err}
		}
		return true, nil
	}
}

// modeBits are the setuid, setgid and sticky bits of a tar mode.
func modeBits(m int64) fs.FileMode {
	var b fs.FileMode
	if m&0o4000 != 0 {
		b |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		b |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		b |= fs.ModeSticky
	}
	return b
}

// mkfifoIn makes a FIFO through its parent's descriptor inside the root.
func mkfifoIn(root *os.Root, name string) error {
	dir, err := root.Open(path.Dir(name))
	if err != nil {
		return err
	}
	defer dir.Close()
	return unix.Mkfifoat(int(dir.Fd()), path.Base(name), 0o600)
}

// setXattrs applies the archive's extended attributes to an open file; the
// ones the kernel refuses here (trusted.*, or security.* without the right)
// are counted, not fatal.
func setXattrs(fd int, hdr *tar.Header, st *ExtractStats) error {
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		if !ok {
			continue
		}
		if err := unix.Fsetxattr(fd, name, []byte(v), 0); err != nil {
			if errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EACCES) {
				st.Xattrs++
				continue
			}
			return fmt.Errorf("xattr %s: %w", name, err)
		}
	}
	return nil
}
