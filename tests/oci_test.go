package tests

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// bundle makes an OCI bundle of the test rootfs with `isobox oci spec`,
// as a user would with runc spec, and edits its process.
func bundle(t *testing.T, s *store, rootless bool, edit func(map[string]any)) string {
	t.Helper()
	dir := userDir(tester, "bundle")
	if r := runAs(tester, nil, "cp", "-a", rootfs, filepath.Join(dir, "rootfs")); r.code != 0 {
		t.Fatal(r)
	}
	args := []string{"oci", "spec", "-b", dir}
	if rootless {
		args = append(args, "--rootless")
	}
	s.must(args...)
	editConfig(t, dir, edit)
	return dir
}

// editConfig edits the config.json of the bundle in dir.
func editConfig(t *testing.T, dir string, edit func(map[string]any)) {
	t.Helper()
	p := filepath.Join(dir, "config.json")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(cfg)
	}
	b, _ = json.Marshal(cfg)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func setArgs(args ...string) func(map[string]any) {
	return func(c map[string]any) {
		c["process"].(map[string]any)["args"] = args
		c["hostname"] = "bundled"
	}
}

type ociState struct {
	ID     string `json:"id"`
	Pid    int    `json:"pid"`
	Status string `json:"status"`
	Bundle string `json:"bundle"`
}

func (s *store) ociState(id string) (ociState, result) {
	s.t.Helper()
	r := s.run("oci", "--root", s.ociRoot(), "state", id)
	var st ociState
	if r.code == 0 {
		if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
			s.t.Fatalf("oci state: %v\n%s", err, r)
		}
	}
	return st, r
}

// ociDetached runs an oci command that leaves the container running with
// the command's own standard streams (create, run -d), as runc's detached
// containers have them: into files, which the container keeps, not pipes a
// caller would read until the container exits. It returns what the
// command printed and the files, which get the container's output.
func (s *store) ociDetached(args ...string) (r result, stdout, stderr string) {
	s.t.Helper()
	dir := userDir(tester, "stdio")
	stdout, stderr = filepath.Join(dir, "stdout"), filepath.Join(dir, "stderr")
	out, err1 := os.Create(stdout)
	errf, err2 := os.Create(stderr)
	if err1 != nil || err2 != nil {
		s.t.Fatal(err1, err2)
	}
	defer out.Close()
	defer errf.Close()
	cmd := command(tester, s.env, append([]string{binary}, args...)...)
	cmd.Stdout, cmd.Stderr = out, errf
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		s.t.Fatal(err)
	}
	b, _ := os.ReadFile(stdout)
	e, _ := os.ReadFile(stderr)
	r.stdout, r.stderr = string(b), string(e)
	if r.code != 0 {
		s.t.Fatalf("isobox %s: %s", strings.Join(args, " "), r)
	}
	return r, stdout, stderr
}

// waitStopped waits until the container's state says stopped.
func (s *store) waitStopped(id string) {
	s.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if st, _ := s.ociState(id); st.Status == "stopped" {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s is not stopped", id)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *store) ociRoot() string {
	return filepath.Join(envValue(s.env, "XDG_RUNTIME_DIR"), "oci-root")
}

func TestOciRunOfARuncRootlessBundle(t *testing.T) {
	s := newStore(t)
	dir := bundle(t, s, true, setArgs("sh", "-c", "hostname; id -u; cat /proc/self/uid_map | wc -l; exit 3"))
	root := s.ociRoot()
	// Flags after the positional arguments, as Slurm's examples write them.
	r := s.run("oci", "--root", root, "run", "one", "-b", dir)
	if r.code != 3 || r.stdout != "bundled\n0\n1\n" {
		t.Fatalf("oci run: %s", r)
	}
	// The container is removed at exit, and nothing is left in the bundle.
	if _, r := s.ociState("one"); r.code != 1 || !strings.Contains(r.stderr, "does not exist") || r.stdout != "" {
		t.Errorf("state after run: %s", r)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("the bundle holds %v", entries)
	}
	// Through a link named isobox-oci, with a full mapping of the
	// subordinate range.
	if tester.subStart != 0 {
		link := filepath.Join(userDir(tester, "link"), "isobox-oci")
		if err := os.Symlink(binary, link); err != nil {
			t.Fatal(err)
		}
		full := bundle(t, s, false, func(c map[string]any) {
			setArgs("sh", "-c", "cat /proc/self/uid_map | wc -l; stat -c %u /proc/self")(c)
			lx := c["linux"].(map[string]any)
			lx["namespaces"] = append(lx["namespaces"].([]any), map[string]any{"type": "user"})
			lx["uidMappings"] = []any{map[string]any{"containerID": 0, "hostID": tester.uid, "size": 1}, map[string]any{"containerID": 1, "hostID": tester.subStart, "size": 65536}}
			lx["gidMappings"] = []any{map[string]any{"containerID": 0, "hostID": tester.gid, "size": 1}, map[string]any{"containerID": 1, "hostID": tester.subStart, "size": 65536}}
		})
		r := runAs(tester, nil, link, "--root", root, "run", "-b", full, "two")
		if r.code != 0 || !strings.HasPrefix(r.stdout, "2\n") {
			t.Errorf("isobox-oci run of a fully mapped bundle: %s", r)
		}
		// The maps as the bundle gives them, a part of the range; one
		// outside the caller's ranges is refused with one line.
		maps := func(sub uint32) func(map[string]any) {
			return func(c map[string]any) {
				setArgs("sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map | tr -s ' ' | sed 's/^ //'")(c)
				lx := c["linux"].(map[string]any)
				lx["namespaces"] = append(lx["namespaces"].([]any), map[string]any{"type": "user"})
				lx["uidMappings"] = []any{map[string]any{"containerID": 0, "hostID": tester.uid, "size": 1}, map[string]any{"containerID": 1, "hostID": sub, "size": 100}}
				lx["gidMappings"] = []any{map[string]any{"containerID": 0, "hostID": tester.gid, "size": 1}, map[string]any{"containerID": 1, "hostID": sub, "size": 100}}
			}
		}
		part := bundle(t, s, false, maps(tester.subStart+10))
		want := fmt.Sprintf("0 %d 1\n1 %d 100\n0 %d 1\n1 %d 100\n", tester.uid, tester.subStart+10, tester.gid, tester.subStart+10)
		if r := s.run("oci", "--root", root, "run", "-b", part, "three"); r.code != 0 || r.stdout != want {
			t.Errorf("the bundle's own maps: %s\nwant:\n%s", r, want)
		}
		outside := bundle(t, s, false, maps(tester.subStart-1000))
		if r := s.run("oci", "--root", root, "run", "-b", outside, "four"); r.code != 1 || !strings.Contains(r.stderr, "subordinate ranges") || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("maps outside the caller's ranges: %s", r)
		}
	}
}

