package tests

import (
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func mapLines(s string) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		out = append(out, strings.Join(strings.Fields(l), " "))
	}
	return out
}

func TestFullMappingIsPodmansLayout(t *testing.T) {
	requireSubIDs(t)
	got := mapLines(inContainer(t, "cat /proc/self/uid_map"))
	want0 := "0 " + strconv.Itoa(int(tester.uid)) + " 1"
	want1 := "1 " + strconv.Itoa(int(tester.subStart)) + " "
	if len(got) < 2 || got[0] != want0 || !strings.HasPrefix(got[1], want1) {
		t.Fatalf("uid_map %q, want %q then %q...", got, want0, want1)
	}
	if s := strings.TrimSpace(inContainer(t, "cat /proc/self/setgroups")); s != "allow" {
		t.Fatalf("setgroups %q with subordinate ids, want allow", s)
	}
}

func TestSingleMappingMapsOnlyRootAndDeniesSetgroups(t *testing.T) {
	out := inContainer(t, "cat /proc/self/uid_map /proc/self/gid_map /proc/self/setgroups; id -u", "--map", "single")
	uid, gid := strconv.Itoa(int(tester.uid)), strconv.Itoa(int(tester.gid))
	want := []string{"0 " + uid + " 1", "0 " + gid + " 1", "deny", "0"}
	if got := mapLines(out); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got %q want %q", got, want)
	}
}

func TestWithoutSubordinateRangeFallsBackToSingleWithOneWarning(t *testing.T) {
	requireRoot(t, "run as a second user without subordinate ranges")
	root := filepath.Join(userDir(nosub, "nosub"), "rootfs")
	if r := runAs(nosub, nil, binary, "rootfs", "busybox", root); r.code != 0 {
		t.Fatal(r)
	}
	r := runAs(nosub, nil, binary, "run", root, "cat", "/proc/self/uid_map")
	if r.code != 0 {
		t.Fatal(r)
	}
	if got := mapLines(r.stdout); len(got) != 1 || got[0] != "0 "+strconv.Itoa(int(nosub.uid))+" 1" {
		t.Fatalf("uid_map %q, want only root mapped to %d", got, nosub.uid)
	}
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "isobox: warning: mapping only root") {
		t.Fatalf("want exactly one warning line, got %q", r.stderr)
	}
	r = runAs(nosub, nil, binary, "run", "--map", "full", root, "true")
	if r.code != 125 || !strings.Contains(r.stderr, "subordinate") {
		t.Fatalf("--map full without a range: %s", r)
	}
	checkOneErrorLine(t, r)
}

func TestUnshareGivesTheContainerMappingToAHostCommand(t *testing.T) {
	requireSubIDs(t)
	in := mapLines(inContainer(t, "cat /proc/self/uid_map"))
	r := isobox(t, "unshare", "cat", "/proc/self/uid_map")
	if r.code != 0 || strings.Join(mapLines(r.stdout), "|") != strings.Join(in, "|") {
		t.Fatalf("unshare maps %q, run maps %q: %s", mapLines(r.stdout), in, r)
	}
	// A file of a subordinate id cannot be removed by its user directly;
	// through isobox unshare it can.
	root := fresh(t)
	if r := isobox(t, "run", root, "sh", "-c", "mkdir /tmp/d && touch /tmp/d/f && chown -R 1000 /tmp/d"); r.code != 0 {
		t.Fatal(r)
	}
	d := filepath.Join(root, "tmp", "d")
	if r := runAs(tester, nil, "rm", "-rf", d); r.code == 0 {
		t.Fatal("the user removed a subordinate id's directory without unshare")
	}
	if r := isobox(t, "unshare", "rm", "-rf", d); r.code != 0 {
		t.Fatalf("unshare rm: %s", r)
	}
	if _, err := os.Lstat(d); err == nil {
		t.Fatal("still there after isobox unshare rm -rf")
	}
	if r := isobox(t, "unshare", "sh", "-c", "exit 4"); r.code != 4 {
		t.Fatalf("unshare exit status %d, want 4", r.code)
	}
}

