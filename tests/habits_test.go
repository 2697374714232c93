package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// comm is a process's command name, what ps -o comm, top and pgrep show.
func comm(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func parent(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	n, _ := strconv.Atoi(f[1])
	return n
}

func TestEachStageCarriesItsNameAsItsCommand(t *testing.T) {
	s := newStore(t)
	s.must("run", "-d", "--name", "direct", "--net", "none", rootfs, "sleep", "1000")
	c, _ := s.get("direct")
	if got := comm(t, c.PID); got != "isobox:init" {
		t.Errorf("init's comm: %q", got)
	}
	if got := comm(t, parent(t, c.PID)); got != "isobox:monitor" {
		t.Errorf("monitor's comm: %q", got)
	}
	// --time-offset puts a holder between the monitor and init.
	s.must("run", "-d", "--name", "held", "--net", "none", "--time-offset", "boottime=100", rootfs, "sleep", "1000")
	c, _ = s.get("held")
	holder := parent(t, c.PID)
	if got := comm(t, holder); got != "isobox:holder" {
		t.Errorf("holder's comm: %q", got)
	}
	if got := comm(t, parent(t, holder)); got != "isobox:monitor" {
		t.Errorf("monitor's comm above a holder: %q", got)
	}
	s.must("rm", "-f", "direct", "held")
}

func TestPsQuietFilterFormatAndLast(t *testing.T) {
	s := newStore(t)
	s.must("run", "-d", "--name", "web-1", "--net", "none", rootfs, "sleep", "1000")
	if r := s.run("run", "--name", "job-1", "--net", "none", rootfs, "sh", "-c", "exit 3"); r.code != 3 {
		t.Fatalf("job-1: %s", r)
	}
	time.Sleep(10 * time.Millisecond) // created after job-1
	s.must("run", "--name", "job-2", "--net", "none", rootfs, "true")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"ps", "-q"}, "web-1\n"},
		{[]string{"ps", "-a", "-q", "--filter", "name=job-*"}, "job-1\njob-2\n"},
		{[]string{"ps", "-q", "--filter", "status=exited", "--filter", "name=*1"}, "job-1\n"},
		{[]string{"ps", "-a", "-q", "--filter", "network=host"}, ""},
		{[]string{"ps", "-a", "--format", "{{.Name}}:{{.Status}}", "--filter", "name=job-1"}, "job-1:exited\n"},
		{[]string{"ps", "-n", "1", "-q"}, "job-2\n"},
	} {
		got := s.must(c.args...)
		lines := strings.Split(strings.TrimSpace(got), "\n")
		sortedGot := strings.Join(sortStrings(lines), "\n")
		sortedWant := strings.Join(sortStrings(strings.Split(strings.TrimSpace(c.want), "\n")), "\n")
		if sortedGot != sortedWant {
			t.Errorf("isobox %s:\n got %q\nwant %q", strings.Join(c.args, " "), got, c.want)
		}
	}
	var js []map[string]any
	if err := json.Unmarshal([]byte(s.must("ps", "-a", "--format", "json")), &js); err != nil || len(js) != 3 {
		t.Errorf("--format json: %v %v", js, err)
	}
	// The table shortens a long command unless --no-trunc.
	long := strings.Repeat("x", 60)
	s.must("run", "--name", "long", "--net", "none", rootfs, "echo", long)
	if table := s.must("ps", "-a"); strings.Contains(table, long) || !strings.Contains(table, "…") {
		t.Errorf("ps table did not shorten the command:\n%s", table)
	}
	if table := s.must("ps", "-a", "--no-trunc"); !strings.Contains(table, long) {
		t.Errorf("ps --no-trunc shortened the command:\n%s", table)
	}
	for _, bad := range [][]string{{"ps", "--filter", "colour=red"}, {"ps", "--filter", "status=sleeping"}, {"ps", "--format", "{{.Name"}} {
		if r := s.run(bad...); r.code != 125 || !strings.HasPrefix(r.stderr, "isobox: ") || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("isobox %s: %s", strings.Join(bad, " "), r)
		}
	}
}

