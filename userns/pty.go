package userns

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// ptyPair is a terminal from the container's own devpts instance: the
// command gets the slave, the runner the master. Nothing of the caller's
// terminal is ever handed to the container.
type ptyPair struct{ master, slave int }

func openPTY(c *Config) (*ptyPair, error) {
	master, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/ptmx: %w", err)
	}
	if err := unix.IoctlSetPointerInt(master, unix.TIOCSPTLCK, 0); err != nil {
		unix.Close(master)
		return nil, fmt.Errorf("unlockpt: %w", err)
	}
	// TIOCGPTPEER opens the slave through the master, not by a path that
	// something in the container could have replaced.
	slave, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(master), unix.TIOCGPTPEER, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC)
	if errno != 0 {
		unix.Close(master)
		return nil, fmt.Errorf("ioctl(TIOCGPTPEER): %w", errno)
	}
	p := &ptyPair{master: master, slave: int(slave)}
	if err := unix.Fchown(p.slave, int(c.UID), -1); err != nil {
		p.close()
		return nil, fmt.Errorf("fchown pty to %d: %w", c.UID, err)
	}
	if c.Rows > 0 && c.Cols > 0 {
		unix.IoctlSetWinsize(master, unix.TIOCSWINSZ, &unix.Winsize{Row: c.Rows, Col: c.Cols})
	}
	return p, nil
}

// becomeControllingTerminal makes the slave the calling process's terminal
// and its standard streams (--no-init with -t). Init leads its own session.
func (p *ptyPair) becomeControllingTerminal() error {
	if err := unix.IoctlSetInt(p.slave, unix.TIOCSCTTY, 0); err != nil {
		return fmt.Errorf("ioctl(TIOCSCTTY): %w", err)
	}
	for fd := 0; fd < 3; fd++ {
		if err := unix.Dup3(p.slave, fd, 0); err != nil {
			return fmt.Errorf("dup3 pty to %d: %w", fd, err)
		}
	}
	unix.Close(p.slave)
	return nil
}

func (p *ptyPair) close() {
	unix.Close(p.master)
	unix.Close(p.slave)
}

// SendConsole hands a terminal's master to the program listening on the
// unix socket at path, as runc's --console-socket does: one message on a
// stream connection, the terminal's name as its bytes and the master as
// SCM_RIGHTS. The caller keeps its own copy of master.
func SendConsole(path string, master int) error {
	conn, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("--console-socket: socket: %w", err)
	}
	defer unix.Close(conn)
	if err := unix.Connect(conn, &unix.SockaddrUnix{Name: path}); err != nil {
		return fmt.Errorf("--console-socket: connect %s: %w", path, err)
	}
	name := "/dev/ptmx"
	if n, err := unix.IoctlGetUint32(master, unix.TIOCGPTN); err == nil {
		name = fmt.Sprintf("/dev/pts/%d", n)
	}
	if err := unix.Sendmsg(conn, []byte(name), unix.UnixRights(master), nil, 0); err != nil {
		return fmt.Errorf("--console-socket: send the terminal to %s: %w", path, err)
	}
	return nil
}
