package tests

import (
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The adversarial suite: each test is an attack on a container runtime,
// named after what it stops, with the advisory it comes from where there
// is one. Others live next to the feature they attack: descriptors leaking
// in (TestNoDescriptorReachesTheContainer, CVE-2024-21626), keystrokes
// pushed into the caller's terminal (TestContainerHasNoControllingTerminal-
// WithoutTTY, CVE-2017-5226), symlinked rootfs mount points
// (TestSymlinked*, CVE-2023-27561), the runner killed mid-start
// (TestRunnerKilledDuringStartUpLeavesNothing), a PID 1 that ignores
// SIGTERM (TestStopKillsAContainerThatIgnoresSIGTERMAfterTheTimeout).

// capLine returns the value of a Cap* line of /proc/self/status output.
func capLine(t *testing.T, status, name string) string {
	t.Helper()
	for _, l := range strings.Split(status, "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && k == name {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no %s in:\n%s", name, status)
	return ""
}

func TestContainerGetsPodmansDefaultCapabilitiesAndNoMore(t *testing.T) {
	const podman = "00000000800405fb" // CHOWN DAC_OVERRIDE FOWNER FSETID KILL NET_BIND_SERVICE SETFCAP SETGID SETPCAP SETUID SYS_CHROOT
	for _, tc := range []struct {
		name                    string
		flags                   []string
		eff, bnd, amb, inh, prm string
	}{
		{"root", nil, podman, podman, "0000000000000000", "0000000000000000", podman},
		{"non-root user", []string{"-u", "1000"}, "0000000000000000", podman, "0000000000000000", "0000000000000000", "0000000000000000"},
		{"non-root user with one added", []string{"-u", "1000", "--cap-add", "net_bind_service"}, "0000000000000400", podman, "0000000000000400", "0000000000000400", "0000000000000400"},
		{"non-root user, no init", []string{"-u", "1000", "--no-init", "--cap-add", "CAP_NET_BIND_SERVICE"}, "0000000000000400", podman, "0000000000000400", "0000000000000400", "0000000000000400"},
		{"drop all, add one", []string{"--cap-drop", "ALL", "--cap-add", "CHOWN"}, "0000000000000001", "0000000000000001", "0000000000000000", "0000000000000000", "0000000000000001"},
		{"drop one", []string{"--cap-drop", "KILL"}, "00000000800405db", "00000000800405db", "0000000000000000", "0000000000000000", "00000000800405db"},
		// Started through the holder (time offsets need it), not directly.
		{"root, through the holder", []string{"--time-offset", "monotonic=1"}, podman, podman, "0000000000000000", "0000000000000000", podman},
		{"non-root user, through the holder", []string{"--time-offset", "monotonic=1", "-u", "1000"}, "0000000000000000", podman, "0000000000000000", "0000000000000000", "0000000000000000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := inContainer(t, "cat /proc/self/status", append(tc.flags, "--net", "none")...)
			for _, c := range []struct{ line, want string }{
				{"CapEff", tc.eff}, {"CapBnd", tc.bnd}, {"CapAmb", tc.amb}, {"CapInh", tc.inh}, {"CapPrm", tc.prm},
			} {
				if got := capLine(t, st, c.line); got != c.want {
					t.Errorf("%s = %s, want %s", c.line, got, c.want)
				}
			}
		})
	}
	// What the default set leaves out, container root cannot do.
	r := isobox(t, "run", "--net", "none", rootfs, "sh", "-c", "mount -t tmpfs x /mnt || echo no-mount; hostname other || echo no-hostname")
	if !strings.Contains(r.stdout, "no-mount") || !strings.Contains(r.stdout, "no-hostname") {
		t.Errorf("without CAP_SYS_ADMIN: %s", r)
	}
	for _, bad := range [][]string{{"--cap-add", "NOPE"}, {"--cap-drop", "CAP_"}, {"--cap-add", "ALL", "--cap-drop", "ALL"}} {
		r := isobox(t, append(append([]string{"run"}, bad...), rootfs, "true")...)
		if r.code != 125 {
			t.Errorf("%v: %s", bad, r)
		}
		checkOneErrorLine(t, r)
	}
}