// As real root, isobox must never make container root the host's root.
func TestRealRootIsNeverMappedToContainerRoot(t *testing.T) {
	requireRoot(t, "run isobox as root")
	root := fresh(t)
	self := &account{name: "root", uid: 0, gid: 0, home: "/root", self: true}
	r := runAs(self, nil, binary, "run", root, "cat", "/proc/self/uid_map")
	if firstRange("/etc/subuid", "root", 0) == 0 {
		if r.code != 125 || !strings.Contains(r.stderr, "root") {
			t.Fatalf("root without a subordinate range: %s", r)
		}
		checkOneErrorLine(t, r)
		return
	}
	if r.code != 0 {
		t.Fatal(r)
	}
	for _, l := range mapLines(r.stdout) {
		if f := strings.Fields(l); len(f) == 3 && f[1] == "0" {
			t.Fatalf("host root is mapped: %q", r.stdout)
		}
	}
}

func TestRootOfTheUsersOwnUserNamespaceMapsItselfAsAUserDoes(t *testing.T) {
	// Inside `unshare -r` (or rootlesskit, or podman unshare), uid 0 is the
	// user, not the host's root: isobox maps it as it maps anyone without
	// a subordinate range, with the one warning, instead of refusing it
	// as root.
	root := fresh(t)
	r := runAs(tester, nil, "unshare", "--user", "--map-root-user", binary, "run", "--net", "none", root, "sh", "-c", "id -u; cat /proc/self/uid_map")
	if got := mapLines(r.stdout); r.code != 0 || strings.Join(got, "|") != "0|0 0 1" {
		t.Fatalf("want container root mapped onto the namespace's root: %s", r)
	}
	if lines := strings.Split(strings.TrimSpace(r.stderr), "\n"); len(lines) != 1 || !strings.HasPrefix(lines[0], "isobox: warning: mapping only root") {
		t.Errorf("want exactly one warning line, got %q", r.stderr)
	}
}

func TestSetuidBinaryRefusesToRun(t *testing.T) {
	requireRoot(t, "make a setuid copy owned by one user and run it as another")
	dir := userDir(tester, "suid")
	p := filepath.Join(dir, "isobox")
	in, _ := os.Open(binary)
	out, _ := os.Create(p)
	io.Copy(out, in)
	in.Close()
	out.Close()
	os.Chown(p, int(tester.uid), int(tester.gid))
	if err := os.Chmod(p, 0o755|os.ModeSetuid); err != nil {
		t.Fatal(err)
	}
	r := runAs(nosub, nil, p, "run", rootfs, "true")
	if r.code != 125 || !strings.Contains(r.stderr, "setuid") {
		t.Fatalf("setuid isobox: %s", r)
	}
	checkOneErrorLine(t, r)
}

// The unshared command shares the caller's process group: a terminal's
// SIGINT reaches it once, not again through the runner, and it starts
// with SIGINT at its default, not ignored.
func TestUnshareCommandGetsGroupSignalsOnce(t *testing.T) {
	// `kill -INT 0` signals the whole process group: isobox gets a group of
	// its own, as a shell gives a job, or it would interrupt the tests too.
	inOwnGroup := func(script string) result {
		cmd := command(tester, nil, binary, "unshare", "sh", "-c", script)
		cmd.SysProcAttr.Setpgid = true
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		cmd.Run()
		return result{stdout: out.String(), stderr: errb.String(), code: cmd.ProcessState.ExitCode()}
	}
	if r := inOwnGroup(`trap "echo got-int" INT; kill -INT 0; sleep 0.3; echo done`); r.code != 0 || r.stdout != "got-int\ndone\n" {
		t.Fatalf("want the trap to run once: %s", r)
	}
	if r := inOwnGroup("kill -INT 0; sleep 5; echo not-reached"); r.code != 130 {
		t.Fatalf("SIGINT did not end the command (exit %d, want 130): %s", r.code, r)
	}
}
