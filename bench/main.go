// Command bench measures isobox against its peers in one run, as ratios:
// start-to-exit of /bin/true with user-mode networking against the
// rootlesskit binary, and bulk TCP throughput through a published port and
// to the host's loopback. Run by root, every container command runs as the
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
		os.Chown(dir, uid, gid)
		fmt.Printf("running every container as the unprivileged user isobox-demo (uid %d)\n", uid)
	}
	runner = filepath.Join(dir, "isobox")
	if err := copyFile(bin, runner); err != nil {
		return err
	}
	// --net gvisor's helper lives next to isobox.
	if err := copyFile(filepath.Join(filepath.Dir(bin), "isobox-gvisor"), filepath.Join(dir, "isobox-gvisor")); err != nil {
		return err
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

	fmt.Println("\n== start to exit of /bin/true (median of 21 after 3 warm-ups, interleaved)")
	peers := [][]string{
		{"isobox --net slirp", runner, "run", "--rm", "--net", "slirp", rootfs, "/bin/true"},
		{"isobox --net gvisor", runner, "run", "--rm", "--net", "gvisor", rootfs, "/bin/true"},
		{"isobox --net none", runner, "run", "--rm", "--net", "none", rootfs, "/bin/true"},
	}
	if p, err := exec.LookPath("rootlesskit"); err == nil {
		peers = append(peers, []string{"rootlesskit --net=slirp4netns", p, "--net=slirp4netns", "--disable-host-loopback", "/bin/true"})
	} else {
		fmt.Println("rootlesskit: not installed, skipped (sudo apt-get install rootlesskit)")
	}
	times := map[string][]time.Duration{}
	for i := 0; i < 24; i++ {
		for _, p := range peers {
			start := time.Now()
			if out, err := command(p[1], p[2:]...).CombinedOutput(); err != nil {
				return fmt.Errorf("%s: %v %s", p[0], err, out)
			}
			if i >= 3 {
				times[p[0]] = append(times[p[0]], time.Since(start))
			}
		}
	}
	for _, p := range peers {
		med, lo, hi := stats(times[p[0]])
		results["start_ms "+p[0]] = ms(med)
		fmt.Printf("%-32s median %7.1f ms   (p10 %.1f, p90 %.1f)\n", p[0], ms(med), ms(lo), ms(hi))
	}
	if rk, ok := results["start_ms rootlesskit --net=slirp4netns"]; ok {
		r := results["start_ms isobox --net slirp"] / rk
		results["ratio start isobox-slirp/rootlesskit"] = r
		fmt.Printf("ratio isobox --net slirp / rootlesskit: %.2f (target <= 0.5)\n", r)
	}

	mb := 1024
	if v, err := strconv.Atoi(os.Getenv("ISOBOX_BENCH_MB")); err == nil && v > 0 {
		mb = v
	}
	fmt.Printf("\n== bulk TCP throughput, %d MiB\n", mb)
	for _, mode := range []struct{ net, gateway string }{{"slirp", "10.0.2.2"}, {"gvisor", "10.0.2.1"}} {
		in, err := intoContainer(mode.net, mb)
		if err != nil {
			return fmt.Errorf("%s host->container: %w", mode.net, err)
		}
		out, err := toHost(mode.net, mode.gateway, mb)
		if err != nil {
			return fmt.Errorf("%s container->host: %w", mode.net, err)
		}
		results["gbps published "+mode.net] = in
		results["gbps host-loopback "+mode.net] = out
		fmt.Printf("%-8s host->container (published port) %6.2f Gbit/s (target >= 5)   container->host (--allow-host-loopback) %6.2f Gbit/s\n", mode.net, in, out)
	}
	b, _ := json.MarshalIndent(results, "", "  ")
	fmt.Printf("\n%s\n", b)
	return nil
}

func command(name string, args ...string) *exec.Cmd {
	c := exec.Command(name, args...)
	c.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME=/tmp"}
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
func intoContainer(mode string, mb int) (float64, error) {
	port := freePort()
	c := command(runner, "run", "--rm", "--net", mode, "-p", fmt.Sprintf("%d:5000", port), rootfs,
		"tcpio", "sink", "5000")
	out, _ := c.StdoutPipe()
	c.Stderr = os.Stderr
	if err := c.Start(); err != nil {
		return 0, err
	}
	defer c.Wait()
	defer c.Process.Kill()
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
func toHost(mode, gateway string, mb int) (float64, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	c := command(runner, "run", "--rm", "--net", mode, "--allow-host-loopback", rootfs,
		"tcpio", "send", net.JoinHostPort(gateway, strconv.Itoa(port)), strconv.Itoa(mb))
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