func TestNoNewPrivsIsOnUnlessTurnedOff(t *testing.T) {
	if got := capLine(t, inContainer(t, "cat /proc/self/status", "--net", "none"), "NoNewPrivs"); got != "1" {
		t.Errorf("NoNewPrivs = %s by default, want 1", got)
	}
	if got := capLine(t, inContainer(t, "cat /proc/self/status", "--net", "none", "--security-opt", "no-new-privileges=false"), "NoNewPrivs"); got != "0" {
		t.Errorf("NoNewPrivs = %s with no-new-privileges=false, want 0", got)
	}
	for _, bad := range []string{"no-new-privileges=maybe", "apparmor=x", "label:disable"} {
		r := isobox(t, "run", "--security-opt", bad, rootfs, "true")
		if r.code != 125 {
			t.Errorf("--security-opt %s: %s", bad, r)
		}
		checkOneErrorLine(t, r)
	}
}

// The binary that runs as the container's PID 1 must not be writable from
// inside, even when it belongs to the user container root is mapped to.
// https://github.com/opencontainers/runc/security/advisories/GHSA-gxmr-w5mj-v8hh
// (CVE-2019-5736).
func TestRunnerBinaryCannotBeOverwrittenFromInsideCVE20195736(t *testing.T) {
	// The user's own copy, as after `make build` in their checkout.
	own := filepath.Join(userDir(tester, "bin"), "isobox")
	if r := runAs(tester, nil, "cp", binary, own); r.code != 0 {
		t.Fatal(r)
	}
	sum := func() [32]byte {
		b, err := os.ReadFile(own)
		if err != nil {
			t.Fatal(err)
		}
		return sha256.Sum256(b)
	}
	before := sum()
	// Truncating (O_TRUNC) meets the read-only mount before the kernel's
	// "Text file busy", which is all that stands in the way without it.
	script := `for e in /proc/[0-9]*/exe; do
		if readlink $e >/dev/null 2>&1 && ! [ "$(readlink $e)" = /bin/busybox ]; then
			( echo pwned > $e ) 2>&1 | sed "s|^|$e: |"
			( echo pwned >> $e ) 2>&1 | sed "s|^|$e: |"
		fi
	done
	/proc/self/exe --version >/dev/null 2>&1; echo "self: $(readlink /proc/self/exe)"
	/proc/1/exe --version; ( echo pwned > /proc/1/exe ) 2>&1; true`
	// Both ways init is started: directly by the runner, exec'd by its path
	// (--net none), and by the holder, from a detached read-only clone of
	// the binary (time offsets need the holder).
	for _, how := range [][]string{{"--net", "none"}, {"--net", "none", "--time-offset", "monotonic=1"}} {
		args := append(append([]string{own, "run"}, how...), "--cap-add", "ALL", rootfs, "sh", "-c", script)
		r := runAs(tester, nil, args...)
		if r.code != 0 {
			t.Fatalf("%v: %s", how, r)
		}
		if strings.Count(r.stdout, "Read-only file system") < 2 {
			t.Errorf("%v: want the writes refused as read-only:\n%s", how, r.stdout)
		}
		if sum() != before {
			t.Fatalf("%v: the binary on disk changed", how)
		}
	}
	// `isobox run ROOTFS /proc/self/exe`: the command is init's binary,
	// read-only, never the file on disk.
	r := runAs(tester, nil, own, "run", "--net", "none", rootfs, "/proc/self/exe", "--version")
	if r.code != 0 || strings.TrimSpace(r.stdout) == "" {
		t.Errorf("/proc/self/exe as the command: %s", r)
	}
	if sum() != before {
		t.Fatal("the binary on disk changed")
	}
}

// The masks over /proc and /sys stay: a process in the container cannot
// unmount one, or mount a new proc or sysfs beside them to look underneath.
func TestMasksCannotBeUnmountedOrBypassedWithANewProc(t *testing.T) {
	script := `umount /proc/kcore 2>/dev/null && echo unmounted-kcore
	umount -l /proc/keys 2>/dev/null && echo unmounted-keys
	umount /sys/firmware 2>/dev/null && echo unmounted-firmware
	mount -o remount,rw /proc/sys 2>/dev/null && echo remounted-sys
	mkdir -p /tmp/p && mount -t proc proc /tmp/p 2>/dev/null && echo mounted-proc
	mkdir -p /tmp/s && mount -t sysfs sysfs /tmp/s 2>/dev/null && echo mounted-sysfs
	echo done`
	out := inContainer(t, script, "--net", "none")
	if strings.TrimSpace(out) != "done" {
		t.Errorf("with the default capabilities:\n%s", out)
	}
}