func TestOciDetachedStateKillDelete(t *testing.T) {
	s := newStore(t)
	dir := bundle(t, s, true, setArgs("sh", "-c", "trap 'exit 0' TERM; sleep 1000 & wait"))
	root := s.ociRoot()
	pidFile := filepath.Join(envValue(s.env, "XDG_RUNTIME_DIR"), "pid")
	s.ociDetached("oci", "--root", root, "run", "-d", "--pid-file", pidFile, "-b", dir, "bg")
	st, r := s.ociState("bg")
	if r.code != 0 || st.Status != "running" || st.Pid == 0 || st.Bundle != dir {
		t.Fatalf("state: %+v %s", st, r)
	}
	if r.stderr != "" {
		t.Errorf("state wrote on stderr (Slurm parses both as JSON): %q", r.stderr)
	}
	if b, _ := os.ReadFile(pidFile); string(b) != strconv.Itoa(st.Pid) {
		t.Errorf("--pid-file: %q, want %d", b, st.Pid)
	}
	var list []ociState
	json.Unmarshal([]byte(s.must("oci", "--root", root, "list", "--format", "json")), &list)
	if len(list) != 1 || list[0].ID != "bg" {
		t.Errorf("list: %+v", list)
	}
	var pids []int
	json.Unmarshal([]byte(s.must("oci", "--root", root, "ps", "--format", "json", "bg")), &pids)
	if len(pids) < 2 || pids[0] != st.Pid {
		t.Errorf("ps: %v (init %d)", pids, st.Pid)
	}
	if r := s.run("oci", "--root", root, "delete", "bg"); r.code != 1 || !strings.Contains(r.stderr, "running") {
		t.Errorf("delete of a running container: %s", r)
	}
	// kill -a reaches every process of the container, without cgroups.
	s.must("oci", "--root", root, "kill", "-a", "bg", "KILL")
	s.waitStopped("bg")
	for _, p := range pids {
		if alive(p) {
			t.Errorf("PID %d survived kill -a", p)
		}
	}
	s.must("oci", "--root", root, "delete", "bg")
	if _, r := s.ociState("bg"); r.code != 1 {
		t.Errorf("state after delete: %s", r)
	}
}

func TestOciBadBundlesAreOneLineAndExitOne(t *testing.T) {
	s := newStore(t)
	root := s.ociRoot()
	good := bundle(t, s, true, setArgs("true"))
	for name, c := range map[string]struct {
		edit func(map[string]any)
		want string
	}{
		"no args":      {func(c map[string]any) { c["process"].(map[string]any)["args"] = []string{} }, "process.args"},
		"spec 2":       {func(c map[string]any) { c["ociVersion"] = "2.0.0" }, "ociVersion"},
		"relative cwd": {func(c map[string]any) { c["process"].(map[string]any)["cwd"] = "tmp" }, "process.cwd"},
		"wrong type":   {func(c map[string]any) { c["process"].(map[string]any)["args"] = "sh" }, "process.args"},
		"relative hook": {func(c map[string]any) {
			c["hooks"] = map[string]any{"prestart": []any{map[string]any{"path": "true"}}}
		}, "hooks.prestart[0].path"},
		"hook timeout": {func(c map[string]any) {
			c["hooks"] = map[string]any{"poststop": []any{map[string]any{"path": "/bin/true", "timeout": 0}}}
		}, "hooks.poststop[0].timeout"},
		"join a netns": {func(c map[string]any) {
			c["linux"].(map[string]any)["namespaces"] = []any{map[string]any{"type": "network", "path": "/proc/1/ns/net"}}
		}, "/proc/1/ns/net"},
		"no root": {func(c map[string]any) { delete(c, "root") }, "root.path"},
		"proc elsewhere": {func(c map[string]any) {
			c["mounts"] = []any{map[string]any{"destination": "/mnt", "type": "proc", "source": "proc"}}
		}, "mounts[0]"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := bundle(t, s, true, c.edit)
			r := s.run("oci", "--root", root, "run", "-b", dir, "bad")
			if r.code != 1 || !strings.HasPrefix(r.stderr, "isobox: ") || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 || !strings.Contains(r.stderr, c.want) {
				t.Errorf("want exit 1 and one isobox: line naming %s: %s", c.want, r)
			}
			if _, r := s.ociState("bad"); r.code != 1 {
				t.Errorf("a refused bundle left a container: %s", r)
			}
		})
	}
	for _, id := range []string{"../x", "a/b", ""} {
		if r := s.run("oci", "--root", root, "run", "-b", good, id); r.code != 1 || !strings.HasPrefix(r.stderr, "isobox: ") {
			t.Errorf("ID %q: %s", id, r)
		}
	}
	if r := s.run("oci", "--root", root, "run", "-b", filepath.Join(good, "nothing"), "x"); r.code != 1 || !strings.Contains(r.stderr, "config.json") {
		t.Errorf("missing config.json: %s", r)
	}
	// A root someone else owns is refused.
	if asRoot {
		if r := s.run("oci", "--root", "/root", "list"); r.code != 1 || !strings.HasPrefix(r.stderr, "isobox: ") {
			t.Errorf("another user's --root: %s", r)
		}
	}
}

