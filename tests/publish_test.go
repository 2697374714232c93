package tests

import (
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// freePort returns a port nothing listens on at the moment, on 127.0.0.1.
func freePort(t *testing.T, proto string) int {
	t.Helper()
	if proto == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestPublishedTCPPortServesAFileToTheHost(t *testing.T) {
	forEachNetMode(t, testPublishedTCP)
}

func testPublishedTCP(t *testing.T, mode, _, _ string) {
	port := freePort(t, "tcp")
	spec := strconv.Itoa(port) + ":8000"
	cmd, _ := startContainer(t, []string{"--net", mode, "-p", spec},
		"echo hello-published > /tmp/index.html; httpd -p 8000 -h /tmp; echo ready; exec sleep 987658")
	body := httpGet(t, "127.0.0.1:"+strconv.Itoa(port), "/index.html")
	if !strings.Contains(body, "hello-published") {
		t.Fatalf("fetched %q", body)
	}
	cmd.Process.Signal(os.Interrupt)
	waitCode(t, cmd)
	waitNoLeftovers(t, "slirp4netns", "sleep 987658")
	if c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
		c.Close()
		t.Fatal("the host port is still open after the container exited")
	}
}

// httpGet fetches path from addr with HTTP/1.0 by hand (no proxy settings,
// no redirects: only loopback is ever dialed).
func httpGet(t *testing.T, addr, path string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	io.WriteString(c, "GET "+path+" HTTP/1.0\r\n\r\n")
	b, _ := io.ReadAll(c)
	return string(b)
}

func TestPublishedUDPPortAnswers(t *testing.T) {
	forEachNetMode(t, testPublishedUDP)
}

func testPublishedUDP(t *testing.T, mode, _, _ string) {
	root := fresh(t)
	buildInto(t, root, "udpecho")
	port := freePort(t, "udp")
	args := []string{binary, "run", "--net", mode, "-p", strconv.Itoa(port) + ":5353/udp", root, "udpecho", "5353"}
	cmd := command(tester, nil, args...)
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() }()
	buf := make([]byte, 6)
	if _, err := io.ReadFull(out, buf); err != nil || string(buf) != "ready\n" {
		t.Fatalf("udpecho did not start: %q %v", buf, err)
	}
	c, err := net.Dial("udp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	reply := make([]byte, 64)
	// UDP may drop a datagram: ask a few times, each bounded.
	for i := 0; i < 10; i++ {
		c.Write([]byte("ping"))
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if n, err := c.Read(reply); err == nil {
			if got := string(reply[:n]); got != "udp-pong:ping" {
				t.Fatalf("reply %q", got)
			}
			return
		}
	}
	t.Fatal("no UDP reply through the published port")
}

func TestPublishErrors(t *testing.T) {
	requireBinary(t, "slirp4netns")
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	inUse := strconv.Itoa(busy.Addr().(*net.TCPAddr).Port)
	for name, args := range map[string][]string{
		"host port in use":      {"-p", inUse + ":80"},
		"privileged host port":  {"-p", "80:80"},
		"port 0":                {"-p", "0:80"},
		"port over 65535":       {"-p", "65536:80"},
		"unknown protocol":      {"-p", "8080:80/sctp"},
		"bad IP":                {"-p", "300.1.1.1:8080:80"},
		"same host port twice":  {"-p", "18090:80", "-p", "18090:81"},
		"publish without slirp": {"--net", "none", "-p", "18091:80"},
	} {
		t.Run(name, func(t *testing.T) {
			if name == "privileged host port" && mustRead(t, "/proc/sys/net/ipv4/ip_unprivileged_port_start") == "0\n" {
				t.Skip("every port is unprivileged on this machine")
			}
			if name != "publish without slirp" {
				args = append([]string{"--net", "slirp"}, args...)
			}
			mounts := hostMounts(t)
			r := isobox(t, append(append([]string{"run"}, args...), rootfs, "true")...)
			if r.code != 125 {
				t.Fatalf("exit %d, want 125: %s", r.code, r)
			}
			checkOneErrorLine(t, r)
			waitNoLeftovers(t, "slirp4netns")
			if hostMounts(t) != mounts {
				t.Fatal("the host's mounts changed")
			}
		})
	}
}