// A container joins a session keyring of its own, never the caller's
// (runc: "_ses" keyrings since 2016). Unconfined: the default seccomp
// profile forbids keyctl(2) altogether, and this must hold without it.
func TestContainerHasASessionKeyringOfItsOwn(t *testing.T) {
	root := fresh(t)
	buildInto(t, root, "probe")
	host := runAs(tester, nil, filepath.Join(root, "bin", "probe"), "keyring")
	in := isobox(t, "run", "--net", "none", "--security-opt", "seccomp=unconfined", root, "probe", "keyring")
	if host.code != 0 || in.code != 0 {
		t.Fatalf("host: %s\ncontainer: %s", host, in)
	}
	if strings.TrimSpace(in.stdout) == strings.TrimSpace(host.stdout) {
		t.Fatalf("the container is in the caller's session keyring %s", host.stdout)
	}
	// An anonymous session keyring joined by init ("_ses"), not the one
	// the caller's session or the user's default would give.
	if !strings.HasSuffix(strings.TrimSpace(in.stdout), ";_ses") {
		t.Fatalf("session keyring in the container: %q, want a new \"_ses\" one", in.stdout)
	}
	other := isobox(t, "run", "--net", "none", "--security-opt", "seccomp=unconfined", root, "probe", "keyring")
	if strings.TrimSpace(in.stdout) == strings.TrimSpace(other.stdout) {
		t.Fatalf("two containers share session keyring %s", in.stdout)
	}
}

// `-w` is resolved after pivot_root, inside the container: `..` climbs no
// higher than its root, and /proc/self/fd/N names no descriptor of the
// runner's (CVE-2024-21626, where runc's leaked fd let -w open a host
// directory).
// https://github.com/opencontainers/runc/security/advisories/GHSA-xr7r-f8xq-vfvv
func TestWorkdirCannotLeaveTheContainerCVE202421626(t *testing.T) {
	marker := filepath.Join(work, "host-only-marker")
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	out := inContainer(t, "pwd; ls /", "-w", "/../../../..", "--net", "none")
	if !strings.HasPrefix(out, "/\n") || strings.Contains(out, "host-only-marker") || !strings.Contains(out, "bin") {
		t.Errorf("-w /../../../..:\n%s", out)
	}
	for _, mode := range [][]string{nil, {"--no-init"}} {
		for fd := 3; fd < 12; fd++ {
			args := append(append([]string{"run", "--net", "none"}, mode...), "-w", "/proc/self/fd/"+itoa(fd), rootfs, "sh", "-c", "pwd; ls")
			r := isobox(t, args...)
			if r.code == 0 && (strings.Contains(r.stdout, "host-only-marker") || !strings.HasPrefix(r.stdout, "/proc/")) {
				t.Errorf("%v -w /proc/self/fd/%d reached %s", mode, fd, r.stdout)
			}
		}
	}
}