func TestOciCreateStopsBeforeTheCommandAndStartRunsIt(t *testing.T) {
	s := newStore(t)
	dir := bundle(t, s, true, func(c map[string]any) {
		setArgs("sh", "-c", "echo ran > /tmp/ran; exec sleep 1000")(c)
		c["root"].(map[string]any)["readonly"] = false
	})
	root := s.ociRoot()
	pidFile := filepath.Join(envValue(s.env, "XDG_RUNTIME_DIR"), "created.pid")
	s.ociDetached("oci", "--root", root, "create", "--pid-file", pidFile, "-b", dir, "gated")
	st, _ := s.ociState("gated")
	if st.Status != "created" || st.Pid == 0 {
		t.Fatalf("after create: %+v", st)
	}
	if b, _ := os.ReadFile(pidFile); string(b) != strconv.Itoa(st.Pid) {
		t.Errorf("--pid-file %q, state's pid %d", b, st.Pid)
	}
	marker := filepath.Join(dir, "rootfs", "tmp", "ran")
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the command ran before start")
	}
	s.must("oci", "--root", root, "start", "gated")
	if st, _ := s.ociState("gated"); st.Status != "running" {
		t.Errorf("after start: %+v", st)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("start returned before the command ran: %v", err)
	}
	if r := s.run("oci", "--root", root, "start", "gated"); r.code != 1 || !strings.Contains(r.stderr, "created") {
		t.Errorf("start of a running container: %s", r)
	}
	s.must("oci", "--root", root, "delete", "-f", "gated")

	// Killed while created, it stays, stopped, until deleted.
	s.ociDetached("oci", "--root", root, "create", "-b", dir, "never")
	s.must("oci", "--root", root, "kill", "never", "KILL")
	s.waitStopped("never")
	if r := s.run("oci", "--root", root, "start", "never"); r.code != 1 {
		t.Errorf("start of a stopped container: %s", r)
	}
	s.must("oci", "--root", root, "delete", "never")

	// A bundle without process: create sets it all up, start fails (as
	// runtime-spec requires) and leaves it stopped for delete; run refuses.
	none := bundle(t, s, true, func(c map[string]any) { delete(c, "process") })
	s.ociDetached("oci", "--root", root, "create", "-b", none, "noproc")
	if st, _ := s.ociState("noproc"); st.Status != "created" {
		t.Errorf("created without process: %+v", st)
	}
	if r := s.run("oci", "--root", root, "start", "noproc"); r.code != 1 || !strings.Contains(r.stderr, "no process") {
		t.Errorf("start without process: %s", r)
	}
	s.waitStopped("noproc")
	s.must("oci", "--root", root, "delete", "noproc")
	if r := s.run("oci", "--root", root, "run", "-b", none, "noproc"); r.code != 1 || !strings.Contains(r.stderr, "process: missing") {
		t.Errorf("run without process: %s", r)
	}
}

func TestOciExecArgsAndProcessJSON(t *testing.T) {
	s := newStore(t)
	dir := bundle(t, s, true, setArgs("sleep", "1000"))
	root := s.ociRoot()
	s.ociDetached("oci", "--root", root, "run", "-d", "-b", dir, "exe")
	if r := s.run("oci", "--root", root, "exec", "-e", "X=1", "--cwd", "/tmp", "exe", "sh", "-c", "echo $X $(pwd); exit 4"); r.code != 4 || r.stdout != "1 /tmp\n" {
		t.Errorf("oci exec: %s", r)
	}
	proc := filepath.Join(userDir(tester, "proc"), "process.json")
	os.WriteFile(proc, []byte(`{"args": ["sh", "-c", "id -u; echo $Y"], "env": ["Y=from-json"], "cwd": "/", "user": {"uid": 0, "gid": 0}}`), 0o644)
	if r := s.run("oci", "--root", root, "exec", "--process", proc, "exe"); r.code != 0 || r.stdout != "0\nfrom-json\n" {
		t.Errorf("oci exec --process: %s", r)
	}
	if r := s.run("oci", "--root", root, "exec", "nope", "true"); r.code != 1 || !strings.Contains(r.stderr, "does not exist") {
		t.Errorf("exec into an unknown container: %s", r)
	}
	s.must("oci", "--root", root, "delete", "-f", "exe")
}

