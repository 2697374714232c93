package tests

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Network tests talk only to the container's own 10.0.2.0/24 and to a
// server the test itself runs on the host's 127.0.0.1.

// netModes are the user-mode network drivers with their gateway (and DNS).
var netModes = []struct{ name, gateway, dns string }{
	{"slirp", "10.0.2.2", "10.0.2.3"},
	{"gvisor", "10.0.2.1", "10.0.2.1"},
}

// forEachNetMode runs test once per user-mode driver, as a subtest.
func forEachNetMode(t *testing.T, test func(t *testing.T, mode, gateway, dns string)) {
	for _, m := range netModes {
		t.Run(m.name, func(t *testing.T) {
			if m.name == "slirp" {
				requireBinary(t, "slirp4netns")
			}
			test(t, m.name, m.gateway, m.dns)
		})
	}
}

func TestUserModeNetworkGivesTapAddressRouteAndResolver(t *testing.T) {
	forEachNetMode(t, testTapAddressRouteAndResolver)
}

func testTapAddressRouteAndResolver(t *testing.T, mode, gateway, dns string) {
	root := fresh(t)
	before := snapshot(t, filepath.Join(root, "etc"))
	out := inContainer(t, "ip -o addr show tap0; ip -o link show tap0; ip route; cat /etc/resolv.conf /etc/hosts",
		"--net", mode, "--hostname", "web")
	for _, want := range []string{"inet 10.0.2.100/24", "mtu 65520", "default via " + gateway + " dev tap0",
		"nameserver " + dns, "10.0.2.100\tweb", "127.0.0.1\tlocalhost"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	// The same run with the rootfs given directly: nothing on disk changed.
	if r := isobox(t, "run", "--net", mode, root, "true"); r.code != 0 {
		t.Fatal(r)
	}
	if after := snapshot(t, filepath.Join(root, "etc")); after != before {
		t.Fatalf("the rootfs's /etc changed on disk:\n%s\n---\n%s", before, after)
	}
}

func TestHostLoopbackIsBlockedUnlessAllowed(t *testing.T) {
	forEachNetMode(t, testHostLoopback)
}

func testHostLoopback(t *testing.T, mode, gateway, _ string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, "hello-from-host-loopback")
	})}
	go srv.Serve(ln)
	defer srv.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	// nc, not wget: Debian's static BusyBox wget crashes (on the host too).
	fetch := fmt.Sprintf(`printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 5 %s %d 2>&1`, gateway, port)

	blocked := isobox(t, "run", "--net", mode, rootfs, "sh", "-c", fetch)
	if strings.Contains(blocked.stdout, "hello-from-host-loopback") {
		t.Fatalf("the container reached the host's 127.0.0.1 without --allow-host-loopback:\n%s", blocked)
	}
	allowed := isobox(t, "run", "--net", mode, "--allow-host-loopback", rootfs, "sh", "-c", fetch)
	if !strings.Contains(allowed.stdout, "hello-from-host-loopback") {
		t.Fatalf("--allow-host-loopback did not reach the host's 127.0.0.1:\n%s", allowed)
	}
}

func TestNetworkHelpersLiveExactlyAsLongAsTheContainer(t *testing.T) {
	forEachNetMode(t, testHelperLifetime)
}

func testHelperLifetime(t *testing.T, mode, _, _ string) {
	mounts := hostMounts(t)
	// Normal exit, with a published port too.
	if r := isobox(t, "run", "--net", mode, "-p", "127.0.0.1:18095:80", rootfs, "true"); r.code != 0 {
		t.Fatal(r)
	}
	waitNoLeftovers(t, "slirp4netns")
	// SIGTERM to the runner, then SIGKILL.
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		cmd, _ := startContainer(t, []string{"--net", mode, "-p", "127.0.0.1:18096:80"}, "echo ready; exec sleep 987657")
		cmd.Process.Signal(sig)
		cmd.Wait()
		waitNoLeftovers(t, "slirp4netns", "sleep 987657")
		if c, err := net.Dial("tcp", "127.0.0.1:18096"); err == nil {
			c.Close()
			t.Fatalf("%v: the published port outlived the runner", sig)
		}
	}
	if hostMounts(t) != mounts {
		t.Fatal("the host's mounts changed")
	}
	// The helpers' sockets lived on the holder's private tmpfs: nothing of
	// theirs is in the host's /dev/shm.
	if entries, _ := os.ReadDir("/dev/shm"); len(entries) > 0 {
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), ".bp") || e.Name() == "gvisortapvsock" {
				t.Fatalf("a helper's state is in the host's /dev/shm: %s", e.Name())
			}
		}
	}
}

