package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// store is one test's own state directory ($XDG_RUNTIME_DIR), so that the
// containers of one test never show up in another's ps.
type store struct {
	t   *testing.T
	env []string
	dir string // the isobox directory in it
}

func newStore(t *testing.T) *store {
	t.Helper()
	rt := privateDir(tester, "xdg")
	s := &store{t: t, env: []string{"XDG_RUNTIME_DIR=" + rt}, dir: filepath.Join(rt, "isobox")}
	// Whatever a failed test left running is stopped with it.
	t.Cleanup(func() {
		for _, c := range s.ps(true) {
			if c.Status != "exited" {
				s.run("rm", "-f", c.Name)
			}
		}
		// And the oci containers, which a test that stopped midway did
		// not delete.
		if _, err := os.Stat(s.ociRoot()); err == nil {
			var list []ociState
			json.Unmarshal([]byte(s.run("oci", "--root", s.ociRoot(), "list", "--format", "json").stdout), &list)
			for _, c := range list {
				s.run("oci", "--root", s.ociRoot(), "delete", "-f", c.ID)
			}
		}
	})
	return s
}

// run runs isobox with the store, as the test user.
func (s *store) run(args ...string) result {
	s.t.Helper()
	return s.runIn("", args...)
}

func (s *store) runIn(stdin string, args ...string) result {
	s.t.Helper()
	return runAsEnv(tester, s.env, strings.NewReader(stdin), append([]string{binary}, args...)...)
}

// must runs isobox and requires exit 0.
func (s *store) must(args ...string) string {
	s.t.Helper()
	r := s.run(args...)
	if r.code != 0 {
		s.t.Fatalf("isobox %s: %s", strings.Join(args, " "), r)
	}
	return r.stdout
}

type psEntry struct {
	Name     string   `json:"name"`
	PID      int      `json:"pid"`
	Status   string   `json:"status"`
	ExitCode *int     `json:"exitCode"`
	Command  []string `json:"command"`
	Image    string   `json:"image"`
	Ports    []string `json:"ports"`
	Net      string   `json:"net"`
	Uptime   float64  `json:"uptimeSeconds"`
}

func (s *store) ps(all bool) []psEntry {
	s.t.Helper()
	args := []string{"ps", "--json"}
	if all {
		args = append(args, "-a")
	}
	var out []psEntry
	if err := json.Unmarshal([]byte(s.must(args...)), &out); err != nil {
		s.t.Fatalf("ps --json: %v", err)
	}
	return out
}

func (s *store) get(name string) (psEntry, bool) {
	s.t.Helper()
	for _, c := range s.ps(true) {
		if c.Name == name {
			return c, true
		}
	}
	return psEntry{}, false
}

// record reads a container's state.json as isobox wrote it.
func (s *store) record(name string) map[string]any {
	s.t.Helper()
	b, err := os.ReadFile(filepath.Join(s.dir, name, "state.json"))
	if err != nil {
		s.t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		s.t.Fatal(err)
	}
	return m
}

func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return len(f) > 0 && f[0] != "Z"
}

// goneBy waits until pid is no longer alive, or deadline; it reports
// whether the process is gone.
func goneBy(pid int, deadline time.Time) bool {
	for alive(pid) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	return !alive(pid)
}

