package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/moby/sys/mountinfo"
)

// The seed article's demonstrations, one per namespace, each run without
// privilege. Each would fail if its namespace were not there.

func TestUTSNamespaceHostnameIsTheContainers(t *testing.T) {
	host, _ := os.Hostname()
	if got := strings.TrimSpace(inContainer(t, "hostname")); got != "isobox" {
		t.Fatalf("default hostname %q, want isobox", got)
	}
	// Renaming needs CAP_SYS_ADMIN, which is not in the default set.
	out := inContainer(t, "hostname; hostname renamed-inside; hostname; echo $HOSTNAME", "--hostname", "isolated-box", "--cap-add", "SYS_ADMIN")
	if want := "isolated-box\nrenamed-inside\nisolated-box\n"; out != want {
		t.Fatalf("got %q want %q", out, want)
	}
	if now, _ := os.Hostname(); now != host {
		t.Fatalf("the host's hostname changed from %q to %q", host, now)
	}
}

func TestPIDNamespaceShowsOnlyTheContainer(t *testing.T) {
	out := inContainer(t, "ps -o pid,args; true") // "; true": sh would exec a last command
	lines := strings.Split(strings.TrimSpace(out), "\n")
	// header, init, sh, ps: nothing of the host.
	if len(lines) != 4 {
		t.Fatalf("ps shows %d lines, want 4:\n%s", len(lines), out)
	}
	if f := strings.Fields(lines[1]); f[0] != "1" || !strings.Contains(lines[1], "isobox:init") {
		t.Fatalf("PID 1 is not isobox's init:\n%s", out)
	}
	if got := strings.TrimSpace(inContainer(t, "echo $$", "--no-init")); got != "1" {
		t.Fatalf("with --no-init the command's PID is %q, want 1", got)
	}
}

func TestNetworkNamespaceHasOnlyLoopbackUp(t *testing.T) {
	out := inContainer(t, "ip -o link; ip -o addr show lo", "--net", "none")
	links := 0
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.Contains(l, "link/") {
			links++
			if !strings.Contains(l, ": lo:") || !strings.Contains(l, "UP") {
				t.Fatalf("unexpected link: %s", l)
			}
		}
	}
	if links != 1 || !strings.Contains(out, "127.0.0.1/8") {
		t.Fatalf("want only lo, up, with 127.0.0.1:\n%s", out)
	}
	// The host's interfaces are visible with --net host, not otherwise.
	hostLinks, _ := os.ReadDir("/sys/class/net")
	if len(hostLinks) > 1 {
		out := inContainer(t, "ls /sys/class/net", "--net", "host")
		for _, l := range hostLinks {
			if !strings.Contains(out, l.Name()) {
				t.Fatalf("--net host does not show the host's %s:\n%s", l.Name(), out)
			}
		}
	}
	// The host's /sys, bound for --net host, is read-only all the way
	// down: its cgroup hierarchies are the machine's.
	if out := inContainer(t, `awk '$5 ~ "^/sys" { split($6, o, ","); print $5, o[1] }' /proc/self/mountinfo | grep -v ' ro$' || true`, "--net", "host"); out != "" {
		t.Errorf("writable mounts under /sys with --net host:\n%s", out)
	}
}

func TestMountNamespaceHidesContainerMountsFromHost(t *testing.T) {
	before := hostMounts(t)
	out := inContainer(t, "mkdir -p /mnt && mount -t tmpfs demo /mnt && echo hi > /mnt/f && grep ' /mnt ' /proc/mounts", "--cap-add", "SYS_ADMIN")
	if !strings.Contains(out, "demo /mnt tmpfs") {
		t.Fatalf("mount inside failed: %s", out)
	}
	after := hostMounts(t)
	if before != after {
		t.Fatalf("the host's mount table changed:\nbefore %s\nafter %s", before, after)
	}
	if _, err := os.Stat(filepath.Join(rootfs, "mnt", "f")); err == nil {
		t.Fatal("a file written on the container's tmpfs is on the host")
	}
}

// hostMounts is the host's mount table, as mountinfo reads it, in a form
// that compares equal when nothing was mounted or unmounted.
func hostMounts(t *testing.T) string {
	t.Helper()
	mounts, err := mountinfo.GetMounts(nil)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, m := range mounts {
		fmt.Fprintf(&b, "%d %s %s %s\n", m.ID, m.Mountpoint, m.FSType, m.Options)
	}
	return b.String()
}