func TestUnusableTunIsOneClearError(t *testing.T) {
	requireBinary(t, "slirp4netns")
	requireRoot(t, "make /dev/net/tun unusable for a moment")
	fi, err := os.Stat("/dev/net/tun")
	if err != nil {
		t.Skip("no /dev/net/tun")
	}
	os.Chmod("/dev/net/tun", 0o600)
	defer os.Chmod("/dev/net/tun", fi.Mode().Perm())
	r := isobox(t, "run", "--net", "slirp", rootfs, "true")
	if r.code != 125 || !strings.Contains(r.stderr, "/dev/net/tun") || !strings.Contains(r.stderr, "chmod 0666") {
		t.Fatalf("want exit 125 explaining /dev/net/tun: %s", r)
	}
	checkOneErrorLine(t, r)
	waitNoLeftovers(t, "slirp4netns")
}

// pathWithoutSlirp4netns is a PATH with the tools the drivers run (nsenter,
// ip) but no slirp4netns: a machine where it is not installed.
func pathWithoutSlirp4netns(t *testing.T) string {
	t.Helper()
	dir := userDir(tester, "path")
	for _, tool := range []string{"nsenter", "ip"} {
		p := requireBinary(t, tool)
		if err := os.Symlink(p, filepath.Join(dir, tool)); err != nil {
			t.Fatal(err)
		}
	}
	return "PATH=" + dir
}

func TestDefaultNetworkIsSlirpOrGvisorWithOneLine(t *testing.T) {
	requireBinary(t, "slirp4netns")
	if got := inContainer(t, "cat /etc/resolv.conf"); got != "nameserver 10.0.2.3\n" {
		t.Fatalf("the default network is not slirp4netns: resolv.conf %q", got)
	}
	env := []string{pathWithoutSlirp4netns(t)}
	cmd := command(tester, nil, binary, "run", rootfs, "cat", "/etc/resolv.conf")
	cmd.Env = append(cmd.Env, env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || string(out) != "nameserver 10.0.2.1\n" {
		t.Fatalf("without slirp4netns the default is not gvisor: %q %v %s", out, err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], "using --net gvisor") {
		t.Fatalf("want one line saying gvisor is used, got %q", stderr.String())
	}
	// Asked for by name, a missing slirp4netns is an error naming the
	// package and the alternative.
	cmd = command(tester, env, binary, "run", "--net", "slirp", rootfs, "true")
	var errb strings.Builder
	cmd.Stderr = &errb
	err = cmd.Run()
	r := result{stderr: errb.String(), code: cmd.ProcessState.ExitCode()}
	if err == nil || r.code != 125 || !strings.Contains(r.stderr, "apt-get install slirp4netns") || !strings.Contains(r.stderr, "--net gvisor") {
		t.Fatalf("--net slirp without slirp4netns: %s", r)
	}
	checkOneErrorLine(t, r)
}

func TestPastaOlderThanTheDriverNeedsIsRefused(t *testing.T) {
	requireBinary(t, "pasta")
	deb, _ := exec.Command("dpkg-query", "-W", "-f=${Version}", "passt").Output()
	if !strings.Contains(string(deb), "git2023030") && !strings.Contains(string(deb), "git202302") {
		t.Skipf("passt %s is not one of the old releases this test is about", deb)
	}
	mounts := hostMounts(t)
	r := isobox(t, "run", "--net", "pasta", rootfs, "true")
	if r.code != 125 || !strings.Contains(r.stderr, "20230625") || !strings.Contains(r.stderr, "--net slirp") {
		t.Fatalf("want exit 125 naming the version needed and the alternative: %s", r)
	}
	checkOneErrorLine(t, r)
	waitNoLeftovers(t, "pasta", "slirp4netns")
	if hostMounts(t) != mounts {
		t.Fatal("the host's mounts changed")
	}
}

func TestGvisorWithoutItsHelperIsOneClearError(t *testing.T) {
	dir := userDir(tester, "alone")
	alone := filepath.Join(dir, "isobox")
	if r := runAs(tester, nil, "cp", binary, alone); r.code != 0 {
		t.Fatal(r)
	}
	r := runAs(tester, nil, alone, "run", "--net", "gvisor", rootfs, "true")
	if r.code != 125 || !strings.Contains(r.stderr, "isobox-gvisor") {
		t.Fatalf("want exit 125 naming isobox-gvisor: %s", r)
	}
	checkOneErrorLine(t, r)
	waitNoLeftovers(t, "isobox-gvisor")
}

// buildInto builds a test program from testdata statically into root/bin.
func buildInto(t *testing.T, root, name string) {
	t.Helper()
	if err := buildStatic(filepath.Join(root, "bin", name), "./testdata/"+name); err != nil {
		t.Fatal(err)
	}
}

// A container that sends data and exits at once must not lose the bytes
// the network helper has already acknowledged but not yet delivered: the
// helper is stopped only once its connections are done.
func TestDataSentJustBeforeExitIsDelivered(t *testing.T) {
	forEachNetMode(t, func(t *testing.T, mode, gateway, _ string) {
		root := fresh(t)
		buildInto(t, root, "tcpsend")
		const mb = 256
		for i := 0; i < 3; i++ {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			port := ln.Addr().(*net.TCPAddr).Port
			got := make(chan int64, 1)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					got <- -1
					return
				}
				n, _ := io.Copy(io.Discard, c)
				c.Close()
				got <- n
			}()
			r := isobox(t, "run", "--net", mode, "--allow-host-loopback", root, "tcpsend", net.JoinHostPort(gateway, strconv.Itoa(port)), strconv.Itoa(mb))
			if r.code != 0 {
				t.Fatal(r)
			}
			select {
			case n := <-got:
				if n != mb<<20 {
					t.Fatalf("run %d: the host received %d of %d bytes", i, n, mb<<20)
				}
			case <-time.After(time.Minute):
				t.Fatal("nothing received within a minute")
			}
			ln.Close()
		}
	})
}

