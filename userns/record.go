package userns

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/isobox/isobox/userns/state"
)

// recordStarted notes PID 1 in the record, with what tells it apart from a
// later process given the same PID.
func recordStarted(c *state.Container, pid int, start uint64, net Net, cgroup string) error {
	boot := state.BootID()
	return c.Update(func(r *state.Record) {
		r.PID, r.PIDStart, r.BootID, r.Started = pid, start, boot, time.Now()
		r.Cgroup = cgroup
		r.Net = string(net)
		r.AwaitingStart = false
	})
}

// settleRecord runs when Run returns. A start that failed leaves nothing
// behind; a container that ran keeps its record with the exit status,
// unless it had --rm. The lock is left to this process's exit: the record
// reads as running until the runner is really gone.
func settleRecord(c *state.Container, started bool, code int, err error, oomKilled bool, log *slog.Logger) {
	if !started || c.Record().AutoRemove {
		if rerr := c.Remove(); rerr != nil {
			log.Warn(rerr.Error())
		}
		return
	}
	uerr := c.Update(func(r *state.Record) {
		r.Finished = time.Now()
		r.OOMKilled = oomKilled
		if err == nil {
			r.ExitCode = &code
		}
	})
	if uerr != nil {
		log.Warn(uerr.Error())
	}
}

// Sockets are bound and reached through /proc/self/fd/DIR/exec.sock: the
// record's own path may be longer than a socket address allows (108 bytes).
func socketAddr(dir string) (addr *unix.SockaddrUnix, closeDir func(), err error) {
	return socketAddrOf(dir, state.SocketFile)
}

// socketAddrOf names socket file name in dir through a descriptor of dir,
// so that a long path still fits in sun_path.
func socketAddrOf(dir, name string) (addr *unix.SockaddrUnix, closeDir func(), err error) {
	d, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	return &unix.SockaddrUnix{Name: "/proc/self/fd/" + strconv.Itoa(d) + "/" + name},
		func() { unix.Close(d) }, nil
}

// listenExec binds the container's exec socket, a SOCK_SEQPACKET socket in
// its record's directory (mode 0700: no other user can reach it).
func listenExec(dir string) (*os.File, error) {
	addr, closeDir, err := socketAddr(dir)
	if err != nil {
		return nil, err
	}
	defer closeDir()
	path := filepath.Join(dir, state.SocketFile)
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("exec socket: %w", err)
	}
	if err := unix.Bind(fd, addr); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "bind", Path: path, Err: err}
	}
	// The directory already keeps others out; the socket says so too.
	if err := unix.Chmod(addr.Name, 0o600); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "chmod", Path: path, Err: err}
	}
	if err := unix.Listen(fd, 64); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "listen", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// errNoExecServer: nothing listens on the container's exec socket.
var errNoExecServer = errors.New("the container is not running")

// dialExec connects to a running container's init.
func dialExec(dir string) (*channel, error) {
	addr, closeDir, err := socketAddr(dir)
	if err != nil {
		return nil, err
	}
	defer closeDir()
	// Blocking for connect, which then waits for room in a full backlog
	// instead of failing with EAGAIN; non-blocking after, for Go's poller.
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("exec socket: %w", err)
	}
	if err := unix.Connect(fd, addr); err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.ECONNREFUSED) || errors.Is(err, unix.ENOENT) {
			return nil, errNoExecServer
		}
		return nil, &os.PathError{Op: "connect", Path: filepath.Join(dir, state.SocketFile), Err: err}
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("exec socket: %w", err)
	}
	return &channel{f: os.NewFile(uintptr(fd), "exec socket"), name: "init"}, nil
}
