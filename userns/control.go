package userns

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/isobox/isobox/userns/state"
)

// teardownTimeout bounds the wait for a runner to finish once PID 1 is
// gone: it drains the network (at most 2 s) and stops the helpers.
const teardownTimeout = 15 * time.Second

// openPID1 returns a pidfd for the container's PID 1, checked to be that
// process and not a later one given the same number: a signal sent through
// it can reach no other process.
func openPID1(i state.Info) (int, error) {
	if !i.Running || i.PID == 0 {
		return -1, fmt.Errorf("%q: %w", i.Name, state.ErrNotRunning)
	}
	fd, err := unix.PidfdOpen(i.PID, 0)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return -1, fmt.Errorf("%q: %w", i.Name, state.ErrNotRunning)
		}
		return -1, fmt.Errorf("pidfd_open %d: %w", i.PID, err)
	}
	// Checked after the pidfd is open: from here on it names this process.
	if !i.Alive() {
		unix.Close(fd)
		return -1, fmt.Errorf("%q: %w", i.Name, state.ErrNotRunning)
	}
	return fd, nil
}

// Kill sends sig to the container's PID 1. For SIGKILL it also waits until
// the container and its runner are gone, so that nothing of it is left
// when it returns.
func Kill(i state.Info, sig unix.Signal) error {
	fd, err := openPID1(i)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.PidfdSendSignal(fd, sig, nil, 0); err != nil {
		return fmt.Errorf("signal %s to PID %d: %w", unix.SignalName(sig), i.PID, err)
	}
	if sig != unix.SIGKILL {
		return nil
	}
	waitExit(fd, -1)
	return WaitRunner(i)
}

// Stop sends SIGTERM (or the image's StopSignal) to PID 1, SIGKILL if it
// has not exited after timeout, and waits until the container and its
// runner are gone.
func Stop(i state.Info, timeout time.Duration) error {
	sig := unix.SIGTERM
	if i.StopSignal != "" {
		s, err := ParseSignal(i.StopSignal)
		if err != nil {
			return fmt.Errorf("the image's StopSignal: %w", err)
		}
		sig = s
	}
	fd, err := openPID1(i)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.PidfdSendSignal(fd, sig, nil, 0); err != nil {
		return fmt.Errorf("signal %v to PID %d: %w", sig, i.PID, err)
	}
	if !waitExit(fd, timeout) {
		if err := unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("signal SIGKILL to PID %d: %w", i.PID, err)
		}
		waitExit(fd, -1)
	}
	return WaitRunner(i)
}

// waitExit waits until the process of pidfd exits; a negative timeout
// waits for ever. It reports whether it exited.
func waitExit(pidfd int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		ms := -1
		if timeout >= 0 {
			ms = int(time.Until(deadline).Milliseconds())
			if ms < 0 {
				ms = 0
			}
		}
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}, ms)
		if err == unix.EINTR {
			continue
		}
		return err == nil && n > 0
	}
}

// WaitRunner waits until the container's runner has torn it down and
// exited (its record's lock is free), at most teardownTimeout.
func WaitRunner(i state.Info) error {
	if !state.WaitUnlocked(i.Dir, teardownTimeout) {
		return fmt.Errorf("%q: its runner (PID %d) is still tearing it down after %s", i.Name, i.RunnerPID, teardownTimeout)
	}
	return nil
}

// ParseSignal reads a signal as kill(1) and podman do: a number, or a name
// with or without SIG.
func ParseSignal(s string) (unix.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > 64 {
			return 0, fmt.Errorf("signal %q: out of range", s)
		}
		return unix.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("signal %q: unknown", s)
}

// NamespaceTypes are the kinds of namespace a container has, in lsns's
// names and the order isobox prints them.
var NamespaceTypes = []string{"user", "mnt", "pid", "uts", "ipc", "net", "cgroup", "time"}

// Namespace is one line of `isobox ns`: what lsns prints for it.
type Namespace struct {
	Inode   uint64 `json:"ns"`
	Type    string `json:"type"`
	NProcs  int    `json:"nprocs"`
	PID     int    `json:"pid"` // the lowest PID in it
	Command string `json:"command"`
}

// Namespaces lists the namespaces of process pid the way lsns counts them:
// every process this user may inspect under /proc that is in the same
// namespace, the lowest PID, and its command line.
func Namespaces(pid int) ([]Namespace, error) {
	var out []Namespace
	for _, t := range NamespaceTypes {
		ino, err := nsInode(pid, t)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) && t == "time" {
				continue // a kernel without time namespaces
			}
			return nil, err
		}
		out = append(out, Namespace{Inode: ino, Type: t})
	}
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, p := range procs {
		if n, err := strconv.Atoi(p.Name()); err == nil {
			pids = append(pids, n)
		}
	}
	sort.Ints(pids)
	for _, p := range pids {
		for k := range out {
			ino, err := nsInode(p, out[k].Type)
			if err != nil || ino != out[k].Inode {
				continue
			}
			if out[k].NProcs == 0 {
				out[k].PID = p
				out[k].Command = cmdline(p)
			}
			out[k].NProcs++
		}
	}
	return out, nil
}

func nsInode(pid int, typ string) (uint64, error) {
	link := filepath.Join("/proc", strconv.Itoa(pid), "ns", typ)
	var st unix.Stat_t
	if err := unix.Stat(link, &st); err != nil {
		return 0, &os.PathError{Op: "stat", Path: link, Err: err}
	}
	return st.Ino, nil
}

func cmdline(pid int) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	s := strings.TrimRight(strings.ReplaceAll(string(b), "\x00", " "), " ")
	if s == "" {
		c, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
		s = strings.TrimSpace(string(c))
	}
	return s
}

// Signal sends sig to the container's PID 1, or with all to every process
// in its PID namespace (`oci kill -a`, which needs no cgroup: the
// processes are found by their PID namespace under /proc). It does not
// wait.
func Signal(i state.Info, sig unix.Signal, all bool) error {
	fd, err := openPID1(i)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if !all {
		if err := unix.PidfdSendSignal(fd, sig, nil, 0); err != nil {
			return fmt.Errorf("signal %v to PID %d: %w", sig, i.PID, err)
		}
		return nil
	}
	pids, err := ContainerPIDs(i.PID)
	if err != nil {
		return err
	}
	for _, p := range pids {
		if err := unix.Kill(p, sig); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("signal %v to PID %d: %w", sig, p, err)
		}
	}
	return nil
}

// ContainerPIDs are the host PIDs of the processes in the PID namespace
// whose init is pid1 (nested ones included), lowest first.
func ContainerPIDs(pid1 int) ([]int, error) {
	want, err := nsInode(pid1, "pid")
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var out []int
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ino, err := nsInode(p, "pid"); err == nil && ino == want {
			out = append(out, p)
		}
	}
	return out, nil
}