// The slirp4netns driver creates the tap by running nsenter and the host's
// ip in the mount namespace of the process it is given. Without a holder
// that process is init, so the host's root must still be init's root then:
// a rootfs's own ip, planted everywhere PATH looks, is never what runs.
func TestNetworkHelpersNeverRunTheRootfsPrograms(t *testing.T) {
	requireBinary(t, "slirp4netns")
	root := fresh(t)
	planted := "#!/bin/sh\ntouch /ran-rootfs-ip\nexit 1\n"
	for _, dir := range []string{"bin", "sbin", "usr/bin", "usr/sbin", "usr/local/bin", "usr/local/sbin"} {
		if r := runAs(tester, nil, "mkdir", "-p", filepath.Join(root, dir)); r.code != 0 {
			t.Fatal(r)
		}
		p := filepath.Join(root, dir, "ip")
		if r := runAs(tester, strings.NewReader(planted), "sh", "-c", "rm -f "+p+"; cat > "+p+"; chmod 755 "+p); r.code != 0 {
			t.Fatal(r)
		}
	}
	r := isobox(t, "run", "--net", "slirp", root, "sh", "-c", "cat /sys/class/net/tap0/operstate; ls /ran-rootfs-ip 2>&1")
	if r.code == 0 || !strings.Contains(r.stdout, "up") || !strings.Contains(r.stdout, "No such file") {
		t.Fatalf("want tap0 up and no trace of the rootfs's ip (ls exits 1): %s", r)
	}
	if _, err := os.Stat(filepath.Join(root, "ran-rootfs-ip")); err == nil {
		t.Fatal("the rootfs's ip ran")
	}
}

// A driver that fails before it has made the tap ends the start at once,
// with its error: init, waiting for that tap to come up, is not waited for.
func TestNetworkDriverFailingBeforeTheTapEndsTheStart(t *testing.T) {
	requireBinary(t, "slirp4netns")
	dir := userDir(tester, "failing-ip")
	if err := os.WriteFile(filepath.Join(dir, "ip"), []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := runAs(tester, nil, "env", "PATH="+dir+":/usr/bin:/bin:/usr/sbin:/sbin", binary, "run", "--rm", "--net", "slirp", rootfs, "true")
	if r.code != 125 || !strings.Contains(r.stderr, "tap0") {
		t.Fatalf("want exit 125 naming the tap: %s", r)
	}
	checkOneErrorLine(t, r)
	waitNoLeftovers(t)
}