func TestOciBundlesOwnSeccompProfileAndBadCommandLine(t *testing.T) {
	s := newStore(t)
	dir := bundle(t, s, true, func(c map[string]any) {
		setArgs("sh", "-c", "mkdir /tmp/x 2>&1; echo after")(c)
		c["root"].(map[string]any)["readonly"] = false
		c["linux"].(map[string]any)["seccomp"] = map[string]any{
			"defaultAction": "SCMP_ACT_ALLOW",
			"syscalls":      []any{map[string]any{"names": []string{"mkdir", "mkdirat"}, "action": "SCMP_ACT_ERRNO"}},
		}
	})
	r := s.run("oci", "--root", s.ociRoot(), "run", "-b", dir, "filtered")
	if r.code != 0 || !strings.Contains(r.stdout, "Operation not permitted") || !strings.HasSuffix(r.stdout, "after\n") {
		t.Errorf("the bundle's own filter did not refuse mkdir: %s", r)
	}
	if r := s.run("oci", "state"); r.code != 1 || !strings.HasPrefix(r.stderr, "isobox: ") {
		t.Errorf("oci state without an ID: %s", r)
	}
}

func TestOciCreatedContainerWritesToCreatesOwnStdio(t *testing.T) {
	s := newStore(t)
	dir := bundle(t, s, true, setArgs("sh", "-c", "echo to-stdout; echo to-stderr >&2"))
	root := s.ociRoot()
	r, stdout, stderr := s.ociDetached("oci", "--root", root, "create", "-b", dir, "piped")
	if r.stdout != "" || r.stderr != "" {
		t.Errorf("create printed: %s", r)
	}
	s.must("oci", "--root", root, "start", "piped")
	s.waitStopped("piped")
	out, _ := os.ReadFile(stdout)
	errb, _ := os.ReadFile(stderr)
	if string(out) != "to-stdout\n" || string(errb) != "to-stderr\n" {
		t.Errorf("the container's output, in create's files: %q %q", out, errb)
	}
	s.must("oci", "--root", root, "delete", "piped")
}