func TestUserNamespaceRootInsideCallerOutside(t *testing.T) {
	out := inContainer(t, "id -u; touch /root/made-by-root; cat /proc/self/uid_map")
	if !strings.HasPrefix(out, "0\n") {
		t.Fatalf("id -u inside is not 0: %s", out)
	}
	st := statT(t, filepath.Join(rootfs, "root", "made-by-root"))
	if st.Uid != tester.uid {
		t.Fatalf("a file made by container root belongs to uid %d on the host, want the caller %d", st.Uid, tester.uid)
	}
	if f := strings.Fields(strings.Split(out, "\n")[1]); len(f) != 3 || f[0] != "0" || f[1] != strconv.Itoa(int(tester.uid)) || f[2] != "1" {
		t.Fatalf("uid_map does not map 0 to the caller:\n%s", out)
	}
	os.Remove(filepath.Join(rootfs, "root", "made-by-root"))
}

func TestSubordinateIDsOwnFilesOfOtherContainerUsers(t *testing.T) {
	requireSubIDs(t)
	root := fresh(t)
	r := isobox(t, "run", root, "/bin/sh", "-c", "touch /tmp/f && chown 1000:1000 /tmp/f && ls -ln /tmp/f")
	if r.code != 0 || !strings.Contains(r.stdout, " 1000 ") {
		t.Fatalf("chown inside: %s", r)
	}
	st := statT(t, filepath.Join(root, "tmp", "f"))
	if want := tester.subStart + 999; st.Uid != want {
		t.Fatalf("container uid 1000 is host uid %d, want %d (subordinate start %d + 999)", st.Uid, want, tester.subStart)
	}
}

func TestCgroupNamespaceShowsRootOfItsOwnView(t *testing.T) {
	out := inContainer(t, "cat /proc/self/cgroup")
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if !strings.HasSuffix(l, ":/") {
			t.Fatalf("inside, a cgroup path is not the namespace root: %q\n%s", l, out)
		}
	}
	host, _ := os.ReadFile("/proc/self/cgroup")
	if strings.TrimSpace(string(host)) == strings.TrimSpace(out) {
		t.Skip("the test itself runs at the cgroup root; the view cannot differ")
	}
}

func TestIPCNamespaceHidesHostSegments(t *testing.T) {
	// A System V segment made on the host by the same user is not visible.
	id, _, err := syscall.Syscall(syscall.SYS_SHMGET, 0 /* IPC_PRIVATE */, 4096, 0o600|01000 /* IPC_CREAT */)
	if err != 0 {
		t.Fatalf("shmget on the host: %v", err)
	}
	defer syscall.Syscall(syscall.SYS_SHMCTL, id, 0 /* IPC_RMID */, 0)
	host, _ := os.ReadFile("/proc/sysvipc/shm")
	if !strings.Contains(string(host), " "+strconv.Itoa(int(id))+" ") {
		t.Fatalf("the host segment %d is not in the host's /proc/sysvipc/shm", id)
	}
	out := inContainer(t, "cat /proc/sysvipc/shm | tail -n +2 | wc -l")
	if strings.TrimSpace(out) != "0" {
		t.Fatalf("the container sees %s System V segments, want 0", out)
	}
}

func TestTimeNamespaceOffsetsUptime(t *testing.T) {
	if _, err := os.Lstat("/proc/self/ns/time"); err != nil {
		t.Skip("no time namespaces on this kernel")
	}
	hostUp := uptime(t, mustRead(t, "/proc/uptime"))
	in := uptime(t, inContainer(t, "cat /proc/uptime", "--time-offset", "boottime=100000"))
	// The offset is 100000 s; the container started after the host read.
	if d := in - hostUp; d < 100000 || d > 100000+600 {
		t.Fatalf("uptime inside %.0f, on the host %.0f: offset %.0f, want about 100000", in, hostUp, d)
	}
	// Without the flag the container still has a time namespace of its own.
	out := inContainer(t, "readlink /proc/self/ns/time")
	hostNS, _ := os.Readlink("/proc/self/ns/time")
	if strings.TrimSpace(out) == hostNS {
		t.Fatalf("the container shares the host's time namespace %s", hostNS)
	}
}

func uptime(t *testing.T, s string) float64 {
	t.Helper()
	f, err := strconv.ParseFloat(strings.Fields(s)[0], 64)
	if err != nil {
		t.Fatalf("parse uptime %q: %v", s, err)
	}
	return f
}

func mustRead(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func statT(t *testing.T, p string) *syscall.Stat_t {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t)
}

func TestEveryNamespaceDiffersFromTheHost(t *testing.T) {
	kinds := []string{"user", "mnt", "pid", "uts", "ipc", "net", "cgroup"}
	if _, err := os.Lstat("/proc/self/ns/time"); err == nil {
		kinds = append(kinds, "time")
	}
	script := ""
	for _, k := range kinds {
		script += "readlink /proc/self/ns/" + k + "; "
	}
	out := strings.Fields(inContainer(t, script))
	for i, k := range kinds {
		host, _ := os.Readlink("/proc/self/ns/" + k)
		if out[i] == host {
			t.Errorf("%s namespace is the host's (%s)", k, host)
		}
	}
}