func TestDetachedContainerRunsListsExecsAndStops(t *testing.T) {
	s := newStore(t)
	out := s.must("run", "-d", "--name", "web", "--net", "none", rootfs, "sh", "-c", "echo started; exec sleep 1000")
	if strings.TrimSpace(out) != "web" {
		t.Fatalf("run -d printed %q, want the name", out)
	}
	c, ok := s.get("web")
	if !ok || c.Status != "running" || c.PID == 0 || !alive(c.PID) || c.Net != "none" {
		t.Fatalf("ps after run -d: %+v", c)
	}
	if strings.Join(c.Command, " ") != "sh -c echo started; exec sleep 1000" {
		t.Errorf("ps command: %q", c.Command)
	}
	table := s.must("ps")
	if !strings.Contains(table, "web") || !strings.Contains(table, strconv.Itoa(c.PID)) || !strings.Contains(table, "Up ") {
		t.Errorf("ps table:\n%s", table)
	}

	// exec: the container's namespaces, root, hostname and environment.
	got := s.must("exec", "web", "sh", "-c", "hostname; cat /proc/1/cmdline | tr '\\0' ' '; echo; ps -o args | grep -cx 'sleep 1000'; echo $PATH")
	lines := strings.Split(strings.TrimSpace(got), "\n")
	if len(lines) != 4 || lines[0] != "isobox" || !strings.HasPrefix(lines[1], "isobox:init") || lines[2] != "1" || !strings.Contains(lines[3], "/bin") {
		t.Errorf("exec saw:\n%s", got)
	}
	if r := s.run("exec", "web", "sh", "-c", "exit 7"); r.code != 7 {
		t.Errorf("exec exit status: %s", r)
	}
	if r := s.run("exec", "web", "sh", "-c", "kill -TERM $$"); r.code != 143 {
		t.Errorf("exec killed by SIGTERM: %s", r)
	}
	if r := s.run("exec", "web", "nonexistent-cmd"); r.code != 127 {
		t.Errorf("exec of a missing command: %s", r)
	}
	if got := s.must("exec", "-e", "FOO=bar", "-w", "/etc", "-u", "nobody", "web", "sh", "-c", "echo $FOO $(pwd) $(id -u)"); strings.TrimSpace(got) != "bar /etc 65534" {
		t.Errorf("exec -e -w -u: %q", got)
	}
	if got := s.runIn("hello from stdin\n", "exec", "web", "cat"); got.stdout != "hello from stdin\n" {
		t.Errorf("exec stdin: %s", got)
	}

	if got := s.must("logs", "web"); got != "started\n" {
		t.Errorf("logs: %q", got)
	}
	if out := s.must("stop", "web"); strings.TrimSpace(out) != "web" {
		t.Errorf("stop printed %q", out)
	}
	if alive(c.PID) {
		t.Errorf("PID 1 (%d) alive after stop", c.PID)
	}
	c, _ = s.get("web")
	if c.Status != "exited" || c.ExitCode == nil || *c.ExitCode != 143 {
		t.Errorf("after stop: %+v (want exited, 143)", c)
	}
	if len(s.ps(false)) != 0 {
		t.Errorf("ps without -a lists an exited container")
	}
	waitNoLeftovers(t)
	s.must("rm", "web")
	if _, ok := s.get("web"); ok {
		t.Errorf("still listed after rm")
	}
	if entries, _ := os.ReadDir(s.dir); len(entries) != 0 {
		t.Errorf("state directory not empty after rm: %v", entries)
	}
}

// Init and the holder run Go on at most two CPUs from their first
// instruction, whatever the machine's size, so that the threads they make
// are as many as the VM lane counts (userns/threads.go): GOMAXPROCS=2 is in
// their environment, and in neither the command's nor an exec's.
func TestOnlyInitAndTheHolderGetGOMAXPROCS(t *testing.T) {
	s := newStore(t)
	for _, net := range []string{"none", "gvisor"} {
		name := "cpus-" + net
		s.must("run", "-d", "--name", name, "--net", net, rootfs, "sleep", "1000")
		c, _ := s.get(name)
		procs := map[string]int{"isobox:init": c.PID}
		if net == "gvisor" {
			stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.PID))
			if f := strings.Fields(string(stat)); len(f) > 3 {
				ppid, _ := strconv.Atoi(f[3])
				procs["isobox:holder"] = ppid
			}
		}
		for want, pid := range procs {
			comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
			env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
			if strings.TrimSpace(string(comm)) != want || err != nil || string(env) != "GOMAXPROCS=2\x00" {
				t.Errorf("--net %s: %s (pid %d, %q) has environment %q (%v), want GOMAXPROCS=2 alone", net, want, pid, comm, env, err)
			}
		}
		got := s.must("exec", name, "sh", "-c", "env; tr '\\0' '\\n' < /proc/$(pidof sleep)/environ")
		if strings.Contains(got, "GOMAXPROCS") || !strings.Contains(got, "PATH=") {
			t.Errorf("--net %s: the command's or the exec's environment:\n%s", net, got)
		}
		s.must("rm", "-f", name)
	}
}