func TestOciProcessLimitsCapabilitiesSysctlAndPropagationApplyInside(t *testing.T) {
	s := newStore(t)
	dir := bundle(t, s, true, func(c map[string]any) {
		setArgs("sh", "-c", "ulimit -n; ulimit -Hn; cat /proc/self/oom_score_adj; grep -E 'Cap(Inh|Amb)' /proc/self/status; "+
			"cat /proc/sys/net/ipv4/ip_forward; grep ' /shared ' /proc/self/mountinfo | grep -c shared:")(c)
		p := c["process"].(map[string]any)
		p["rlimits"] = []any{map[string]any{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 768}}
		p["oomScoreAdj"] = 500
		caps := p["capabilities"].(map[string]any)
		caps["inheritable"] = []string{"CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SYS_ADMIN"}
		caps["ambient"] = []string{"CAP_KILL"}
		lx := c["linux"].(map[string]any)
		lx["sysctl"] = map[string]string{"net.ipv4.ip_forward": "1"}
		lx["namespaces"] = append(lx["namespaces"].([]any), map[string]any{"type": "network"})
		c["mounts"] = append(c["mounts"].([]any), map[string]any{"destination": "/shared", "type": "tmpfs", "source": "tmpfs", "options": []string{"rshared", "strictatime"}})
	})
	r := s.run("oci", "--root", s.ociRoot(), "run", "-b", dir, "limited")
	// CAP_KILL is bit 5, CAP_NET_BIND_SERVICE bit 10; CAP_SYS_ADMIN is not
	// in the bounding set of runc spec --rootless, so not inheritable either.
	want := "512\n768\n500\nCapInh:\t0000000000000420\nCapAmb:\t0000000000000020\n1\n1\n"
	if r.code != 0 || r.stdout != want {
		t.Errorf("inside: %s\nwant:\n%s", r, want)
	}

	// A hard limit above the caller's cannot be had rootless: one line,
	// exit 1, nothing left.
	over := bundle(t, s, true, func(c map[string]any) {
		c["process"].(map[string]any)["rlimits"] = []any{map[string]any{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": uint64(1) << 40}}
	})
	r = s.run("oci", "--root", s.ociRoot(), "run", "-b", over, "over")
	if r.code != 1 || !strings.Contains(r.stderr, "RLIMIT_NOFILE") || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("a hard limit above the caller's: %s", r)
	}
	if _, r := s.ociState("over"); r.code != 1 {
		t.Errorf("left behind: %s", r)
	}

	// Supplementary groups, with the subordinate ranges mapped.
	if tester.subStart != 0 {
		full := bundle(t, s, false, func(c map[string]any) {
			setArgs("id", "-G")(c)
			c["process"].(map[string]any)["user"] = map[string]any{"uid": 0, "gid": 0, "additionalGids": []int{5, 7}}
		})
		if r := s.run("oci", "--root", s.ociRoot(), "run", "-b", full, "groups"); r.code != 0 || r.stdout != "0 5 7\n" {
			t.Errorf("additionalGids: %s", r)
		}
	}
}

// hookScript writes a hook that appends its name and the status and id of
// the state on its stdin to log.
func hookScript(t *testing.T, dir, name, log string) string {
	t.Helper()
	p := filepath.Join(dir, name+".sh")
	script := fmt.Sprintf("#!/bin/sh\nstate=$(cat)\nstatus=${state#*\\\"status\\\":\\\"}\nid=${state#*\\\"id\\\":\\\"}\necho %s ${status%%%%\\\"*} ${id%%%%\\\"*} >> %s\n", name, log)
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestOciHooksRunInLifecycleOrderWithTheState(t *testing.T) {
	s := newStore(t)
	hooksDir := userDir(tester, "hooks")
	log := filepath.Join(hooksDir, "log")
	os.WriteFile(log, nil, 0o666)
	os.Chmod(log, 0o666)
	hook := func(name string) map[string]any {
		return map[string]any{"path": hookScript(t, hooksDir, name, log), "timeout": 5}
	}
	dir := bundle(t, s, true, func(c map[string]any) {
		setArgs("sh", "-c", "cat /started; echo command >> /started")(c)
		c["root"].(map[string]any)["readonly"] = false
		c["hooks"] = map[string]any{
			"prestart": []any{hook("prestart")}, "createRuntime": []any{hook("createRuntime")},
			"createContainer": []any{hook("createContainer")},
			// Inside the container: its path is the container's.
			"startContainer": []any{map[string]any{"path": "/bin/sh", "args": []string{"sh", "-c", "echo startContainer > /started"}}},
			"poststart":      []any{hook("poststart")}, "poststop": []any{hook("poststop")},
		}
	})
	root := s.ociRoot()
	_, _, stderr := s.ociDetached("oci", "--root", root, "create", "-b", dir, "hooked")
	s.must("oci", "--root", root, "start", "hooked")
	s.waitStopped("hooked")
	s.must("oci", "--root", root, "delete", "hooked")
	b, _ := os.ReadFile(log)
	want := "prestart creating hooked\ncreateRuntime creating hooked\ncreateContainer creating hooked\npoststart running hooked\npoststop stopped hooked\n"
	if string(b) != want {
		t.Errorf("hooks ran:\n%s\nwant:\n%s", b, want)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "rootfs", "started")); string(b) != "startContainer\ncommand\n" {
		e, _ := os.ReadFile(stderr)
		t.Errorf("startContainer, in the container before the command: %q (its stderr: %s)", b, e)
	}

	// features says so, as runc's does.
	var f struct{ Hooks []string }
	if err := json.Unmarshal([]byte(s.must("oci", "features")), &f); err != nil || strings.Join(f.Hooks, " ") != "prestart createRuntime createContainer startContainer poststart poststop" {
		t.Errorf("oci features' hooks: %v %v", f.Hooks, err)
	}

	// A hook that fails, or outlives its timeout, ends the start: one line,
	// exit 1, no container.
	for name, h := range map[string]map[string]any{
		"exit status 1": {"path": "/bin/false"},
		"timed out":     {"path": "/bin/sleep", "args": []string{"sleep", "30"}, "timeout": 1},
	} {
		bad := bundle(t, s, true, func(c map[string]any) {
			c["hooks"] = map[string]any{"createRuntime": []any{h}}
		})
		r := s.run("oci", "--root", root, "run", "-b", bad, "badhook")
		if r.code != 1 || !strings.Contains(r.stderr, "hooks.createRuntime[0]") || !strings.Contains(r.stderr, name) || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("%s: %s", name, r)
		}
		if _, r := s.ociState("badhook"); r.code != 1 {
			t.Errorf("%s: left behind: %s", name, r)
		}
	}
}

// consoleReceiver listens where --console-socket points, as runc's
// recvtty does, and hands over each terminal master it is sent.
func consoleReceiver(t *testing.T) (path string, masters <-chan *os.File) {
	t.Helper()
	path = filepath.Join(userDir(tester, "console"), "console.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, 0o777)
	t.Cleanup(func() { l.Close() })
	ch := make(chan *os.File, 4)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			uc := c.(*net.UnixConn)
			name, oob := make([]byte, 4096), make([]byte, unix.CmsgSpace(4))
			n, oobn, _, _, err := uc.ReadMsgUnix(name, oob)
			c.Close()
			if err != nil {
				continue
			}
			msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
			if len(msgs) == 1 {
				if fds, err := unix.ParseUnixRights(&msgs[0]); err == nil && len(fds) == 1 {
					ch <- os.NewFile(uintptr(fds[0]), string(name[:n]))
				}
			}
		}
	}()
	return path, ch
}

// readUntil reads the terminal until want appears (or fails the test).
func readUntil(t *testing.T, f *os.File, want string) string {
	t.Helper()
	var got []byte
	buf := make([]byte, 256)
	f.SetReadDeadline(time.Now().Add(10 * time.Second))
	for !strings.Contains(string(got), want) {
		n, err := f.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			t.Fatalf("terminal: %q before %v, want %q", got, err, want)
		}
	}
	return string(got)
}

