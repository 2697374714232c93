package tests

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
	"golang.org/x/sys/unix"
)

// entry is one member of a test archive.
type entry struct {
	hdr  tar.Header
	body string
}

func archive(t *testing.T, entries []entry) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range entries {
		h := e.hdr
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if h.ModTime.IsZero() {
			h.ModTime = time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
		}
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if e.body != "" {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	return b.Bytes()
}

func compress(t *testing.T, kind string, plain []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	var w io.WriteCloser
	var err error
	switch kind {
	case "tar":
		return plain
	case "gz":
		w = gzip.NewWriter(&b)
	case "xz":
		w, err = xz.NewWriter(&b)
	case "zst":
		w, err = zstd.NewWriter(&b)
	}
	if err != nil {
		t.Fatal(err)
	}
	w.Write(plain)
	w.Close()
	return b.Bytes()
}

// rootfsArchive is a small rootfs as `docker export` would give it.
func rootfsArchive(t *testing.T) []byte {
	return archive(t, []entry{
		{hdr: tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755}},
		{hdr: tar.Header{Name: "./bin/", Typeflag: tar.TypeDir, Mode: 0o755}},
		{hdr: tar.Header{Name: "./bin/tool", Typeflag: tar.TypeReg, Mode: 0o4755}, body: "#!/bin/sh\n"},
		{hdr: tar.Header{Name: "./bin/sh", Typeflag: tar.TypeSymlink, Linkname: "/bin/busybox"}},
		{hdr: tar.Header{Name: "./etc/", Typeflag: tar.TypeDir, Mode: 0o755}},
		{hdr: tar.Header{Name: "./etc/hello", Typeflag: tar.TypeReg, Mode: 0o640, Gid: 42,
			PAXRecords: map[string]string{"SCHILY.xattr.user.isobox-test": "kept"}}, body: "hello\n"},
		{hdr: tar.Header{Name: "./etc/hello-link", Typeflag: tar.TypeLink, Linkname: "./etc/hello"}},
		{hdr: tar.Header{Name: "./home/user/", Typeflag: tar.TypeDir, Mode: 0o751, Uid: 1000, Gid: 1000}},
		{hdr: tar.Header{Name: "./home/user/notes", Typeflag: tar.TypeReg, Mode: 0o600, Uid: 1000, Gid: 1000}, body: "mine\n"},
		{hdr: tar.Header{Name: "./run/fifo", Typeflag: tar.TypeFifo, Mode: 0o600}},
		{hdr: tar.Header{Name: "./dev/null", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3}},
		{hdr: tar.Header{Name: "./readonly/", Typeflag: tar.TypeDir, Mode: 0o555}},
		{hdr: tar.Header{Name: "./readonly/inside", Typeflag: tar.TypeReg, Mode: 0o444}, body: "x"},
	})
}