func TestStateIsPrivateToTheUser(t *testing.T) {
	s := newStore(t)
	s.must("run", "--name", "once", "--net", "none", rootfs, "true")
	for _, p := range []string{s.dir, filepath.Join(s.dir, "once")} {
		st := statT(t, p)
		if st.Mode&0o077 != 0 || st.Uid != tester.uid {
			t.Errorf("%s: mode %o uid %d: want 0700 and the caller's", p, st.Mode&0o777, st.Uid)
		}
	}
	entries, _ := os.ReadDir(filepath.Join(s.dir, "once"))
	for _, e := range entries {
		if st := statT(t, filepath.Join(s.dir, "once", e.Name())); st.Mode&0o077 != 0 {
			t.Errorf("%s: mode %o", e.Name(), st.Mode&0o777)
		}
	}
}

func TestStateFallsBackToAPrivateDirectoryInTmp(t *testing.T) {
	dir := filepath.Join(os.TempDir(), "isobox-"+strconv.Itoa(int(tester.uid)))
	// Unset, or another user's (sudo -u keeps root's): /tmp/isobox-UID.
	for _, xdg := range []string{"XDG_RUNTIME_DIR=", "XDG_RUNTIME_DIR=/"} {
		name := "fallback-" + strconv.Itoa(len(xdg))
		env := []string{xdg}
		cmd := command(tester, env, binary, "run", "--name", name, "--net", "none", rootfs, "true")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("run with %s: %v: %s", xdg, err, out)
		}
		st := statT(t, dir)
		if st.Mode&0o777 != 0o700 || st.Uid != tester.uid || st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
			t.Errorf("%s: mode %o uid %d", dir, st.Mode, st.Uid)
		}
		if _, err := os.Stat(filepath.Join(dir, name, "state.json")); err != nil {
			t.Errorf("with %s: %v", xdg, err)
		}
		if out, err := command(tester, env, binary, "rm", name).CombinedOutput(); err != nil {
			t.Errorf("rm: %v: %s", err, out)
		}
	}
}

func TestStateDirectoryOfAnotherOwnerIsRefused(t *testing.T) {
	requireRoot(t, "make a directory the test user does not own")
	rt := userDir(tester, "xdg")
	os.Chmod(rt, 0o700)
	bad := filepath.Join(rt, "isobox")
	if err := os.Mkdir(bad, 0o777); err != nil { // root's, open to all
		t.Fatal(err)
	}
	cmd := command(tester, []string{"XDG_RUNTIME_DIR=" + rt}, binary, "run", "--net", "none", rootfs, "true")
	var errb bytes.Buffer
	cmd.Stderr = &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 125 || !strings.Contains(errb.String(), "owned by uid 0") {
		t.Fatalf("want 125 naming the owner, got %v: %s", err, errb.String())
	}
	if entries, _ := os.ReadDir(bad); len(entries) != 0 {
		t.Errorf("wrote into a directory it does not own: %v", entries)
	}
}

func TestNameInUseIsRefusedEvenWhenStartedAtTheSameInstant(t *testing.T) {
	s := newStore(t)
	for round := 0; round < 5; round++ {
		name := "same" + strconv.Itoa(round)
		var wg sync.WaitGroup
		results := make([]result, 4)
		for i := range results {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i] = s.run("run", "-d", "--name", name, "--net", "none", rootfs, "sleep", "1000")
			}()
		}
		wg.Wait()
		won := 0
		for _, r := range results {
			switch {
			case r.code == 0:
				won++
			case r.code != 125 || !strings.Contains(r.stderr, "already in use"):
				t.Errorf("loser: %s", r)
			}
		}
		if won != 1 {
			t.Fatalf("%d of 4 started with one name", won)
		}
		s.must("rm", "-f", name)
	}
	// An exited container keeps its name until rm, as with podman.
	s.must("run", "--name", "kept", "--net", "none", rootfs, "true")
	if r := s.run("run", "--name", "kept", "--net", "none", rootfs, "true"); r.code != 125 {
		t.Errorf("name of an exited container reused: %s", r)
	}
	waitNoLeftovers(t)
}

