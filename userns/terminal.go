package userns

import (
	"io"
	"os"

	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// terminal is the caller's side of -t: the caller's terminal is put in raw
// mode and connected to the master of a pty that init allocated in the
// container's own devpts. The caller's terminal is restored on return.
type terminal struct {
	in, out *os.File
	master  *os.File
	isTTY   bool
}

func newTerminal(in, out *os.File) *terminal {
	return &terminal{in: in, out: out, isTTY: term.IsTerminal(int(in.Fd()))}
}

// size is the caller's window size, or 0, 0 when stdin is not a terminal.
func (t *terminal) size() (rows, cols uint16) {
	if !t.isTTY {
		return 0, 0
	}
	ws, err := unix.IoctlGetWinsize(int(t.in.Fd()), unix.TIOCGWINSZ)
	if err != nil {
		return 0, 0
	}
	return ws.Row, ws.Col
}

// resize passes the caller's new window size on (SIGWINCH).
func (t *terminal) resize() {
	if t.master == nil {
		return
	}
	if rows, cols := t.size(); rows > 0 {
		unix.IoctlSetWinsize(int(t.master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols})
	}
}

// attach starts copying the caller's input to the master and returns the
// function that restores the caller's terminal.
func (t *terminal) attach(master *os.File) (restore func()) {
	t.master = master
	t.resize()
	restore = func() {}
	if t.isTTY {
		if old, err := term.MakeRaw(int(t.in.Fd())); err == nil {
			restore = func() { term.Restore(int(t.in.Fd()), old) }
		}
	}
	go io.Copy(master, t.in)
	return restore
}

// copyOut copies the container's output until the last holder of the slave
// is gone (read returns EIO), and closes the returned channel then.
func (t *terminal) copyOut(master *os.File) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		io.Copy(t.out, master)
		close(done)
	}()
	return done
}

// connect takes what init sent with "started": the master of the
// container's terminal when t is set, attached to the caller's terminal.
// It returns the channel closed once the output is copied (nil without a
// terminal) and the function that detaches and restores the caller's
// terminal. Descriptors it does not use are closed.
func (t *terminal) connect(fds []int) (copied <-chan struct{}, done func()) {
	if t == nil || len(fds) != 1 {
		closeAll(fds)
		return nil, func() {}
	}
	master := os.NewFile(uintptr(fds[0]), "pty master")
	restore := t.attach(master)
	return t.copyOut(master), func() {
		restore()
		master.Close()
	}
}
