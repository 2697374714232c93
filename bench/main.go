// Command bench measures isobox against its peers in one run, as ratios, on
// one BusyBox rootfs: start-to-exit of /bin/true without network (against
// bubblewrap, util-linux unshare and podman) and with user-mode networking
// (against the rootlesskit binary and podman), bulk TCP throughput through
// a published port and to the host's loopback (against podman), the peak
// memory of what runs beside an idle container (against podman's conmon
// and slirp4netns), and 50 containers started at once. Peers that are not
// installed, or cannot run here, are skipped with the reason. Run by root, every container command runs as the
// unprivileged user isobox-demo (created as `make demo` does). Traffic goes
// only to 127.0.0.1 on the host and to the container's 10.0.2.0/24.
//
// Usage: go run ./bench BINARY   (make bench)
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

var (
	home   = "/tmp"
	cred   *syscall.Credential
	runner string
	rootfs string
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: bench ISOBOX_BINARY")
		os.Exit(2)
	}
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(bin string) error {
	dir, err := os.MkdirTemp("/tmp", "isobox-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	if os.Geteuid() == 0 {
		u, err := user.Lookup("isobox-demo")
		if err != nil {
			if out, err := exec.Command("useradd", "--create-home", "--shell", "/bin/sh", "isobox-demo").CombinedOutput(); err != nil {
				return fmt.Errorf("useradd: %v %s", err, out)
			}
			u, _ = user.Lookup("isobox-demo")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}
		home = u.HomeDir
		os.Chown(dir, uid, gid)
		fmt.Printf("running every container as the unprivileged user isobox-demo (uid %d)\n", uid)
	}
	runner = filepath.Join(dir, "isobox")
	if err := copyFile(bin, runner); err != nil {
		return err
	}
	// --net gvisor's helper and the image helper live next to isobox.
	for _, h := range []string{"isobox-gvisor", "isobox-image"} {
		if err := copyFile(filepath.Join(filepath.Dir(bin), h), filepath.Join(dir, h)); err != nil {
			return err
		}
	}
	rootfs = filepath.Join(dir, "rootfs")
	if out, err := command(runner, "rootfs", "busybox", rootfs).CombinedOutput(); err != nil {
		return fmt.Errorf("rootfs: %v %s", err, out)
	}
	// The in-container endpoint of the throughput runs (BusyBox nc's small
	// buffers would be what is measured), built static into the rootfs.
	tcpio := filepath.Join(dir, "tcpio")
	build := exec.Command("go", "build", "-o", tcpio, "./bench/tcpio")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build tcpio: %v %s", err, out)
	}
	if out, err := command("cp", tcpio, filepath.Join(rootfs, "bin", "tcpio")).CombinedOutput(); err != nil {
		return fmt.Errorf("copy tcpio: %v %s", err, out)
	}
	results := map[string]float64{}
	pod := findPodman(dir)

	// ISOBOX_BENCH_ONLY=images or =oci runs that section alone.
	switch os.Getenv("ISOBOX_BENCH_ONLY") {
	case "images":
		return benchImages(dir, pod, results)
	case "oci":
		return benchOCI(dir, results)
	}

	fmt.Println("\n== 1. start to exit of /bin/true, no network (median of 21 after 3 warm-ups, interleaved)")
	peers := []peer{
		{name: "isobox --net none", argv: []string{runner, "run", "--rm", "--net", "none", rootfs, "/bin/true"}},
		// The single-id map bwrap and unshare -r write: no setuid helper.
		{name: "isobox --net none --map single", argv: []string{runner, "run", "--rm", "--net", "none", "--map", "single", rootfs, "/bin/true"}},
	}
	if p, err := exec.LookPath("bwrap"); err == nil {
		peers = append(peers, peer{name: "bwrap --unshare-all", argv: []string{p, "--unshare-all", "--uid", "0", "--gid", "0", "--bind", rootfs, "/", "--proc", "/proc", "--dev", "/dev", "/bin/true"}})
	} else {
		fmt.Println("bwrap: not installed, skipped (sudo apt-get install bubblewrap)")
	}
	peers = append(peers, peer{name: "unshare -r ... chroot", argv: []string{"unshare", "-r", "--mount", "--pid", "--uts", "--ipc", "--net", "--cgroup", "--fork", "chroot", rootfs, "/bin/true"}})
	// isobox's own mapping, through newuidmap and newgidmap (util-linux
	// 2.38+): the same work for the user namespace, in C.
	if out, err := command("unshare", "--map-auto", "-r", "true").CombinedOutput(); err == nil {
		peers = append(peers, peer{name: "unshare --map-auto -r ... chroot", argv: []string{"unshare", "--map-auto", "-r", "--mount", "--pid", "--uts", "--ipc", "--net", "--cgroup", "--fork", "chroot", rootfs, "/bin/true"}})
	} else {
		fmt.Printf("unshare --map-auto: cannot run here, skipped: %v %s\n", err, lastLine(out))
	}
	if pod != nil {
		peers = append(peers, peer{name: "podman --network=none", argv: pod.run("--network=none", podImage, "/bin/true")})
	}
	if err := timePeers(peers, results); err != nil {
		return err
	}
	ratio(results, "start_ms isobox --net none", "start_ms bwrap --unshare-all", "isobox/bwrap, no network", "target <= 1.5")
	ratio(results, "start_cpu_ms isobox --net none", "start_cpu_ms bwrap --unshare-all", "isobox/bwrap CPU time, no network", "")
	ratio(results, "start_cpu_ms isobox --net none", "start_cpu_ms unshare --map-auto -r ... chroot", "isobox/unshare --map-auto CPU time", "")
	ratio(results, "start_ms isobox --net none", "start_ms unshare -r ... chroot", "isobox/unshare, no network", "")
	ratio(results, "start_ms isobox --net none", "start_ms unshare --map-auto -r ... chroot", "isobox/unshare --map-auto (both full mapping)", "")
	ratio(results, "start_ms isobox --net none --map single", "start_ms bwrap --unshare-all", "isobox --map single/bwrap (both one id)", "")
	ratio(results, "start_ms isobox --net none", "start_ms podman --network=none", "isobox/podman, no network", "")

	fmt.Println("\n== 2. start to exit of /bin/true with user-mode networking")
	peers = []peer{
		{name: "isobox --net slirp", argv: []string{runner, "run", "--rm", "--net", "slirp", rootfs, "/bin/true"}},
		{name: "isobox --net gvisor", argv: []string{runner, "run", "--rm", "--net", "gvisor", rootfs, "/bin/true"}},
	}
	if p, err := exec.LookPath("rootlesskit"); err == nil {
		peers = append(peers, peer{name: "rootlesskit --net=slirp4netns", argv: []string{p, "--net=slirp4netns", "--disable-host-loopback", "/bin/true"}})
	} else {
		fmt.Println("rootlesskit: not installed, skipped (sudo apt-get install rootlesskit)")
	}
	if pod != nil {
		peers = append(peers, peer{name: "podman (default network)", argv: pod.run(podImage, "/bin/true")})
	}
	if err := timePeers(peers, results); err != nil {
		return err
	}
	ratio(results, "start_ms isobox --net slirp", "start_ms rootlesskit --net=slirp4netns", "isobox --net slirp/rootlesskit", "target <= 0.5")
	ratio(results, "start_cpu_ms isobox --net slirp", "start_cpu_ms rootlesskit --net=slirp4netns", "isobox --net slirp/rootlesskit CPU time", "")
	if v, ok := results["start_ms podman (default network)"]; ok {
		r := v / results["start_ms isobox --net slirp"]
		results["ratio podman/isobox, network"] = r
		fmt.Printf("ratio podman/isobox --net slirp: %.1fx faster (target >= 5)\n", r)
	}

	mb := 1024
	if v, err := strconv.Atoi(os.Getenv("ISOBOX_BENCH_MB")); err == nil && v > 0 {
		mb = v
	}
	fmt.Printf("\n== 3. bulk TCP throughput, %d MiB (host 127.0.0.1 <-> container)\n", mb)
	type tp struct {
		name, gateway string
		argv          func(extra ...string) []string
	}
	isoboxArgv := func(mode string) func(extra ...string) []string {
		return func(extra ...string) []string {
			return append(append([]string{runner, "run", "--rm", "--net", mode}, extra...), rootfs)
		}
	}
	modes := []tp{{"isobox slirp", "10.0.2.2", isoboxArgv("slirp")}, {"isobox gvisor", "10.0.2.1", isoboxArgv("gvisor")}}
	// pasta is measured where isobox accepts it (it refuses a pasta older
	// than 2023_06_25, as Debian 12's is): its own error is the reason.
	if out, err := command(runner, "run", "--rm", "--net", "pasta", rootfs, "/bin/true").CombinedOutput(); err == nil {
		modes = append(modes, tp{"isobox pasta", "10.0.2.2", isoboxArgv("pasta")})
	} else {
		fmt.Printf("isobox pasta: skipped: %s\n", strings.SplitN(strings.TrimSpace(string(out)), "\n", 2)[0])
	}
	if pod != nil {
		modes = append(modes, tp{"podman", "10.0.2.2", func(extra ...string) []string {
			var a []string
			for i := 0; i < len(extra); i++ {
				switch extra[i] {
				case "-p":
					a = append(a, "-p", "127.0.0.1:"+extra[i+1])
					i++
				case "--allow-host-loopback":
					a = append(a, "--network", "slirp4netns:allow_host_loopback=true")
				}
			}
			return pod.run(append(a, podImage)...)
		}})
	}
	for _, m := range modes {
		in, err := intoContainer(m.argv, mb)
		if err != nil {
			return fmt.Errorf("%s host->container: %w", m.name, err)
		}
		out, err := toHost(m.argv, m.gateway, mb)
		if err != nil {
			return fmt.Errorf("%s container->host: %w", m.name, err)
		}
		results["gbps published "+m.name] = in
		results["gbps host-loopback "+m.name] = out
		fmt.Printf("%-14s host->container (published port) %6.2f Gbit/s   container->host (host loopback) %6.2f Gbit/s\n", m.name, in, out)
	}
	fmt.Println("target: published port >= 5 Gbit/s")

	fmt.Println("\n== 4. memory of the runner and its network helper while a container idles (resident, and peak)")
	mem, peak, err := isoboxIdleMemory()
	if err != nil {
		return err
	}
	results["idle_rss_mib isobox"], results["peak_rss_mib isobox"] = mem, peak
	fmt.Printf("%-40s %6.1f MiB resident (target < 20), %.1f MiB at peak\n", "isobox (runner, slirp4netns, holder if any)", mem, peak)
	if pod != nil {
		pm, ppeak, err := podmanIdleMemory(pod)
		if err != nil {
			fmt.Println("podman: idle memory not measured:", err)
		} else {
			results["idle_rss_mib podman"], results["peak_rss_mib podman"] = pm, ppeak
			fmt.Printf("%-40s %6.1f MiB resident, %.1f MiB at peak\n", "podman (conmon, slirp4netns)", pm, ppeak)
		}
	}

	fmt.Println("\n== 5. 50 containers started at once (default network)")
	wall, failures := concurrentStarts(50)
	results["concurrent50_wall_s isobox"] = wall.Seconds()
	results["concurrent50_failures isobox"] = float64(failures)
	fmt.Printf("isobox: %d started, %d failed, %.2f s wall time (target: no failures)\n", 50-failures, failures, wall.Seconds())

	if err := benchImages(dir, pod, results); err != nil {
		return err
	}
	if err := benchOCI(dir, results); err != nil {
		return err
	}

	b, _ := json.MarshalIndent(results, "", "  ")
	out := filepath.Join(filepath.Dir(bin), "bench.json")
	if err := os.WriteFile(out, append(b, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Printf("\n%s\n(written to %s)\n", b, out)
	return nil
}

// peer is one command timed against the others.
type peer struct {
	name string
	argv []string
	env  []string // added to command's environment
}

// timePeers runs the peers interleaved, 3 warm-ups then 21 timed rounds,
// and records each one's median. It also takes each run's CPU time, user
// plus system, from its wait status: the peer's own and that of every
// descendant it waited for (isobox's init and map helpers, bwrap's child;
// not podman's conmon, which is not podman's child). On a machine with few
// cores, a start that needs more CPU than another cannot be as fast,
// whatever it does side by side.
func timePeers(peers []peer, results map[string]float64) error {
	times := map[string][]time.Duration{}
	cpu := map[string][]time.Duration{}
	for i := 0; i < 24; i++ {
		for _, p := range peers {
			c := command(p.argv[0], p.argv[1:]...)
			c.Env = append(c.Env, p.env...)
			start := time.Now()
			if out, err := c.CombinedOutput(); err != nil {
				return fmt.Errorf("%s: %v %s", p.name, err, out)
			}
			if i >= 3 {
				times[p.name] = append(times[p.name], time.Since(start))
				cpu[p.name] = append(cpu[p.name], c.ProcessState.UserTime()+c.ProcessState.SystemTime())
			}
		}
	}
	for _, p := range peers {
		med, lo, hi := stats(times[p.name])
		cmed, _, _ := stats(cpu[p.name])
		results["start_ms "+p.name] = ms(med)
		results["start_cpu_ms "+p.name] = ms(cmed)
		fmt.Printf("%-32s median %7.1f ms   (p10 %.1f, p90 %.1f)   CPU %.1f ms\n", p.name, ms(med), ms(lo), ms(hi), ms(cmed))
	}
	return nil
}

// ratio prints and records a/b when both were measured.
func ratio(results map[string]float64, a, b, name, target string) {
	va, oka := results[a]
	vb, okb := results[b]
	if !oka || !okb {
		return
	}
	results["ratio "+name] = va / vb
	fmt.Printf("ratio %s: %.2f %s\n", name, va/vb, target)
}

// podman is how the benchmark runs podman on this machine, when it can.
type podman struct{ global []string }

const podImage = "localhost/isobox-bench-rootfs"

func (p *podman) run(args ...string) []string {
	return append(append(append([]string{"podman"}, p.global...), "run", "--rm"), args...)
}

// findPodman imports the rootfs as an image and finds a runtime that works
// here: crun refuses hybrid cgroup hierarchies, where runc (with cgroupfs)
// does not. Nil, with the reason printed, when podman cannot run.
func findPodman(dir string) *podman {
	if _, err := exec.LookPath("podman"); err != nil {
		fmt.Println("podman: not installed, skipped (sudo apt-get install podman runc)")
		return nil
	}
	imp := command("sh", "-c", "tar -C "+rootfs+" -c . | podman import - "+podImage)
	if out, err := imp.CombinedOutput(); err != nil {
		fmt.Printf("podman: cannot import the rootfs, skipped: %v %s\n", err, lastLine(out))
		return nil
	}
	var why string
	for _, global := range [][]string{nil, {"--runtime", "runc"}} {
		p := &podman{global: global}
		argv := p.run("--network=none", podImage, "/bin/true")
		out, err := command(argv[0], argv[1:]...).CombinedOutput()
		if err == nil {
			fmt.Printf("podman: %s\n", strings.Join(argv[:len(argv)-3], " "))
			return p
		}
		why = lastLine(out)
	}
	fmt.Printf("podman: cannot run a container here, skipped: %s\n", why)
	return nil
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// isoboxIdleMemory starts a detached container that sleeps, and sums the
// resident memory (VmRSS, once it idles) and the peak (VmHWM) of the
// processes isobox runs outside it: the monitor, slirp4netns, and the
// holder when the container needs one.
func isoboxIdleMemory() (float64, float64, error) {
	name := "bench-idle"
	command(runner, "rm", "-f", name).Run()
	if out, err := command(runner, "run", "-d", "--rm", "--name", name, rootfs, "sleep", "600").CombinedOutput(); err != nil {
		return 0, 0, fmt.Errorf("isobox run -d: %v %s", err, out)
	}
	defer command(runner, "rm", "-f", name).Run()
	time.Sleep(3 * time.Second)
	out, err := command(runner, "ps", "--json").Output()
	if err != nil {
		return 0, 0, err
	}
	var ps []struct {
		Name string `json:"name"`
		PID  int    `json:"pid"`
	}
	json.Unmarshal(out, &ps)
	initPid := 0
	for _, c := range ps {
		if c.Name == name {
			initPid = c.PID
		}
	}
	if initPid == 0 {
		return 0, 0, fmt.Errorf("the idle container is not listed")
	}
	// Up from init to the monitor: the holder, when there is one, is
	// between them; the monitor's other children are the network helper.
	var pids []int
	for p := parentOf(initPid); ; p = parentOf(p) {
		if p <= 1 {
			return 0, 0, fmt.Errorf("no isobox:monitor above the idle container's init")
		}
		pids = append(pids, p)
		if cl, _ := os.ReadFile("/proc/" + strconv.Itoa(p) + "/cmdline"); strings.HasPrefix(string(cl), "isobox:monitor") {
			break
		}
	}
	monitor := pids[len(pids)-1]
	for _, c := range childrenOf(monitor) {
		if c != initPid && (len(pids) < 2 || c != pids[len(pids)-2]) {
			pids = append(pids, c) // slirp4netns
		}
	}
	return sumStatus(pids, "VmRSS:"), sumStatus(pids, "VmHWM:"), nil
}

// podmanIdleMemory does the same for podman: conmon and slirp4netns.
func podmanIdleMemory(p *podman) (float64, float64, error) {
	argv := append(append([]string{"podman"}, p.global...), "run", "-d", "--rm", podImage, "sleep", "600")
	out, err := command(argv[0], argv[1:]...).Output()
	if err != nil {
		return 0, 0, err
	}
	id := strings.TrimSpace(string(out))
	defer command("podman", append(p.global, "rm", "-f", "-t", "0", id)...).CombinedOutput()
	time.Sleep(3 * time.Second)
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cl, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if strings.Contains(string(cl), id) && strings.HasPrefix(string(cl), "/usr/bin/conmon") {
			pids = append(pids, pid)
			for _, c := range childrenOf(parentOf(pid)) {
				if c != pid {
					if cl, _ := os.ReadFile("/proc/" + strconv.Itoa(c) + "/cmdline"); strings.Contains(string(cl), "slirp4netns") {
						pids = append(pids, c)
					}
				}
			}
		}
	}
	if len(pids) == 0 {
		return 0, 0, fmt.Errorf("no conmon found")
	}
	// slirp4netns is podman's child, not conmon's: find the newest one.
	if len(pids) == 1 {
		if s := newest("slirp4netns"); s != 0 {
			pids = append(pids, s)
		}
	}
	return sumStatus(pids, "VmRSS:"), sumStatus(pids, "VmHWM:"), nil
}

func newest(comm string) int {
	best := 0
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		c, _ := os.ReadFile("/proc/" + e.Name() + "/comm")
		if strings.TrimSpace(string(c)) == comm && pid > best {
			best = pid
		}
	}
	return best
}