func TestRmRefusesARunningContainerUnlessForced(t *testing.T) {
	s := newStore(t)
	s.must("run", "-d", "--name", "busy", "--net", "none", rootfs, "sleep", "1000")
	c, _ := s.get("busy")
	r := s.run("rm", "busy")
	if r.code != 125 || !strings.Contains(r.stderr, "running") || !alive(c.PID) {
		t.Fatalf("rm of a running container: %s", r)
	}
	s.must("rm", "-f", "busy")
	if alive(c.PID) {
		t.Errorf("PID 1 alive after rm -f")
	}
	if _, ok := s.get("busy"); ok {
		t.Errorf("listed after rm -f")
	}
	waitNoLeftovers(t)
}

func TestRmRemovesAutomaticallyWithRm(t *testing.T) {
	s := newStore(t)
	s.must("run", "--rm", "--name", "gone", "--net", "none", rootfs, "true")
	s.must("run", "-d", "--rm", "--name", "gone-d", "--net", "none", rootfs, "sleep", "1000")
	s.must("stop", "gone-d")
	if list := s.ps(true); len(list) != 0 {
		t.Errorf("--rm left records: %+v", list)
	}
}

func TestGeneratedNamesAreUniqueAndValid(t *testing.T) {
	s := newStore(t)
	seen := map[string]bool{}
	for i := 0; i < 3; i++ {
		name := strings.TrimSpace(s.must("run", "-d", "--net", "none", rootfs, "sleep", "1000"))
		if name == "" || seen[name] || strings.ContainsAny(name, "/ ") {
			t.Fatalf("generated name %q (seen %v)", name, seen)
		}
		seen[name] = true
	}
	if got := len(s.ps(false)); got != 3 {
		t.Errorf("ps lists %d, want 3", got)
	}
	for n := range seen {
		s.must("stop", "-t", "0", n)
	}
	waitNoLeftovers(t)
}