// Docker's default seccomp profile: calls Docker blocks for a container
// without CAP_SYS_ADMIN fail with EPERM, and work again unconfined.
func TestSeccompBlocksWhatDockersDefaultProfileBlocks(t *testing.T) {
	root := fresh(t)
	buildInto(t, root, "probe")
	// unshare(2) from BusyBox: a Go program is multi-threaded, which
	// unshare(CLONE_NEWUSER) refuses on its own.
	probes := map[string]string{
		"unshare":     "unshare -U true 2>/dev/null && echo ok || echo EPERM",
		"keyctl":      "probe keyctl",
		"personality": "probe personality",
	}
	for name, script := range probes {
		r := isobox(t, "run", "--net", "none", root, "sh", "-c", script)
		if strings.TrimSpace(r.stdout) != "EPERM" {
			t.Errorf("%s under the default profile: %s", name, r)
		}
		r = isobox(t, "run", "--net", "none", "--security-opt", "seccomp=unconfined", root, "sh", "-c", script)
		if strings.TrimSpace(r.stdout) != "ok" {
			t.Errorf("%s unconfined: %s", name, r)
		}
	}
	if got := capLine(t, inContainer(t, "cat /proc/self/status", "--net", "none"), "Seccomp"); got != "2" {
		t.Errorf("Seccomp: %s, want 2 (filter)", got)
	}
	// Detached, the monitor starts the container: the same filter.
	s := newStore(t)
	s.must("run", "-d", "--name", "sec", "--net", "none", root, "sh", "-c", "grep Seccomp: /proc/self/status; sleep 1000")
	waitLog(t, s, "sec", "Seccomp:")
	if got := capLine(t, s.must("logs", "sec"), "Seccomp"); got != "2" {
		t.Errorf("detached: Seccomp: %s, want 2 (filter)", got)
	}
	s.must("rm", "-f", "sec")
	// A profile in Docker's JSON format, from a file.
	profile := filepath.Join(userDir(tester, "seccomp"), "profile.json")
	if err := os.WriteFile(profile, []byte(`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":13}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	r := isobox(t, "run", "--net", "none", "--security-opt", "seccomp="+profile, root, "sh", "-c", "mkdir /tmp/x 2>&1; probe keyctl")
	if !strings.Contains(r.stdout, "Permission denied") || !strings.Contains(r.stdout, "ok") {
		t.Errorf("custom profile: %s", r)
	}
	for _, bad := range []string{"seccomp=" + filepath.Join(work, "missing.json"), "seccomp=", "seccomp=" + binary} {
		r := isobox(t, "run", "--security-opt", bad, root, "true")
		if r.code != 125 {
			t.Errorf("--security-opt %s: %s", bad, r)
		}
		checkOneErrorLine(t, r)
	}
}

// The caller's supplementary groups do not follow it into the container
// when the full mapping lets init drop them. With --map single the kernel
// denies setgroups(2) (so that nobody can shed a group that denies them
// something), and they stay, shown as the overflow gid: the same as with
// `unshare -r`, and the README says so.
func TestCallerSupplementaryGroupsAreDropped(t *testing.T) {
	requireRoot(t, "give the test user a supplementary group")
	requireSubIDs(t)
	cmd := command(tester, nil, binary, "run", "--net", "none", rootfs, "sh", "-c", "grep Groups: /proc/self/status; cat /proc/self/setgroups")
	cmd.SysProcAttr.Credential.Groups = []uint32{100} // users
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if got := strings.Fields(string(out)); strings.Join(got, " ") != "Groups: allow" {
		t.Errorf("with the full mapping: %q, want no group", out)
	}
	cmd = command(tester, nil, binary, "run", "--net", "none", "--map", "single", rootfs, "sh", "-c", "grep Groups: /proc/self/status; cat /proc/self/setgroups")
	cmd.SysProcAttr.Credential.Groups = []uint32{100}
	out, err = cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if got := strings.Fields(string(out)); strings.Join(got, " ") != "Groups: 65534 deny" {
		t.Errorf("with --map single: %q, want the overflow gid and deny", out)
	}
}

// Without CAP_NET_RAW (not in the default set), ICMP echo sockets are open
// to the container's groups, as podman does; BusyBox's ping wants a raw
// socket, which --cap-add NET_RAW gives. Only the container's own lo.
func TestPingWorksWithoutRawSocketsOrWithNetRaw(t *testing.T) {
	out := inContainer(t, "cat /proc/sys/net/ipv4/ping_group_range", "--net", "none")
	if f := strings.Fields(out); len(f) != 2 || f[0] != "0" || f[1] == "0" {
		t.Errorf("ping_group_range %q, want 0 to the last mapped gid", out)
	}
	if single := inContainer(t, "cat /proc/sys/net/ipv4/ping_group_range", "--net", "none", "--map", "single"); strings.Join(strings.Fields(single), " ") != "0 0" {
		t.Errorf("with --map single: %q", single)
	}
	out = inContainer(t, "ping -c 1 -W 2 127.0.0.1 >/dev/null && echo pong", "--net", "none", "--cap-add", "NET_RAW")
	if strings.TrimSpace(out) != "pong" {
		t.Errorf("ping with NET_RAW: %q", out)
	}
}