func TestRootfsImportMapsOwnersAndKeepsModesLinksAndTimes(t *testing.T) {
	requireSubIDs(t)
	for _, kind := range []string{"tar", "gz", "xz", "zst"} {
		t.Run(kind, func(t *testing.T) {
			src := filepath.Join(userDir(tester, "archive"), "rootfs."+kind)
			if err := os.WriteFile(src, compress(t, kind, rootfsArchive(t)), 0o644); err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(userDir(tester, "import"), "root")
			r := isobox(t, "rootfs", "import", src, dir)
			if r.code != 0 {
				t.Fatal(r)
			}
			if !strings.Contains(r.stderr, "1 device nodes left out") {
				t.Errorf("no word about the device node: %q", r.stderr)
			}
			sub := tester.subStart
			for p, want := range map[string]struct {
				uid, gid uint32
				mode     uint32
			}{
				".":               {tester.uid, tester.gid, 0o755 | syscall.S_IFDIR},
				"bin/tool":        {tester.uid, tester.gid, 0o4755 | syscall.S_IFREG},
				"etc/hello":       {tester.uid, sub + 41, 0o640 | syscall.S_IFREG},
				"home/user":       {sub + 999, sub + 999, 0o751 | syscall.S_IFDIR},
				"home/user/notes": {sub + 999, sub + 999, 0o600 | syscall.S_IFREG},
				"run/fifo":        {tester.uid, tester.gid, 0o600 | syscall.S_IFIFO},
				"readonly":        {tester.uid, tester.gid, 0o555 | syscall.S_IFDIR},
			} {
				st := statT(t, filepath.Join(dir, p))
				if st.Uid != want.uid || st.Gid != want.gid || st.Mode != want.mode {
					t.Errorf("%s: uid %d gid %d mode %o; want %d %d %o", p, st.Uid, st.Gid, st.Mode, want.uid, want.gid, want.mode)
				}
				if p == "etc/hello" && time.Unix(st.Mtim.Unix()).UTC().Year() != 2001 {
					t.Errorf("%s: mtime %v, want the archive's", p, time.Unix(st.Mtim.Unix()))
				}
			}
			if st := statT(t, filepath.Join(dir, "etc")); time.Unix(st.Mtim.Unix()).UTC().Year() != 2001 {
				t.Errorf("etc: mtime %v, want the archive's (directories are dated last)", time.Unix(st.Mtim.Unix()))
			}
			if l, _ := os.Readlink(filepath.Join(dir, "bin/sh")); l != "/bin/busybox" {
				t.Errorf("symlink: %q", l)
			}
			if a, b := statT(t, filepath.Join(dir, "etc/hello")), statT(t, filepath.Join(dir, "etc/hello-link")); a.Ino != b.Ino {
				t.Error("hard link is a copy")
			}
			if _, err := os.Lstat(filepath.Join(dir, "dev/null")); err == nil {
				t.Error("a device node was made")
			}
			buf := make([]byte, 16)
			if n, err := unix.Lgetxattr(filepath.Join(dir, "etc/hello"), "user.isobox-test", buf); err != nil || string(buf[:n]) != "kept" {
				t.Errorf("xattr: %q, %v", buf[:n], err)
			}
			if r := isobox(t, "rootfs", "rm", dir); r.code != 0 {
				t.Fatalf("rootfs rm: %s", r)
			}
			if _, err := os.Lstat(dir); err == nil {
				t.Error("rootfs rm left the directory")
			}
		})
	}
}