func TestOciConsoleSocketGetsTheTerminalAtCreateAndExec(t *testing.T) {
	s := newStore(t)
	sock, masters := consoleReceiver(t)
	dir := bundle(t, s, true, func(c map[string]any) {
		setArgs("sh", "-c", "tty; read x; echo got-$x; exec sleep 1000")(c)
		c["process"].(map[string]any)["terminal"] = true
	})
	root := s.ociRoot()
	s.ociDetached("oci", "--root", root, "create", "--console-socket", sock, "-b", dir, "tty")
	// Sent before create returned, as containerd's shim waits for it then.
	var m *os.File
	select {
	case m = <-masters:
	default:
		t.Fatal("create returned without sending the terminal")
	}
	defer m.Close()
	if !strings.HasPrefix(m.Name(), "/dev/pts/") {
		t.Errorf("the terminal's name: %q", m.Name())
	}
	s.must("oci", "--root", root, "start", "tty")
	readUntil(t, m, "/dev/pts/0")
	m.Write([]byte("yes\n"))
	readUntil(t, m, "got-yes")

	// exec -t: its own terminal, to the socket too; the exit status is exec's.
	done := make(chan result, 1)
	go func() {
		done <- s.run("oci", "--root", root, "exec", "-t", "--console-socket", sock, "tty", "sh", "-c", "echo exec-on-$(tty); exit 3")
	}()
	select {
	case em := <-masters:
		readUntil(t, em, "exec-on-/dev/pts/1")
		// Open until the process is gone: closing a terminal's master
		// hangs up its session (SIGHUP).
		if r := <-done; r.code != 3 {
			t.Errorf("exec -t --console-socket: %s", r)
		}
		em.Close()
	case <-time.After(10 * time.Second):
		t.Fatal("exec -t sent no terminal")
	}

	// exec -d returns at once, the process running; --pid-file has the
	// PID of its watcher on the host.
	pidFile := filepath.Join(envValue(s.env, "XDG_RUNTIME_DIR"), "exec.pid")
	s.ociDetached("oci", "--root", root, "exec", "-d", "--pid-file", pidFile, "tty", "sleep", "999")
	b, _ := os.ReadFile(pidFile)
	if cmd, err := os.ReadFile("/proc/" + string(b) + "/cmdline"); err != nil || string(cmd) != "isobox:watcher\x00" {
		t.Errorf("exec -d --pid-file %q: %q %v", b, cmd, err)
	}
	s.must("oci", "--root", root, "delete", "-f", "tty")

	// A detached terminal needs the socket; a socket needs the terminal.
	if r := s.run("oci", "--root", root, "create", "-b", dir, "notty"); r.code != 1 || !strings.Contains(r.stderr, "--console-socket") {
		t.Errorf("create of a terminal bundle without --console-socket: %s", r)
	}
	plain := bundle(t, s, true, setArgs("true"))
	if r := s.run("oci", "--root", root, "run", "--console-socket", sock, "-b", plain, "nosock"); r.code != 1 || !strings.Contains(r.stderr, "process.terminal") {
		t.Errorf("--console-socket without a terminal: %s", r)
	}
}

func TestOciMaskedReadonlyPathsAndRootPropagation(t *testing.T) {
	s := newStore(t)
	dir := bundle(t, s, true, func(c map[string]any) {
		setArgs("sh", "-c", "cat /secret; echo; touch /ro/x 2>&1 | grep -c Read-only; awk '$5 == \"/\" && / shared:/' /proc/self/mountinfo | wc -l")(c)
		lx := c["linux"].(map[string]any)
		lx["maskedPaths"] = []string{"/secret"}
		lx["readonlyPaths"] = []string{"ro"} // relative: from the container's /
		lx["rootfsPropagation"] = "rshared"
		c["root"].(map[string]any)["readonly"] = false
	})
	os.WriteFile(filepath.Join(dir, "rootfs", "secret"), []byte("hidden"), 0o644)
	os.Mkdir(filepath.Join(dir, "rootfs", "ro"), 0o777)
	if r := s.run("oci", "--root", s.ociRoot(), "run", "-b", dir, "masked"); r.code != 0 || r.stdout != "\n1\n1\n" {
		t.Errorf("masked, read-only, shared root: %s", r)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "rootfs", "secret")); string(b) != "hidden" {
		t.Errorf("the masked file on disk: %q", b)
	}

	// A start whose command cannot run says why.
	missing := bundle(t, s, true, setArgs("/no/such/program"))
	root := s.ociRoot()
	s.ociDetached("oci", "--root", root, "create", "-b", missing, "missing")
	if r := s.run("oci", "--root", root, "start", "missing"); r.code != 1 || !strings.Contains(r.stderr, "/no/such/program") {
		t.Errorf("start of a command that is not there: %s", r)
	}
}

func TestOciDevicesAreTheHostsOrAClearError(t *testing.T) {
	s := newStore(t)
	root := s.ociRoot()
	dev := func(path string, major, minor int) func(map[string]any) {
		return func(c map[string]any) {
			setArgs("sh", "-c", "ls -l "+path+" | awk '{print $1, $5, $6}'")(c)
			c["linux"].(map[string]any)["devices"] = []any{map[string]any{"path": path, "type": "c", "major": major, "minor": minor}}
		}
	}
	// .ci/setup-host makes /dev/net/tun usable by everyone, as
	// distributions ship it.
	if r := s.run("oci", "--root", root, "run", "-b", bundle(t, s, true, dev("/dev/net/tun", 10, 200)), "tun"); r.code != 0 || !strings.HasPrefix(r.stdout, "crw-rw-rw- 10, 200") {
		t.Errorf("the host's /dev/net/tun: %s", r)
	}
	for name, c := range map[string]struct {
		edit func(map[string]any)
		want string
	}{
		"not on the host":  {dev("/dev/isobox-test1", 10, 200), "cannot make device nodes"},
		"other numbers":    {dev("/dev/net/tun", 1, 3), "not c 1:3"},
		"not the caller's": {dev("/dev/kvm", 10, 232), "may not open"},
	} {
		if name == "not the caller's" {
			if _, err := os.Stat("/dev/kvm"); err != nil {
				continue
			}
		}
		r := s.run("oci", "--root", root, "run", "-b", bundle(t, s, true, c.edit), "baddev")
		if r.code != 1 || !strings.Contains(r.stderr, c.want) || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("%s: %s", name, r)
		}
	}
}

