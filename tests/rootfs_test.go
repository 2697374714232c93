package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRootfsBusyboxBuildsTheSeedLayout(t *testing.T) {
	for _, d := range []string{"bin", "proc", "sys", "dev", "etc", "tmp", "root"} {
		if fi, err := os.Lstat(filepath.Join(rootfs, d)); err != nil || !fi.IsDir() {
			t.Errorf("%s: not a directory: %v", d, err)
		}
	}
	if fi, _ := os.Lstat(filepath.Join(rootfs, "tmp")); fi.Mode()&os.ModeSticky == 0 || fi.Mode().Perm() != 0o777 {
		t.Errorf("tmp mode %v, want 1777", fi.Mode())
	}
	// Every applet the seed uses is a link to /bin/busybox.
	for _, a := range []string{"bin/sh", "bin/mount", "bin/umount", "bin/ls", "bin/mkdir", "bin/ps", "bin/hostname", "sbin/ip"} {
		if target, err := os.Readlink(filepath.Join(rootfs, a)); err != nil || target != "/bin/busybox" {
			t.Errorf("%s -> %q (%v), want /bin/busybox", a, target, err)
		}
	}
	for _, f := range []string{"etc/passwd", "etc/group", "etc/hosts"} {
		if b, err := os.ReadFile(filepath.Join(rootfs, f)); err != nil || len(b) == 0 {
			t.Errorf("%s missing or empty: %v", f, err)
		}
	}
	if st := statT(t, filepath.Join(rootfs, "bin", "busybox")); st.Uid != tester.uid {
		t.Errorf("bin/busybox belongs to %d, want the user who built it (%d)", st.Uid, tester.uid)
	}
}

func TestRootfsBusyboxRefusesANonEmptyDirectoryUnlessForced(t *testing.T) {
	dir := userDir(tester, "nonempty")
	mine := filepath.Join(dir, "etc")
	runAs(tester, nil, "mkdir", mine)
	runAs(tester, nil, "sh", "-c", "echo mine > "+mine+"/passwd")
	before := snapshot(t, dir)
	r := isobox(t, "rootfs", "busybox", dir)
	if r.code != 125 || !strings.Contains(r.stderr, "not empty") {
		t.Fatalf("want exit 125 and 'not empty': %s", r)
	}
	if after := snapshot(t, dir); after != before {
		t.Fatalf("a refused build changed the directory:\n%s\n---\n%s", before, after)
	}
	if r := isobox(t, "rootfs", "busybox", "--force", dir); r.code != 0 {
		t.Fatalf("--force: %s", r)
	}
	if b, _ := os.ReadFile(filepath.Join(mine, "passwd")); string(b) != "mine\n" {
		t.Fatalf("--force overwrote an existing file: %q", b)
	}
	if _, err := os.Lstat(filepath.Join(dir, "bin", "busybox")); err != nil {
		t.Fatalf("--force did not build: %v", err)
	}
}

func TestRootfsBusyboxRefusesADynamicBinaryAndCreatesNothing(t *testing.T) {
	dir := filepath.Join(userDir(tester, "dyn"), "rootfs")
	r := isobox(t, "rootfs", "busybox", "--busybox", "/bin/ls", dir)
	if r.code != 125 || !strings.Contains(r.stderr, "dynamically linked") {
		t.Fatalf("want exit 125 naming a dynamic binary: %s", r)
	}
	if _, err := os.Lstat(dir); err == nil {
		t.Fatal("the target directory was created anyway")
	}
}

func TestMissingMountPointsAreCreatedInAWritableRootfs(t *testing.T) {
	root := fresh(t)
	for _, d := range []string{"proc", "sys", "dev"} {
		os.RemoveAll(filepath.Join(root, d))
	}
	r := isobox(t, "run", root, "/bin/sh", "-c", "ls /proc/self/stat /dev/null /sys/kernel >/dev/null && echo ok")
	if r.code != 0 || r.stdout != "ok\n" {
		t.Fatalf("%s", r)
	}
}