func TestKilledRunnerLeavesARecordShownAsExited(t *testing.T) {
	s := newStore(t)
	s.must("run", "-d", "--name", "orphan", "--net", "none", rootfs, "sleep", "1000")
	runner := int(s.record("orphan")["runnerPid"].(float64))
	c, _ := s.get("orphan")
	if err := syscall.Kill(runner, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitNoLeftovers(t)
	c, ok := s.get("orphan")
	if !ok || c.Status != "exited" || c.ExitCode != nil || c.PID != 0 {
		t.Fatalf("after the runner was killed: %+v", c)
	}
	if !strings.Contains(s.must("ps", "-a"), "Exited (unknown)") {
		t.Errorf("ps -a does not say the exit status is unknown")
	}
	if r := s.run("exec", "orphan", "true"); r.code != 125 || !strings.Contains(r.stderr, "not running") {
		t.Errorf("exec into it: %s", r)
	}
	if r := s.run("stop", "orphan"); r.code != 125 {
		t.Errorf("stop of it: %s", r)
	}
	s.must("rm", "orphan")
	if _, ok := s.get("orphan"); ok {
		t.Errorf("rm left it")
	}
}

// A foreground container has a record too: ps lists it, exec enters it.
func TestForegroundContainerCanBeListedAndEntered(t *testing.T) {
	s := newStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := withContext(ctx, command(tester, s.env, binary, "run", "--name", "fg", "--net", "none", rootfs, "sh", "-c", "read line; echo got $line"))
	stdin, _ := cmd.StdinPipe()
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if c, ok := s.get("fg"); ok && c.Status == "running" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("foreground container never listed as running")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := s.must("exec", "fg", "hostname"); got != "isobox\n" {
		t.Errorf("exec into a foreground container: %q", got)
	}
	fmt.Fprintln(stdin, "it")
	if err := cmd.Wait(); err != nil || out.String() != "got it\n" {
		t.Fatalf("foreground run: %v %q", err, out.String())
	}
	if c, _ := s.get("fg"); c.Status != "exited" || c.ExitCode == nil || *c.ExitCode != 0 {
		t.Errorf("after exit: %+v", c)
	}
}

func TestStopKillsAContainerThatIgnoresSIGTERMAfterTheTimeout(t *testing.T) {
	s := newStore(t)
	// As PID 1 itself (--no-init) a shell without a trap ignores SIGTERM.
	s.must("run", "-d", "--no-init", "--name", "stubborn", "--net", "none", rootfs, "sh", "-c", "while true; do sleep 1; done")
	s.must("stop", "-t", "1", "stubborn")
	c, _ := s.get("stubborn")
	if c.Status != "exited" || c.ExitCode == nil || *c.ExitCode != 137 {
		t.Errorf("after stop: %+v, want exit 137", c)
	}
	waitNoLeftovers(t)
}

func TestKillSendsTheSignalToPID1(t *testing.T) {
	s := newStore(t)
	s.must("run", "-d", "--name", "k", "--net", "none", rootfs, "sh", "-c", "trap 'echo got USR1' USR1; echo ready; while true; do sleep 0.1; done")
	waitLog(t, s, "k", "ready")
	s.must("kill", "-s", "USR1", "k")
	waitLog(t, s, "k", "got USR1")
	if c, _ := s.get("k"); c.Status != "running" {
		t.Fatalf("USR1 stopped it: %+v", c)
	}
	if r := s.run("kill", "-s", "NOSUCH", "k"); r.code != 125 {
		t.Errorf("unknown signal: %s", r)
	}
	s.must("kill", "k")
	if c, _ := s.get("k"); c.Status != "exited" || *c.ExitCode != 137 {
		t.Errorf("after kill: %+v", c)
	}
	waitNoLeftovers(t)
}

func waitLog(t *testing.T, s *store, name, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(s.must("logs", name), want) {
		if time.Now().After(deadline) {
			t.Fatalf("log of %s never had %q:\n%s", name, want, s.must("logs", name))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestExecIntoANoInitContainerIsRefusedWithTheReason(t *testing.T) {
	s := newStore(t)
	s.must("run", "-d", "--no-init", "--name", "bare", "--net", "none", rootfs, "sleep", "1000")
	r := s.run("exec", "bare", "true")
	if r.code != 125 || !strings.Contains(r.stderr, "--no-init") {
		t.Errorf("exec into --no-init: %s", r)
	}
	checkOneErrorLine(t, r)
	s.must("rm", "-f", "bare")
	waitNoLeftovers(t)
}

func TestLogsAreCappedAndFollowed(t *testing.T) {
	s := newStore(t)
	// 3 MiB of numbered lines, then a last one: more than the cap.
	s.must("run", "-d", "--name", "chatty", "--net", "none", rootfs, "sh", "-c",
		"i=0; while [ $i -lt 3000 ]; do printf '%01023d\\n' $i; i=$((i+1)); done; echo the-end")
	follow := s.must("logs", "-f", "chatty") // returns when the container is gone
	if !strings.HasSuffix(follow, "the-end\n") {
		t.Errorf("logs -f did not end with the last line: ...%q", follow[max(0, len(follow)-80):])
	}
	var total int64
	for _, f := range []string{"container.log", "container.log.1"} {
		if st, err := os.Stat(filepath.Join(s.dir, "chatty", f)); err == nil {
			total += st.Size()
		}
	}
	if total > 2<<20 || total < 1<<20 {
		t.Errorf("log files hold %d bytes, want between 1 and 2 MiB", total)
	}
	got := s.must("logs", "chatty")
	if int64(len(got)) != total || !strings.HasSuffix(got, "the-end\n") {
		t.Errorf("logs printed %d bytes of %d", len(got), total)
	}
	if r := s.run("run", "--name", "fg", "--net", "none", rootfs, "true"); r.code != 0 {
		t.Fatal(r)
	}
	if r := s.run("logs", "fg"); r.code != 125 || !strings.Contains(r.stderr, "-d") {
		t.Errorf("logs of a foreground container: %s", r)
	}
}

func TestExecWithTTYGetsATerminalOfTheContainer(t *testing.T) {
	s := newStore(t)
	s.must("run", "-d", "--name", "term", "--net", "none", rootfs, "sleep", "1000")
	p := openTestPTY(t)
	p.setSize(t, 33, 77)
	cmd := command(tester, append(s.env, "TERM=xterm-exec"), binary, "exec", "-t", "term", "/bin/sh", "-c", "tty; stty size; echo $TERM")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = p.slave, p.slave, p.slave
	out := strings.ReplaceAll(runOnPTY(t, cmd, p), "\r", "")
	if !strings.Contains(out, "/dev/pts/") || !strings.Contains(out, "33 77") || !strings.Contains(out, "xterm-exec") {
		t.Errorf("exec -t:\n%s", out)
	}
	s.must("rm", "-f", "term")
}

func TestPsShowsPublishedPorts(t *testing.T) {
	s := newStore(t)
	port := freePort(t, "tcp")
	s.must("run", "-d", "--name", "pub", "-p", fmt.Sprintf("%d:80", port), rootfs, "sleep", "1000")
	c, _ := s.get("pub")
	want := fmt.Sprintf("127.0.0.1:%d->80/tcp", port)
	if len(c.Ports) != 1 || c.Ports[0] != want || (c.Net != "slirp" && c.Net != "gvisor") {
		t.Errorf("ps: %+v, want port %s", c, want)
	}
	if !strings.Contains(s.must("ps"), want) {
		t.Errorf("ps table lacks %s", want)
	}
	s.must("stop", "pub")
	waitNoLeftovers(t, "slirp4netns", "isobox-gvisor")
}

// lsnsEntry is one namespace as util-linux's lsns --json prints it.
type lsnsEntry struct {
	NS      json.Number `json:"ns"`
	Type    string      `json:"type"`
	NProcs  json.Number `json:"nprocs"`
	PID     json.Number `json:"pid"`
	Command string      `json:"command"`
	// lsns nests namespaces under their parents in its JSON.
	Children []lsnsEntry `json:"children"`
}

func flattenLsns(es []lsnsEntry, into map[string]lsnsEntry) {
	for _, e := range es {
		into[e.NS.String()] = e
		flattenLsns(e.Children, into)
	}
}

func TestNsCountsWhatLsnsCounts(t *testing.T) {
	lsns := requireBinary(t, "lsns")
	s := newStore(t)
	s.must("run", "-d", "--name", "nsx", "--net", "none", rootfs, "sleep", "1000")
	var ours []struct {
		Container string `json:"container"`
		NS        uint64 `json:"ns"`
		Type      string `json:"type"`
		NProcs    int    `json:"nprocs"`
		PID       int    `json:"pid"`
		Command   string `json:"command"`
	}
	if err := json.Unmarshal([]byte(s.must("ns", "--json", "nsx")), &ours); err != nil {
		t.Fatal(err)
	}
	r := runAs(tester, nil, lsns, "--json", "--output", "NS,TYPE,NPROCS,PID,COMMAND")
	if r.code != 0 {
		t.Fatalf("lsns: %s", r)
	}
	var theirs struct {
		Namespaces []lsnsEntry `json:"namespaces"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &theirs); err != nil {
		t.Fatalf("lsns --json: %v\n%s", err, r.stdout)
	}
	byNS := map[string]lsnsEntry{}
	flattenLsns(theirs.Namespaces, byNS)
	want := []string{"user", "mnt", "pid", "uts", "ipc", "net", "cgroup", "time"}
	if len(ours) != len(want) {
		t.Fatalf("isobox ns listed %d namespaces, want %d: %+v", len(ours), len(want), ours)
	}
	for i, n := range ours {
		if n.Type != want[i] || n.Container != "nsx" {
			t.Errorf("line %d: %+v, want type %s", i, n, want[i])
		}
		l, ok := byNS[strconv.FormatUint(n.NS, 10)]
		if !ok {
			t.Errorf("%s namespace %d: lsns does not list it", n.Type, n.NS)
			continue
		}
		if l.Type != n.Type || l.NProcs.String() != strconv.Itoa(n.NProcs) || l.PID.String() != strconv.Itoa(n.PID) {
			t.Errorf("%s namespace %d: isobox %d procs, lowest PID %d; lsns %s procs, PID %s", n.Type, n.NS, n.NProcs, n.PID, l.NProcs, l.PID)
		}
		if !strings.Contains(l.Command, n.Command) && !strings.Contains(n.Command, strings.TrimLeft(l.Command, "|`- ")) {
			t.Errorf("%s namespace: command %q, lsns %q", n.Type, n.Command, l.Command)
		}
	}
	if all := s.must("ns"); !strings.Contains(all, "nsx") || strings.Count(all, "\n") != len(want)+1 {
		t.Errorf("ns without a name:\n%s", all)
	}
	s.must("stop", "nsx")
}

func TestContainerCommandsRefuseBadInput(t *testing.T) {
	s := newStore(t)
	s.must("run", "--name", "done", "--net", "none", rootfs, "true")
	long := strings.Repeat("a", 129)
	cases := [][]string{
		{"run", "--name", "-bad", rootfs, "true"},
		{"run", "--name", "a/b", rootfs, "true"},
		{"run", "--name", long, rootfs, "true"},
		{"run", "--name", "done", rootfs, "true"},
		{"exec", "nosuch", "true"},
		{"exec", "a/b", "true"},
		{"exec", "done", "true"},
		{"exec", "-w", "rel", "done", "true"},
		{"stop", "nosuch"},
		{"stop", "done"},
		{"stop", long},
		{"kill", "done"},
		{"kill", "-s", "SIGNOPE", "done"},
		{"rm", "nosuch"},
		{"rm", "../x"},
		{"logs", "nosuch"},
		{"ns", "done"},
		{"ns", "nosuch"},
	}
	before := snapshot(t, s.dir)
	for _, args := range cases {
		r := s.run(args...)
		if r.code != 125 {
			t.Errorf("isobox %s: want 125: %s", strings.Join(args, " "), r)
			continue
		}
		checkOneErrorLine(t, r)
	}
	if after := snapshot(t, s.dir); after != before {
		t.Errorf("bad input changed the state directory:\n%s\n---\n%s", before, after)
	}
}

// Load: many containers at once, each accounted for.
func TestTwentyDetachedContainersAtOnce(t *testing.T) {
	s := newStore(t)
	const n = 20
	var wg sync.WaitGroup
	results := make([]result, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = s.run("run", "-d", "--name", fmt.Sprintf("load%02d", i), "--net", "none", rootfs, "sleep", "1000")
		}()
	}
	wg.Wait()
	for i, r := range results {
		if r.code != 0 {
			t.Errorf("container %d: %s", i, r)
		}
	}
	list := s.ps(false)
	if len(list) != n {
		t.Fatalf("ps lists %d running, want %d", len(list), n)
	}
	for _, c := range list {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := s.run("exec", c.Name, "hostname"); r.code != 0 || r.stdout != "isobox\n" {
				t.Errorf("exec %s: %s", c.Name, r)
			}
		}()
	}
	wg.Wait()
	names := []string{"stop", "-t", "2"}
	for _, c := range list {
		names = append(names, c.Name)
	}
	s.must(names...)
	for _, c := range s.ps(true) {
		if c.Status != "exited" || c.ExitCode == nil || *c.ExitCode != 143 {
			t.Errorf("%s after stop: %+v", c.Name, c)
		}
		if alive(c.PID) {
			t.Errorf("%s: PID alive", c.Name)
		}
	}
	waitNoLeftovers(t)
}

// On a host without a delegated cgroup v2 (this one), a container has no
// numbers of its own: stats says so in one line, with the fix as the hint.
func TestStatsWithoutADelegatedCgroupSaysWhy(t *testing.T) {
	s := newStore(t)
	s.must("run", "-d", "--name", "idle", "--net", "none", rootfs, "sleep", "1000")
	defer s.run("rm", "-f", "idle")
	for _, args := range [][]string{{"stats", "--no-stream", "idle"}, {"stats", "--no-stream"}} {
		r := s.run(args...)
		if r.code != 125 || !strings.Contains(r.stderr, "no cgroup of its own") || !strings.Contains(r.stderr, "isobox: hint: run isobox under `systemd-run --user --scope -p Delegate=yes`") {
			t.Errorf("isobox %s: %s", strings.Join(args, " "), r)
		}
		checkOneErrorLine(t, r)
	}
	if r := s.run("stats", "--no-stream", "--json", "nosuch"); r.code != 125 || !strings.Contains(r.stderr, "nosuch") {
		t.Errorf("stats of an unknown container: %s", r)
	}
}
