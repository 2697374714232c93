package userns

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// holder is the running stage 1 and its channel.
type holder struct {
	cmd     *exec.Cmd
	ch      *channel
	done    chan struct{}
	initPid int
	netns   string // the container's network namespace, held by the holder
	killed  atomic.Bool
}

// stdStreams are this process's own standard streams.
func stdStreams() [3]*os.File { return [3]*os.File{os.Stdin, os.Stdout, os.Stderr} }

// startHolder starts stage in a new user and mount namespace, with stdio as
// its (and the container's) standard streams. The thread
// that forks it stays locked and alive until the holder is reaped: the
// holder's parent-death signal fires when that thread exits.
func startHolder(stage string, env []string, stdio [3]*os.File, extra ...*os.File) (*holder, error) {
	parentEnd, childEnd, err := channelPair("holder")
	if err != nil {
		return nil, err
	}
	defer childEnd.Close()
	h := &holder{
		ch:   &channel{f: parentEnd, name: "holder"},
		done: make(chan struct{}),
	}
	h.cmd = &exec.Cmd{
		Path:       selfExe,
		Args:       []string{stage},
		Env:        env,
		Stdin:      stdio[0],
		Stdout:     stdio[1],
		Stderr:     stdio[2],
		ExtraFiles: append([]*os.File{childEnd}, extra...),
		SysProcAttr: &syscall.SysProcAttr{
			Cloneflags: unix.CLONE_NEWUSER | unix.CLONE_NEWNS,
			Pdeathsig:  syscall.SIGKILL,
			// Capabilities in a new user namespace are lost at execve while
			// the namespace has no maps yet (the uid is not 0 there). Raised
			// as ambient before the exec, they survive it, so the holder
			// can nest namespaces without exec'ing itself a second time.
			AmbientCaps: boundingCaps(),
		},
	}
	if stage == stageHolder {
		h.cmd.SysProcAttr.Setsid = true
	}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // Pdeathsig: see above
		defer runtime.UnlockOSThread()
		if err := h.cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		h.cmd.Wait()
		close(h.done)
	}()
	if err := <-started; err != nil {
		parentEnd.Close()
		return nil, fmt.Errorf("start %s in a new user namespace: %w%s", stage, err, userNSHint(err))
	}
	return h, nil
}

func (h *holder) kill() {
	select {
	case <-h.done:
		return
	default:
	}
	if h.killed.CompareAndSwap(false, true) {
		h.cmd.Process.Kill()
	}
	<-h.done
	h.ch.Close()
}

// wait hangs up, which lets the holder exit once init is gone, and waits.
func (h *holder) wait() {
	h.ch.Close()
	<-h.done
}

// userNSHint explains the usual reasons a user namespace cannot be made.
func userNSHint(err error) string {
	if !errors.Is(err, unix.EPERM) && !errors.Is(err, unix.EACCES) && !errors.Is(err, unix.ENOSPC) {
		return ""
	}
	return " (user namespaces are disabled or restricted on this host: run `isobox check`)"
}

// boundingCaps lists the capabilities in this process's bounding set: the
// only ones a child may raise as ambient.
func boundingCaps() []uintptr {
	last := lastCap()
	var caps []uintptr
	for c := 0; c <= last; c++ {
		if ok, _ := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(c), 0, 0, 0); ok == 1 {
			caps = append(caps, uintptr(c))
		}
	}
	return caps
}
