package userns

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/isobox/isobox/userns/state"
)

// The start gate: `isobox oci create` starts a container that stops just
// before its command runs (namespaces, mounts, network all made; init
// waiting for "network ready"), and `isobox oci start` lets it go, from
// another process. The runner listens on a socket in the record's
// directory (mode 0700, the caller's); start connects, the runner lets
// init run the command, and answers with one byte once it runs, or closes
// the connection if it could not.

// StartSocket is the gate's socket in a record's directory.
const StartSocket = "start.sock"

// ErrNotCreated: start of a container that is not waiting for it.
var ErrNotCreated = errors.New("container is not in the created state")

// gate is the runner's side.
type gate struct{ fd int }

func openGate(dir string) (*gate, error) {
	addr, closeDir, err := socketAddrOf(dir, StartSocket)
	if err != nil {
		return nil, err
	}
	defer closeDir()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("start socket: %w", err)
	}
	path := filepath.Join(dir, StartSocket)
	if err := unix.Bind(fd, addr); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "bind", Path: path, Err: err}
	}
	if err := unix.Listen(fd, 1); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "listen", Path: path, Err: err}
	}
	return &gate{fd: fd}, nil
}

// wait blocks until start connects (its connection returned) or process
// pid exits (the container was killed while created).
func (g *gate) wait(pid int) (int, error) {
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return -1, fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	defer unix.Close(pidfd)
	for {
		fds := []unix.PollFd{{Fd: int32(g.fd), Events: unix.POLLIN}, {Fd: int32(pidfd), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds, -1); err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return -1, fmt.Errorf("poll: %w", err)
		}
		if fds[1].Revents != 0 {
			return -1, errors.New("the container exited before it was started")
		}
		if fds[0].Revents&unix.POLLIN != 0 {
			c, _, err := unix.Accept4(g.fd, unix.SOCK_CLOEXEC)
			if errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN) {
				continue
			}
			if err != nil {
				return -1, fmt.Errorf("accept: %w", err)
			}
			return c, nil
		}
	}
}

func (g *gate) close(dir string) {
	unix.Close(g.fd)
	os.Remove(filepath.Join(dir, StartSocket))
}

// waitForStart is Run's stop for `oci create`: the record shows PID 1 and
// "created", onCreated tells the caller, and the start gate waits for
// `oci start` (its connection returned) or for init's death.
// created says whether it got that far: a container killed while created
// keeps its record (stopped, for delete), as runc's does.
func waitForStart(record *state.Container, initPid int, initStart uint64, onCreated func()) (conn int, created bool, err error) {
	if record == nil {
		return -1, false, errors.New("a container that waits for start needs a record")
	}
	g, err := openGate(record.Dir)
	if err != nil {
		return -1, false, err
	}
	defer g.close(record.Dir)
	boot := state.BootID()
	if err := record.Update(func(r *state.Record) {
		r.PID, r.PIDStart, r.BootID, r.AwaitingStart = initPid, initStart, boot, true
	}); err != nil {
		return -1, false, err
	}
	if onCreated != nil {
		onCreated()
	}
	conn, err = g.wait(initPid)
	return conn, true, err
}

// Start lets a created container's command run, and returns once it does.
func Start(dir string) error {
	addr, closeDir, err := socketAddrOf(dir, StartSocket)
	if err != nil {
		return err
	}
	defer closeDir()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("start socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Connect(fd, addr); err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ECONNREFUSED) {
			return ErrNotCreated
		}
		return &os.PathError{Op: "connect", Path: filepath.Join(dir, StartSocket), Err: err}
	}
	// One byte 1 when the command runs; else the runner's error, if it
	// could say it, before it hangs up.
	b := make([]byte, 4096)
	for {
		n, err := unix.Read(fd, b)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		switch {
		case n == 1 && b[0] == 1:
			return nil
		case n > 0:
			return fmt.Errorf("the container's command did not start: %s", b[:n])
		}
		return errors.New("the container's command did not start (its runner exited)")
	}
}
