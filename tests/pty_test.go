package tests

import (
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// testPTY is a terminal the test owns, to run isobox on as a user would.
type testPTY struct{ master, slave *os.File }

func openTestPTY(t *testing.T) *testPTY {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pty: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetUint32(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile("/dev/pts/"+itoa(int(n)), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if asRoot {
		s.Chown(int(tester.uid), -1)
	}
	t.Cleanup(func() { m.Close(); s.Close() })
	return &testPTY{master: m, slave: s}
}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}

func (p *testPTY) setSize(t *testing.T, rows, cols uint16) {
	if err := unix.IoctlSetWinsize(int(p.slave.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols}); err != nil {
		t.Fatal(err)
	}
}

func (p *testPTY) termios(t *testing.T) unix.Termios {
	tio, err := unix.IoctlGetTermios(int(p.slave.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	return *tio
}

// runOnPTY runs cmd on the pty's slave and returns what it wrote. afterExit
// runs once cmd has exited, while the slave is still open.
func runOnPTY(t *testing.T, cmd *exec.Cmd, p *testPTY, afterExit ...func()) string {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	copied := make(chan struct{})
	go func() { io.Copy(&out, p.master); close(copied) }()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("isobox: %v", err)
		}
	case <-time.After(time.Minute):
		cmd.Process.Kill()
		t.Fatal("isobox on a terminal did not exit within a minute")
	}
	for _, f := range afterExit {
		f()
	}
	// With the last slave descriptor closed, the master returns what is
	// buffered, then EIO.
	p.slave.Close()
	select {
	case <-copied:
	case <-time.After(time.Minute):
		t.Fatal("the terminal's output did not end within a minute")
	}
	return strings.ReplaceAll(out.String(), "\r", "")
}