func TestUnwritableRootfsLackingProcFailsClearly(t *testing.T) {
	// Container root may write wherever the caller may (its files are
	// container root's), so only a rootfs owned by an unmapped id, here
	// host root, is unwritable from inside.
	requireRoot(t, "make a rootfs owned by host root")
	root := fresh(t)
	os.RemoveAll(filepath.Join(root, "proc"))
	if err := os.Chown(root, 0, 0); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, root)
	r := isobox(t, "run", root, "true")
	if r.code != 125 || !strings.Contains(r.stderr, "lacks /proc") {
		t.Fatalf("want exit 125 saying the rootfs lacks /proc: %s", r)
	}
	checkOneErrorLine(t, r)
	if after := snapshot(t, root); after != before {
		t.Fatal("the rootfs changed")
	}
}

// A rootfs author plants /proc -> / (CVE-2023-27561 for runc) or /dev ->
// /etc: isobox must not mount anything through the link.
func TestSymlinkedMountPointsInRootfsAreRefused(t *testing.T) {
	for _, tc := range []struct{ dir, target string }{{"proc", "/"}, {"dev", "/etc"}, {"sys", "../../.."}} {
		t.Run(tc.dir, func(t *testing.T) {
			root := fresh(t)
			os.RemoveAll(filepath.Join(root, tc.dir))
			if r := runAs(tester, nil, "ln", "-s", tc.target, filepath.Join(root, tc.dir)); r.code != 0 {
				t.Fatal(r)
			}
			hostBefore := hostMounts(t)
			before := snapshot(t, root)
			r := isobox(t, "run", root, "true")
			if r.code != 125 || !strings.Contains(r.stderr, "is a symlink") {
				t.Fatalf("want exit 125 refusing the symlink: %s", r)
			}
			if hostMounts(t) != hostBefore {
				t.Fatal("the host's mount table changed")
			}
			if snapshot(t, root) != before {
				t.Fatal("the rootfs changed")
			}
		})
	}
}

func TestKernelFilesAreMaskedAsRuncDoes(t *testing.T) {
	out := inContainer(t, `
		if [ -e /proc/kcore ]; then wc -c < /proc/kcore; else echo 0; fi
		ls /sys/firmware | wc -l
		echo 1 > /proc/sys/kernel/ns_last_pid 2>/dev/null && echo proc-sys-writable || echo proc-sys-ro
		echo b > /proc/sysrq-trigger 2>/dev/null && echo sysrq-writable || echo sysrq-ro
		touch /sys/x 2>/dev/null && echo sys-writable || echo sys-ro
	`)
	want := "0\n0\nproc-sys-ro\nsysrq-ro\nsys-ro\n"
	if strings.Join(strings.Fields(out), "\n")+"\n" != want {
		t.Fatalf("got\n%s\nwant\n%s", out, want)
	}
}

// /etc/hosts and /etc/resolv.conf, which isobox binds its files over, are
// resolved inside the rootfs whatever they link to: a link to a host path
// lands on the rootfs's own file of that name, a loop fails fast with
// ELOOP, a dangling link is refused; nothing is written or mounted on the
// host.
func TestSymlinkedEtcFilesStayInTheRootfs(t *testing.T) {
	hostPasswd := mustRead(t, "/etc/passwd")
	for _, tc := range []struct {
		name, hosts, want string
		code              int
	}{
		{"to a host path", "/etc/passwd", "", 0},
		{"loop", "hosts.loop", "too many levels of symbolic links", 125},
		{"dangling", "/nonexistent/hosts", "is a symlink to a path the rootfs lacks", 125},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := fresh(t)
			os.Remove(filepath.Join(root, "etc/hosts"))
			if r := runAs(tester, nil, "ln", "-s", tc.hosts, filepath.Join(root, "etc/hosts")); r.code != 0 {
				t.Fatal(r)
			}
			if tc.name == "loop" {
				runAs(tester, nil, "ln", "-s", "hosts", filepath.Join(root, "etc/hosts.loop"))
			}
			mounts := hostMounts(t)
			r := isobox(t, "run", root, "sh", "-c", "cat /etc/passwd")
			if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
				t.Fatalf("want %d and %q: %s", tc.code, tc.want, r)
			}
			if tc.code == 0 && !strings.Contains(r.stdout, "10.0.2.100") {
				t.Errorf("the link's target in the rootfs did not get the container's hosts file: %s", r.stdout)
			}
			if mustRead(t, "/etc/passwd") != hostPasswd || hostMounts(t) != mounts {
				t.Fatal("the host's /etc/passwd or mount table changed")
			}
		})
	}
}