func TestOciPreserveFdsGivesTheCommandThoseDescriptors(t *testing.T) {
	s := newStore(t)
	dir := userDir(tester, "fds")
	in, out := filepath.Join(dir, "in"), filepath.Join(dir, "out")
	os.WriteFile(in, []byte("from-fd-3\n"), 0o644)
	runWithFds := func(args ...string) result {
		t.Helper()
		r, err1 := os.Open(in)
		w, err2 := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o666)
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		defer r.Close()
		defer w.Close()
		cmd := command(tester, s.env, append([]string{binary}, args...)...)
		cmd.ExtraFiles = []*os.File{r, w}
		var so, se strings.Builder
		cmd.Stdout, cmd.Stderr = &so, &se
		err := cmd.Run()
		res := result{stdout: so.String(), stderr: se.String()}
		if ee, ok := err.(*exec.ExitError); ok {
			res.code = ee.ExitCode()
		}
		return res
	}
	b := bundle(t, s, true, setArgs("sh", "-c", "cat <&3; echo to-fd-4 >&4; ls /proc/self/fd | wc -l"))
	root := s.ociRoot()
	// 0, 1, 2, 3, 4 and ls's own directory descriptor: nothing else of
	// isobox's reaches the command.
	if r := runWithFds("oci", "--root", root, "run", "--preserve-fds", "2", "-b", b, "fds"); r.code != 0 || r.stdout != "from-fd-3\n6\n" {
		t.Errorf("run --preserve-fds 2: %s", r)
	}
	if got, _ := os.ReadFile(out); string(got) != "to-fd-4\n" {
		t.Errorf("written to fd 4: %q", got)
	}
	if r := runWithFds("oci", "--root", root, "run", "--preserve-fds", "3", "-b", b, "fds"); r.code != 1 || !strings.Contains(r.stderr, "descriptor 5") {
		t.Errorf("--preserve-fds past the open descriptors: %s", r)
	}
}

func TestOciPauseAndUpdateActWhereThereIsACgroupAndSayWhyNot(t *testing.T) {
	s := newStore(t)
	root := s.ociRoot()
	s.ociDetached("oci", "--root", root, "run", "-d", "-b", bundle(t, s, true, setArgs("sleep", "1000")), "p")
	defer s.must("oci", "--root", root, "delete", "-f", "p")
	r := s.run("oci", "--root", root, "pause", "p")
	if st, _ := s.ociState("p"); r.code == 0 {
		// A host that delegates cgroup v2 (the VM lane checks the
		// freezer's own word too).
		if st.Status != "paused" {
			t.Errorf("after pause: %+v", st)
		}
		s.must("oci", "--root", root, "resume", "p")
	} else if r.code != 1 || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 || !strings.Contains(r.stderr, "no cgroup of its own") || st.Status != "running" {
		t.Errorf("pause without a cgroup: %s (state %+v)", r, st)
	}
	if r := s.run("oci", "--root", root, "resume", "p"); r.code != 1 || !strings.Contains(r.stderr, "is running, not paused") {
		t.Errorf("resume of a running container: %s", r)
	}
	if r := s.run("oci", "--root", root, "pause", "nothing"); r.code != 1 || !strings.Contains(r.stderr, "does not exist") {
		t.Errorf("pause of an unknown container: %s", r)
	}
	// update: refused in one line, before anything is written, when its
	// input is bad; without a cgroup of its own, it says so.
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "no limit given"},
		{[]string{"--memory", "lots"}, "--memory"},
		{[]string{"--memory", "1k"}, "minimum"},
		{[]string{"-r", "/nonexistent"}, "--resources"},
	} {
		r := s.run(append(append([]string{"oci", "--root", root, "update"}, c.args...), "p")...)
		if r.code != 1 || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("update %v: %s", c.args, r)
		}
	}
	if r := s.run("oci", "--root", root, "update", "--memory", "64m", "p"); r.code != 0 && !strings.Contains(r.stderr, "no cgroup of its own") {
		t.Errorf("update without a cgroup: %s", r)
	}
}

func TestOciMonitorKilledLeavesStateStoppedAndNothingRunning(t *testing.T) {
	s := newStore(t)
	dir := bundle(t, s, true, setArgs("sh", "-c", "sleep 1000 & wait"))
	root := s.ociRoot()
	for _, how := range []string{"run", "create"} {
		id := "killed-" + how
		args := []string{"oci", "--root", root, how, "-b", dir, id}
		if how == "run" {
			args = []string{"oci", "--root", root, "run", "-d", "-b", dir, id}
		}
		s.ociDetached(args...)
		st, _ := s.ociState(id)
		if st.Pid == 0 {
			t.Fatalf("%s: no pid: %+v", how, st)
		}
		var pids []int
		json.Unmarshal([]byte(s.must("oci", "--root", root, "ps", "--format", "json", id)), &pids)
		// init is not the monitor's child (it is adopted, as runc's):
		// the record names the monitor.
		monitor := ociMonitor(t, root, id)
		if err := syscall.Kill(monitor, syscall.SIGKILL); err != nil {
			t.Fatalf("%s: kill -9 the monitor %d: %v", how, monitor, err)
		}
		s.waitStopped(id)
		deadline := time.Now().Add(10 * time.Second)
		for _, p := range append(pids, st.Pid) {
			if !goneBy(p, deadline) {
				t.Errorf("%s: PID %d outlived its monitor", how, p)
			}
		}
		s.must("oci", "--root", root, "delete", id)
	}
}