func parentOf(pid int) int {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

func childrenOf(pid int) []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if p, err := strconv.Atoi(e.Name()); err == nil && parentOf(p) == pid {
			out = append(out, p)
		}
	}
	return out
}

// sumStatus adds a kB field of the processes' /proc/PID/status, in MiB.
func sumStatus(pids []int, field string) float64 {
	var kb int
	for _, p := range pids {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(p) + "/status")
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, field); ok {
				n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
				kb += n
			}
		}
	}
	return float64(kb) / 1024
}

// concurrentStarts starts n containers at once and waits for all.
func concurrentStarts(n int) (time.Duration, int) {
	start := time.Now()
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			out, err := command(runner, "run", "--rm", rootfs, "/bin/true").CombinedOutput()
			if err != nil {
				err = fmt.Errorf("%v: %s", err, lastLine(out))
			}
			errs <- err
		}()
	}
	failures := 0
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil {
			failures++
			fmt.Println("  failed:", err)
		}
	}
	return time.Since(start), failures
}

func command(name string, args ...string) *exec.Cmd {
	c := exec.Command(name, args...)
	c.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME=" + home}
	c.Dir = "/"
	c.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	return c
}

func freePort() int {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// intoContainer sends mb MiB to tcpio inside through a published port and
// returns Gbit/s, timed from connect to the last byte written.
func intoContainer(argv func(extra ...string) []string, mb int) (float64, error) {
	port := freePort()
	a := append(argv("-p", fmt.Sprintf("%d:5000", port)), "tcpio", "sink", "5000")
	c := command(a[0], a[1:]...)
	out, _ := c.StdoutPipe()
	c.Stderr = os.Stderr
	if err := c.Start(); err != nil {
		return 0, err
	}
	defer c.Wait()
	// SIGTERM, which the runner passes to the container: it ends, and the
	// runner removes its record (--rm); SIGKILL would leave the record.
	defer c.Process.Signal(syscall.SIGTERM)
	if line, _ := bufio.NewReader(out).ReadString('\n'); strings.TrimSpace(line) != "ready" {
		return 0, fmt.Errorf("container not ready: %q", line)
	}
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 10*time.Second)
	if err != nil {
		return 0, err
	}
	buf := make([]byte, 1<<20)
	start := time.Now()
	for i := 0; i < mb; i++ {
		if _, err := conn.Write(buf); err != nil {
			return 0, err
		}
	}
	elapsed := time.Since(start)
	conn.Close()
	return gbps(mb, elapsed), nil
}

