package tests

import (
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// snapshot describes every entry under dir (name, mode, owner, size, and
// a hash of regular files), so that "nothing changed" can be checked.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			fmt.Fprintf(&b, "%s error %v\n", p, err)
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		st := fi.Sys().(*syscall.Stat_t)
		line := fmt.Sprintf("%s %v %d:%d %d", p, fi.Mode(), st.Uid, st.Gid, fi.Size())
		if fi.Mode().IsRegular() && fi.Size() < 1<<20 {
			if data, err := os.ReadFile(p); err == nil {
				line += fmt.Sprintf(" %x", sha256.Sum256(data))
			}
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			target, _ := os.Readlink(p)
			line += " -> " + target
		}
		b.WriteString(line + "\n")
		return nil
	})
	return b.String()
}

// checkOneErrorLine: an isobox error is one line starting with "isobox:",
// optionally followed by "isobox: hint:" lines; never a Go panic.
func checkOneErrorLine(t *testing.T, r result) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
	if r.stderr == "" || !strings.HasPrefix(lines[0], "isobox: ") || strings.HasPrefix(lines[0], "isobox: hint:") {
		t.Fatalf("error is not an isobox: line: %s", r)
	}
	for _, l := range lines[1:] {
		if !strings.HasPrefix(l, "isobox: hint: ") {
			t.Fatalf("error has more than one line: %s", r)
		}
	}
	if strings.Contains(r.stderr, "goroutine ") || strings.Contains(r.stderr, "panic") {
		t.Fatalf("Go panic or stack trace: %s", r)
	}
}

func TestBadInputGetsOneLineExit125AndChangesNothing(t *testing.T) {
	root := fresh(t)
	file := filepath.Join(userDir(tester, "file"), "not-a-dir")
	os.WriteFile(file, []byte("x"), 0o644)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"no command", nil},
		{"unknown command", []string{"frobnicate"}},
		{"rootfs missing", []string{"run", "/no/such/rootfs", "true"}},
		{"rootfs is a file", []string{"run", file, "true"}},
		{"rootfs not given", []string{"run"}},
		{"unknown option", []string{"run", "--bogus", root, "true"}},
		{"hostname too long", []string{"run", "--hostname", strings.Repeat("a", 65), root, "true"}},
		{"hostname with a space", []string{"run", "--hostname", "a b", root, "true"}},
		{"hostname with a slash", []string{"run", "--hostname", "a/b", root, "true"}},
		{"env without a name", []string{"run", "-e", "=x", root, "true"}},
		{"env name with a space", []string{"run", "-e", "A B=1", root, "true"}},
		{"env file missing", []string{"run", "--env-file", "/no/such/file", root, "true"}},
		{"time offset not a number", []string{"run", "--time-offset", "boottime=abc", root, "true"}},
		{"time offset unknown clock", []string{"run", "--time-offset", "realtime=1", root, "true"}},
		{"time offset without value", []string{"run", "--time-offset", "monotonic", root, "true"}},
		{"user with three parts", []string{"run", "-u", "1:2:3", root, "true"}},
		{"user not in the rootfs", []string{"run", "-u", "no-such-user", root, "true"}},
		{"group not in the rootfs", []string{"run", "-u", "0:no-such-group", root, "true"}},
		{"user unmapped with --map single", []string{"run", "--map", "single", "-u", "1000", root, "true"}},
		{"unknown network", []string{"run", "--net", "bogus", root, "true"}},
		{"unknown map mode", []string{"run", "--map", "bogus", root, "true"}},
		{"relative workdir", []string{"run", "-w", "tmp", root, "true"}},
		{"host loopback without a user-mode network", []string{"run", "--net", "none", "--allow-host-loopback", root, "true"}},
		// This host's controllers are in cgroup v1: every limit is refused
		// here before anything starts (the VM lane applies them).
		{"memory limit without a delegated cgroup v2", []string{"run", "--memory", "64m", root, "true"}},
		{"pids limit without a delegated cgroup v2", []string{"run", "-d", "--pids-limit", "64", root, "true"}},
		{"pids limit too small for isobox's init", []string{"run", "--pids-limit", "8", root, "true"}},
		{"memory size unreadable", []string{"run", "--memory", "12x", root, "true"}},
		{"memory below podman's minimum", []string{"run", "--memory", "1m", root, "true"}},
		{"memory-swap below memory", []string{"run", "--memory", "64m", "--memory-swap", "32m", root, "true"}},
		{"memory reservation above the limit", []string{"run", "--memory", "64m", "--memory-reservation", "128m", root, "true"}},
		{"cpus zero", []string{"run", "--cpus", "0", root, "true"}},
		{"cpu shares out of range", []string{"run", "--cpu-shares", "1", root, "true"}},
		{"pids limit below -1", []string{"run", "--pids-limit", "-5", root, "true"}},
		{"blkio weight out of range", []string{"run", "--blkio-weight", "5", root, "true"}},
		{"busybox dir is a file", []string{"rootfs", "busybox", file}},
		{"busybox binary missing", []string{"rootfs", "busybox", "--busybox", "/no/busybox", filepath.Join(root, "new")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := snapshot(t, root) + snapshot(t, filepath.Dir(file))
			mounts := hostMounts(t)
			r := isobox(t, tc.args...)
			if r.code != 125 {
				t.Fatalf("exit %d, want 125: %s", r.code, r)
			}
			checkOneErrorLine(t, r)
			if after := snapshot(t, root) + snapshot(t, filepath.Dir(file)); after != before {
				t.Fatal("bad input changed files")
			}
			if hostMounts(t) != mounts {
				t.Fatal("bad input changed the host's mounts")
			}
		})
	}
}
