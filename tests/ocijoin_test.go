package tests

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// nsHolder starts, as the test user, a process in the new namespaces that
// util-linux unshare(1) makes with args (named "joined" when it has a UTS
// namespace, with lo up when it has a network one), and returns its PID:
// the namespaces a bundle then joins by /proc/PID/ns/... It ends with the
// test.
func nsHolder(t *testing.T, s *store, args ...string) heldNS {
	t.Helper()
	argv := append(append([]string{"unshare"}, args...), "sh", "-c",
		"hostname joined 2>/dev/null; ip link set lo up 2>/dev/null; echo ready; exec sleep 1000")
	cmd := command(tester, s.env, argv...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if l, _ := bufio.NewReader(out).ReadString('\n'); l != "ready\n" {
		t.Fatalf("unshare %v: %q", args, l)
	}
	return heldNS(cmd.Process.Pid)
}

// heldNS is the PID of a process that holds namespaces to join.
type heldNS int

// at is the path of its namespace of kind (net, uts...).
func (p heldNS) at(kind string) string { return "/proc/" + strconv.Itoa(int(p)) + "/ns/" + kind }

// nsID is the namespace of kind (net, uts...) that pid is in.
func nsID(t *testing.T, pid int, kind string) string {
	t.Helper()
	l, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/ns/" + kind)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// joining has a bundle join, for each type and path pair, that namespace
// instead of making one; a joined UTS namespace takes no hostname.
func joining(pairs ...string) func(map[string]any) {
	return func(c map[string]any) {
		lx := c["linux"].(map[string]any)
		joined := map[string]bool{}
		var ns []any
		for i := 0; i < len(pairs); i += 2 {
			joined[pairs[i]] = true
			ns = append(ns, map[string]any{"type": pairs[i], "path": pairs[i+1]})
		}
		for _, n := range lx["namespaces"].([]any) {
			if typ := n.(map[string]any)["type"].(string); !joined[typ] {
				ns = append(ns, n)
			}
		}
		lx["namespaces"] = ns
		if joined["uts"] {
			delete(c, "hostname")
		}
	}
}

// showNamespaces prints the command's net, uts, ipc and user namespaces,
// its hostname, its uid_map's first line and whether /dev/mqueue is mounted.
var showNamespaces = setArgs("sh", "-c",
	"for n in net uts ipc user; do readlink /proc/self/ns/$n; done; hostname; head -1 /proc/self/uid_map | tr -s ' ' | sed 's/^ //'; grep -c ' /dev/mqueue ' /proc/mounts || :")

func TestOciJoinsNamespacesWithTheUserNamespaceThatOwnsThem(t *testing.T) {
	s := newStore(t)
	p := nsHolder(t, s, "--user", "--map-root-user", "--net", "--uts", "--ipc")
	at := p.at
	dir := bundle(t, s, true, func(c map[string]any) {
		showNamespaces(c)
		joining("user", at("user"), "network", at("net"), "uts", at("uts"), "ipc", at("ipc"))(c)
	})
	root := s.ociRoot()
	r := s.run("--log-level", "info", "oci", "--root", root, "run", "-b", dir, "joined")
	// Its own maps (root is the test user), its name, and message queues
	// of its IPC namespace, which its root may mount.
	want := []string{nsID(t, int(p), "net"), nsID(t, int(p), "uts"), nsID(t, int(p), "ipc"), nsID(t, int(p), "user"),
		"joined", "0 " + strconv.Itoa(int(tester.uid)) + " 1", "1"}
	if r.code != 0 || strings.Join(strings.Fields(r.stdout), " ") != strings.Join(strings.Fields(strings.Join(want, " ")), " ") {
		t.Fatalf("want %q: %s", want, r)
	}
	if !strings.Contains(r.stderr, "uidMappings and gidMappings ignored") {
		t.Errorf("the bundle's maps were not said to be ignored: %q", r.stderr)
	}

	// Through the holder that nsenter started, a monitor killed with
	// kill -9 still takes the container with it.
	dir = bundle(t, s, true, func(c map[string]any) {
		setArgs("sleep", "1000")(c)
		joining("user", at("user"), "network", at("net"))(c)
	})
	s.ociDetached("oci", "--root", root, "run", "-d", "-b", dir, "held")
	st, _ := s.ociState("held")
	if st.Status != "running" || nsID(t, st.Pid, "user") != nsID(t, int(p), "user") {
		t.Fatalf("run -d: %+v", st)
	}
	if err := syscall.Kill(ociMonitor(t, root, "held"), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	s.waitStopped("held")
	if !goneBy(st.Pid, time.Now().Add(10*time.Second)) {
		t.Errorf("init %d outlived its monitor", st.Pid)
	}
	s.must("oci", "--root", root, "delete", "held")
}

func TestOciRootOfAUserNamespaceJoinsTheNamespacesItOwns(t *testing.T) {
	s := newStore(t)
	// The way rootless engines run their runtime (rootlesskit, podman
	// unshare): isobox itself runs as root of a user namespace, and the
	// bundle joins namespaces of that namespace, in a new user namespace
	// of its own below it.
	p := nsHolder(t, s, "--user", "--map-root-user", "--net", "--uts", "--ipc")
	at := p.at
	dir := bundle(t, s, true, func(c map[string]any) {
		showNamespaces(c)
		joining("network", at("net"), "uts", at("uts"), "ipc", at("ipc"))(c)
		lx := c["linux"].(map[string]any)
		own := []any{map[string]any{"containerID": 0, "hostID": 0, "size": 1}}
		lx["uidMappings"], lx["gidMappings"] = own, own
	})
	root := s.ociRoot()
	inside := []string{"nsenter", "--user", "--preserve-credentials", "-t", strconv.Itoa(int(p)), "--", binary, "oci", "--root", root}
	r := runAsEnv(tester, s.env, nil, append(inside, "run", "-b", dir, "below")...)
	fields := strings.Fields(r.stdout)
	// No message queues: the IPC namespace belongs to the namespace above.
	if r.code != 0 || len(fields) != 9 || fields[0] != nsID(t, int(p), "net") || fields[1] != nsID(t, int(p), "uts") || fields[2] != nsID(t, int(p), "ipc") ||
		fields[3] == nsID(t, int(p), "user") || fields[4] != "joined" || strings.Join(fields[5:], " ") != "0 0 1 0" {
		t.Fatalf("run inside the user namespace: %s", r)
	}

	// From the host, the same bundle (with the test user's own maps) is
	// refused in one line that says what would work.
	dir = bundle(t, s, true, joining("network", at("net")))
	r = s.run("oci", "--root", root, "run", "-b", dir, "outside")
	if r.code != 1 || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 || !strings.Contains(r.stderr, "together with the user namespace that owns it") {
		t.Errorf("joining a network namespace of another user namespace: %s", r)
	}
}

func TestOciBadJoinsAreOneLineAndLeaveNothing(t *testing.T) {
	s := newStore(t)
	p := nsHolder(t, s, "--user", "--map-root-user", "--net", "--uts")
	at := p.at
	root := s.ociRoot()
	for name, c := range map[string]struct {
		edit func(map[string]any)
		want string
	}{
		"another type":          {joining("network", at("user")), "a namespace of another type"},
		"not a namespace":       {joining("network", "/etc/passwd"), "not a namespace"},
		"relative":              {joining("network", "ns/net"), "not an absolute path"},
		"pid":                   {joining("pid", at("pid")), "joining a pid namespace is not supported"},
		"mount":                 {joining("mount", at("mnt")), "joining a mount namespace is not supported"},
		"time":                  {joining("time", at("time")), "joining a time namespace is not supported"},
		"root's user namespace": {joining("user", "/proc/1/ns/user"), "/proc/1/ns/user"},
		"outside the user namespace": {joining("user", at("user"), "network", "/proc/self/ns/net"),
			"does not belong to the user namespace joined"},
		"hostname and a joined uts": {func(c map[string]any) {
			joining("uts", at("uts"))(c)
			c["hostname"] = "mine"
		}, "hostname"},
		"missing": {joining("network", filepath.Join(userDir(tester, "ns"), "gone")), "no such file"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := bundle(t, s, true, c.edit)
			r := s.run("oci", "--root", root, "run", "-b", dir, "bad")
			if r.code != 1 || !strings.HasPrefix(r.stderr, "isobox: ") || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 || !strings.Contains(r.stderr, c.want) {
				t.Errorf("want exit 1 and one isobox: line with %q: %s", c.want, r)
			}
			if entries, _ := os.ReadDir(root); len(entries) != 0 {
				t.Errorf("left in --root: %v", entries)
			}
		})
	}
}