func TestOciExecDetachedIsReapedByTheCallersSubreaper(t *testing.T) {
	s := newStore(t)
	helper := filepath.Join(userDir(tester, "subreaper"), "subreaper")
	if err := buildStatic(helper, "./testdata/subreaper"); err != nil {
		t.Fatal(err)
	}
	root := s.ociRoot()
	s.ociDetached("oci", "--root", root, "run", "-d", "-b", bundle(t, s, true, setArgs("sleep", "1000")), "execd")
	processes := func() int {
		var pids []int
		json.Unmarshal([]byte(s.must("oci", "--root", root, "ps", "--format", "json", "execd")), &pids)
		return len(pids)
	}
	before := processes()
	// A shim or conmon reaps the PID --pid-file names and signals it: the
	// process's watcher, which exits with its status and passes signals
	// on; killed, it takes the process with it.
	pidFile := filepath.Join(userDir(tester, "pid"), "pid")
	oci := binary + " oci --root " + root
	r := runAsEnv(tester, s.env, nil, helper, "/bin/sh", "-c", oci+" exec -d --pid-file "+pidFile+` execd sh -c "sleep 0.2; exit 5" </dev/null`)
	b, _ := os.ReadFile(pidFile)
	if !strings.Contains("\n"+r.stdout, "\n"+string(b)+" 5\n") {
		t.Errorf("want the watcher (PID %s) reaped with status 5: %s", b, r)
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		s.ociDetached("oci", "--root", root, "exec", "-d", "--pid-file", pidFile, "execd", "sleep", "999")
		b, _ := os.ReadFile(pidFile)
		watcher, _ := strconv.Atoi(string(b))
		if n := processes(); n != before+1 || watcher == 0 {
			t.Fatalf("exec -d: %d processes in the container, %d before; watcher %q", n, before, b)
		}
		syscall.Kill(watcher, sig)
		deadline := time.Now().Add(10 * time.Second)
		for processes() != before && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if n := processes(); n != before {
			t.Errorf("%v to the watcher: %d processes left in the container, %d before", sig, n, before)
		}
	}
	s.must("oci", "--root", root, "delete", "-f", "execd")
}

// ociMonitor is the PID of the monitor the record of id names, checked to
// be one.
func ociMonitor(t *testing.T, root, id string) int {
	t.Helper()
	var rec struct {
		RunnerPID int `json:"runnerPid"`
	}
	b, err := os.ReadFile(filepath.Join(root, id, "state.json"))
	if err == nil {
		err = json.Unmarshal(b, &rec)
	}
	cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(rec.RunnerPID) + "/cmdline")
	if err != nil || !strings.HasPrefix(string(cmdline), "isobox:monitor\x00") {
		t.Fatalf("the monitor of %s: %v, PID %d runs %q", id, err, rec.RunnerPID, cmdline)
	}
	return rec.RunnerPID
}

func TestOciInitIsReapedByTheCallersSubreaperWithItsStatus(t *testing.T) {
	s := newStore(t)
	helper := filepath.Join(userDir(tester, "subreaper"), "subreaper")
	if err := buildStatic(helper, "./testdata/subreaper"); err != nil {
		t.Fatal(err)
	}
	dir := bundle(t, s, true, setArgs("sh", "-c", "sleep 0.2; exit 7"))
	root := s.ociRoot()
	// As with runc, the PID that --pid-file names is an orphan that the
	// caller's subreaper (containerd's shim) reaps, and its status is the
	// command's: run -d, and create then start from a shell.
	for _, how := range []string{"run -d", "create, start"} {
		pidFile := filepath.Join(userDir(tester, "pid"), "pid")
		id := strings.NewReplacer(" ", "", ",", "-").Replace(how)
		oci := binary + " oci --root " + root
		script := oci + " run -d --keep --pid-file " + pidFile + " -b " + dir + " " + id
		if how != "run -d" {
			script = oci + " create --pid-file " + pidFile + " -b " + dir + " " + id + " && " + oci + " start " + id
		}
		r := runAsEnv(tester, s.env, nil, helper, "/bin/sh", "-c", script)
		b, _ := os.ReadFile(pidFile)
		initPid := strings.TrimSpace(string(b))
		if r.code != 0 || initPid == "" {
			t.Fatalf("%s: %s (pid file %q)", how, r, b)
		}
		reaped := map[string]string{}
		for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
			if pid, status, ok := strings.Cut(l, " "); ok {
				reaped[pid] = status
			}
		}
		if reaped[initPid] != "7" {
			t.Errorf("%s: the subreaper reaped %v, want init (PID %s) with status 7", how, reaped, initPid)
		}
		if st, r := s.ociState(id); st.Status != "stopped" {
			t.Errorf("%s: state after the exit: %+v %s", how, st, r)
		}
		s.must("oci", "--root", root, "delete", id)
	}
}
