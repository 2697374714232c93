package tests

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Network tests talk only to the container's own 10.0.2.0/24 and to a
// server the test itself runs on the host's 127.0.0.1.

func TestSlirpGivesTapAddressRouteAndResolver(t *testing.T) {
	requireBinary(t, "slirp4netns")
	root := fresh(t)
	before := snapshot(t, filepath.Join(root, "etc"))
	out := inContainer(t, "ip -o addr show tap0; ip -o link show tap0; ip route; cat /etc/resolv.conf /etc/hosts",
		"--net", "slirp", "--hostname", "web")
	for _, want := range []string{"inet 10.0.2.100/24", "mtu 65520", "default via 10.0.2.2 dev tap0",
		"nameserver 10.0.2.3", "10.0.2.100\tweb", "127.0.0.1\tlocalhost"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	// The same run with the rootfs given directly: nothing on disk changed.
	if r := isobox(t, "run", "--net", "slirp", root, "true"); r.code != 0 {
		t.Fatal(r)
	}
	if after := snapshot(t, filepath.Join(root, "etc")); after != before {
		t.Fatalf("the rootfs's /etc changed on disk:\n%s\n---\n%s", before, after)
	}
}

func TestHostLoopbackIsBlockedUnlessAllowed(t *testing.T) {
	requireBinary(t, "slirp4netns")
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
	fetch := fmt.Sprintf(`printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 5 10.0.2.2 %d 2>&1`, port)

	blocked := isobox(t, "run", "--net", "slirp", rootfs, "sh", "-c", fetch)
	if strings.Contains(blocked.stdout, "hello-from-host-loopback") {
		t.Fatalf("the container reached the host's 127.0.0.1 without --allow-host-loopback:\n%s", blocked)
	}
	allowed := isobox(t, "run", "--net", "slirp", "--allow-host-loopback", rootfs, "sh", "-c", fetch)
	if !strings.Contains(allowed.stdout, "hello-from-host-loopback") {
		t.Fatalf("--allow-host-loopback did not reach the host's 127.0.0.1:\n%s", allowed)
	}
}

func TestSlirpHelperLivesExactlyAsLongAsTheContainer(t *testing.T) {
	requireBinary(t, "slirp4netns")
	// Normal exit.
	if r := isobox(t, "run", "--net", "slirp", rootfs, "true"); r.code != 0 {
		t.Fatal(r)
	}
	waitNoLeftovers(t, "slirp4netns")
	// SIGTERM to the runner, then SIGKILL.
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		cmd, _ := startContainer(t, []string{"--net", "slirp"}, "echo ready; exec sleep 987657")
		cmd.Process.Signal(sig)
		cmd.Wait()
		waitNoLeftovers(t, "slirp4netns", "sleep 987657")
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
