package slirp

import (
	"net"
	"os"
	"os/exec"
	"testing"
)

func fdState(t *testing.T, f interface{ File() (*os.File, error) }) (uint8, bool) {
	t.Helper()
	file, err := f.File()
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	return tcpState(int(file.Fd()))
}

func TestTCPStateSeparatesListenersFromLiveConnections(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if st, ok := fdState(t, ln.(*net.TCPListener)); !ok || !tcpDone[st] {
		t.Fatalf("listener: state %d tcp %v, want a done state", st, ok)
	}
	if st, ok := fdState(t, c.(*net.TCPConn)); !ok || tcpDone[st] {
		t.Fatalf("established: state %d tcp %v, want a live state", st, ok)
	}
	u, _ := net.ListenPacket("udp", "127.0.0.1:0")
	defer u.Close()
	if _, ok := fdState(t, u.(*net.UDPConn)); ok {
		t.Fatal("a UDP socket taken for TCP")
	}
}

func TestChildrenNamedFindsOnlyOwnChildren(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Skip(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	for _, find := range []func(string) []int{childrenNamed, scanChildrenNamed} {
		got := find("sleep")
		if len(got) != 1 || got[0] != cmd.Process.Pid {
			t.Errorf("found %v, want [%d]", got, cmd.Process.Pid)
		}
		if got := find("no-such-comm"); len(got) != 0 {
			t.Errorf("found %v for a name no child has", got)
		}
	}
}