func TestRootfsImportFromStdinWithProgressOnATerminal(t *testing.T) {
	dir := filepath.Join(userDir(tester, "import"), "root")
	p := openTestPTY(t)
	cmd := command(tester, nil, binary, "rootfs", "import", "-", dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = p.slave, p.slave
	var out bytes.Buffer
	done := make(chan struct{})
	go func() { io.Copy(&out, p.master); close(done) }()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// A slow producer: the archive takes more than a moment to arrive.
	data := compress(t, "gz", rootfsArchive(t))
	for i := 0; i < len(data); i += 64 {
		stdin.Write(data[i:min(i+64, len(data))])
		time.Sleep(time.Duration(1500/(len(data)/64+1)) * time.Millisecond)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("import -: %v", err)
	}
	p.slave.Close()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
	if !strings.Contains(out.String(), "MiB read") || !strings.Contains(out.String(), "MiB/s") {
		t.Errorf("no progress on the terminal: %q", out.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "etc/hello")); err != nil {
		t.Error(err)
	}
}

// Archives that try to write outside the directory are refused, naming
// the entry, and leave nothing behind, inside or out.
func TestRootfsImportRefusesEntriesThatLeaveTheDirectory(t *testing.T) {
	victim := userDir(tester, "victim")
	for name, entries := range map[string][]entry{
		"dotdot":   {{hdr: tar.Header{Name: "ok", Typeflag: tar.TypeReg, Mode: 0o644}, body: "x"}, {hdr: tar.Header{Name: "../escape", Typeflag: tar.TypeReg, Mode: 0o644}, body: "x"}},
		"absolute": {{hdr: tar.Header{Name: victim + "/abs", Typeflag: tar.TypeReg, Mode: 0o644}, body: "x"}},
		"inner dotdot": {{hdr: tar.Header{Name: "a/", Typeflag: tar.TypeDir, Mode: 0o755}},
			{hdr: tar.Header{Name: "a/../../escape", Typeflag: tar.TypeReg, Mode: 0o644}, body: "x"}},
		"through symlink": {{hdr: tar.Header{Name: "link", Typeflag: tar.TypeSymlink, Linkname: victim}},
			{hdr: tar.Header{Name: "link/planted", Typeflag: tar.TypeReg, Mode: 0o644}, body: "x"}},
		"through relative symlink": {{hdr: tar.Header{Name: "up", Typeflag: tar.TypeSymlink, Linkname: "../../../../../../../.." + victim}},
			{hdr: tar.Header{Name: "up/planted", Typeflag: tar.TypeReg, Mode: 0o644}, body: "x"}},
		"hard link out": {{hdr: tar.Header{Name: "h", Typeflag: tar.TypeLink, Linkname: "../../etc/passwd"}}},
		"symlinked dir then dir": {{hdr: tar.Header{Name: "d", Typeflag: tar.TypeSymlink, Linkname: "/"}},
			{hdr: tar.Header{Name: "d/tmp/planted/", Typeflag: tar.TypeDir, Mode: 0o755}}},
	} {
		t.Run(name, func(t *testing.T) {
			parent := userDir(tester, "import")
			src := filepath.Join(parent, "evil.tar")
			os.WriteFile(src, archive(t, entries), 0o644)
			dir := filepath.Join(parent, "root")
			r := isobox(t, "rootfs", "import", src, dir)
			if r.code != 125 || !strings.Contains(r.stderr, "archive entry") {
				t.Fatalf("want 125 naming the entry: %s", r)
			}
			checkOneErrorLine(t, r)
			if _, err := os.Lstat(dir); err == nil {
				t.Error("the directory it made was left")
			}
			for _, p := range []string{filepath.Join(parent, "escape"), filepath.Join(work, "escape"), "/tmp/planted", "/escape"} {
				if _, err := os.Lstat(p); err == nil {
					t.Errorf("%s was written", p)
				}
			}
			if entries, _ := os.ReadDir(victim); len(entries) != 0 {
				t.Errorf("the host directory got %v", entries)
			}
		})
	}
}

func TestRootfsRmRemovesOnlyWhatIsoboxMade(t *testing.T) {
	plain := filepath.Join(userDir(tester, "plain"), "dir")
	if r := runAs(tester, nil, "sh", "-c", "mkdir "+plain+" && touch "+plain+"/keep"); r.code != 0 {
		t.Fatal(r)
	}
	r := isobox(t, "rootfs", "rm", plain)
	if r.code != 125 || !strings.Contains(r.stderr, "--force") {
		t.Errorf("rm of an unmarked directory: %s", r)
	}
	if _, err := os.Stat(filepath.Join(plain, "keep")); err != nil {
		t.Error("it was removed")
	}
	if r := isobox(t, "rootfs", "rm", "--force", plain); r.code != 0 {
		t.Errorf("rm --force: %s", r)
	}
	// A BusyBox rootfs with files of subordinate ids, which the user alone
	// could not delete.
	root := filepath.Join(userDir(tester, "bb"), "r")
	if r := isobox(t, "rootfs", "busybox", root); r.code != 0 {
		t.Fatal(r)
	}
	if r := isobox(t, "run", "--net", "none", root, "sh", "-c", "mkdir -p /home/x && chown 1000 /home/x && touch /home/x/f"); r.code != 0 {
		t.Fatal(r)
	}
	if r := runAs(tester, nil, "rm", "-rf", root); r.code == 0 {
		t.Fatal("the user removed a subordinate id's files without isobox: the test proves nothing")
	}
	if r := isobox(t, "rootfs", "rm", root); r.code != 0 {
		t.Fatalf("rootfs rm: %s", r)
	}
	if _, err := os.Lstat(root); err == nil {
		t.Error("still there")
	}
	for _, bad := range []string{"/", filepath.Join(work, "nope"), filepath.Join(work, "isobox")} {
		if r := isobox(t, "rootfs", "rm", bad); r.code != 125 {
			t.Errorf("rootfs rm %s: %s", bad, r)
		}
	}
}