// toHost has tcpio inside send mb MiB to a server on the host's
// 127.0.0.1, reached through the gateway, and returns Gbit/s as the host
// received them.
func toHost(argv func(extra ...string) []string, gateway string, mb int) (float64, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	a := append(argv("--allow-host-loopback"), "tcpio", "send", net.JoinHostPort(gateway, strconv.Itoa(port)), strconv.Itoa(mb))
	c := command(a[0], a[1:]...)
	c.Stderr = os.Stderr
	if err := c.Start(); err != nil {
		return 0, err
	}
	defer c.Wait()
	l.(*net.TCPListener).SetDeadline(time.Now().Add(time.Minute))
	conn, err := l.Accept()
	if err != nil {
		c.Process.Kill()
		return 0, err
	}
	defer conn.Close()
	start := time.Now()
	n, err := io.Copy(io.Discard, conn)
	elapsed := time.Since(start)
	if err != nil || n != int64(mb)<<20 {
		return 0, fmt.Errorf("received %d bytes: %v", n, err)
	}
	return gbps(mb, elapsed), nil
}

func gbps(mb int, d time.Duration) float64 {
	return float64(mb) * 8 * 1024 * 1024 / d.Seconds() / 1e9
}

func stats(d []time.Duration) (med, p10, p90 time.Duration) {
	s := append([]time.Duration{}, d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2], s[len(s)/10], s[len(s)*9/10]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