func sortStrings(s []string) []string {
	out := append([]string{}, s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func TestInspectShowsConfigStateNamespacesAndMaps(t *testing.T) {
	requireSubIDs(t)
	s := newStore(t)
	vol := userDir(tester, "vol")
	s.must("run", "-d", "--name", "seen", "--net", "none", "-e", "A=1", "-w", "/tmp", "-u", "1000:1000",
		"-v", vol+":/data:ro", "--tmpfs", "/scratch:size=1m", "--cap-drop", "ALL", "--cap-add", "CHOWN", rootfs, "sleep", "1000")
	var out []struct {
		Name   string
		Config struct {
			Env     []string
			User    string
			Workdir string
			Mounts  []struct{ Type, Source, Destination, Options string }
			Caps    []string `json:"capabilities"`
			Seccomp string
		}
		State struct {
			Status  string
			Running bool
			Pid     int
		}
		Namespaces map[string]uint64
		IDMaps     struct {
			UIDMap []string `json:"uidMap"`
		} `json:"idMaps"`
	}
	if err := json.Unmarshal([]byte(s.must("inspect", "seen")), &out); err != nil || len(out) != 1 {
		t.Fatalf("inspect: %v %+v", err, out)
	}
	e := out[0]
	c, _ := s.get("seen")
	if e.Name != "seen" || e.State.Status != "running" || !e.State.Running || e.State.Pid != c.PID {
		t.Errorf("state: %+v", e.State)
	}
	if e.Config.User != "1000:1000" || e.Config.Workdir != "/tmp" || !contains(e.Config.Env, "A=1") || e.Config.Seccomp != "default" {
		t.Errorf("config: %+v", e.Config)
	}
	if len(e.Config.Mounts) != 2 || e.Config.Mounts[0].Destination != "/data" || e.Config.Mounts[0].Options != "ro" || e.Config.Mounts[1].Type != "tmpfs" {
		t.Errorf("mounts: %+v", e.Config.Mounts)
	}
	if len(e.Config.Caps) != 1 || e.Config.Caps[0] != "CAP_CHOWN" {
		t.Errorf("capabilities: %v", e.Config.Caps)
	}
	for _, ns := range []string{"user", "mnt", "pid", "net", "uts", "ipc", "cgroup"} {
		if e.Namespaces[ns] == 0 {
			t.Errorf("no %s namespace inode: %v", ns, e.Namespaces)
		}
	}
	if want := fmt.Sprintf("0 %d 1", tester.uid); len(e.IDMaps.UIDMap) == 0 || e.IDMaps.UIDMap[0] != want {
		t.Errorf("uid map: %v, want %q first", e.IDMaps.UIDMap, want)
	}
	if got := s.must("inspect", "--format", "{{.State.Status}} {{.Config.User}}", "seen"); got != "running 1000:1000\n" {
		t.Errorf("inspect --format: %q", got)
	}
	if r := s.run("inspect", "nothing-here"); r.code != 125 || !strings.HasPrefix(r.stderr, "isobox: ") {
		t.Errorf("inspect of an unknown name: %s", r)
	}
	s.must("rm", "-f", "seen")
}

func contains(list []string, x string) bool {
	for _, y := range list {
		if y == x {
			return true
		}
	}
	return false
}

func TestWaitPrintsTheExitStatusOnceTheContainerExits(t *testing.T) {
	s := newStore(t)
	s.must("run", "-d", "--name", "slow", "--net", "none", rootfs, "sh", "-c", "sleep 1; exit 7")
	start := time.Now()
	if got := s.must("wait", "slow"); got != "7\n" {
		t.Errorf("wait: %q", got)
	}
	if c, _ := s.get("slow"); c.Status != "exited" {
		t.Errorf("wait returned with the container %s", c.Status)
	}
	if time.Since(start) < 500*time.Millisecond {
		t.Errorf("wait returned before the container could have exited")
	}
	if got := s.must("wait", "slow"); got != "7\n" {
		t.Errorf("wait on an exited container: %q", got)
	}
}

func TestPruneRmAllAndPort(t *testing.T) {
	s := newStore(t)
	port := freePort(t, "tcp")
	s.must("run", "-d", "--name", "up", "-p", fmt.Sprintf("%d:80", port), rootfs, "sleep", "1000")
	if got := s.must("port", "up"); got != fmt.Sprintf("80/tcp -> 127.0.0.1:%d\n", port) {
		t.Errorf("port: %q", got)
	}
	for i := range 3 {
		s.must("run", "--name", fmt.Sprintf("done-%d", i), "--net", "none", rootfs, "true")
	}
	if got := s.must("container", "prune", "-f"); len(strings.Fields(got)) != 3 {
		t.Errorf("prune removed %q", got)
	}
	if got := s.must("ps", "-a", "-q"); got != "up\n" {
		t.Errorf("after prune: %q", got)
	}
	if r := s.run("rm", "-a"); r.code != 125 || !strings.Contains(r.stderr, "running") {
		t.Errorf("rm -a with a running container: %s", r)
	}
	s.must("rm", "-af")
	if got := s.must("ps", "-a", "-q"); got != "" {
		t.Errorf("after rm -af: %q", got)
	}
	waitNoLeftovers(t, "slirp4netns", "isobox-gvisor")
}

func TestCompletionPredictsCommandsFlagValuesAndContainerNames(t *testing.T) {
	s := newStore(t)
	s.must("run", "-d", "--name", "completable", "--net", "none", rootfs, "sleep", "1000")
	complete := func(line string) []string {
		cmd := command(tester, append(s.env, "COMP_LINE="+line, fmt.Sprintf("COMP_POINT=%d", len(line))), binary)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("completion of %q: %v", line, err)
		}
		return strings.Fields(string(out))
	}
	for line, want := range map[string]string{
		"isobox ru":             "run",
		"isobox run --net ":     "gvisor",
		"isobox run --map ":     "single",
		"isobox run --cap-add ": "SYS_ADMIN",
		"isobox kill -s ":       "TERM",
		"isobox exec ":          "completable",
		"isobox stop compl":     "completable",
	} {
		if got := complete(line); !contains(got, want) {
			t.Errorf("completion of %q: %v, want %s among them", line, got, want)
		}
	}
	if got := s.must("completion", "bash"); !strings.HasPrefix(got, "complete -C ") || !strings.Contains(got, binary) {
		t.Errorf("completion bash: %q", got)
	}
	for _, sh := range []string{"zsh", "fish"} {
		if got := s.must("completion", sh); !strings.Contains(got, binary) {
			t.Errorf("completion %s: %q", sh, got)
		}
	}
	s.must("rm", "-f", "completable")
}
