package userns

import (
	"fmt"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/isobox/isobox/userns/seccomp"
)

// Everything that limits the container's processes is a property of the
// thread that forks them: the capability bounding set, no_new_privs, the
// seccomp filter and the session keyring are all per thread in Linux, and
// a child inherits them from the thread that forked it. init is a Go
// program whose goroutines move between threads, so every fork of a
// container process (the command, and each `isobox exec`) goes through one
// goroutine locked to one thread that took these limits first. init's
// other threads keep what init needs for itself; Go creates new threads
// from its template thread, never from a locked one, so nothing leaks
// either way.
type forker struct {
	reqs chan forkRequest
}

type forkRequest struct {
	argv0 string
	argv  []string
	attr  *syscall.ProcAttr
	reply chan forkReply
}

type forkReply struct {
	pid int
	err error
}

// startForker starts the locked thread and applies c's limits to it; it
// returns once they are in place.
func startForker(c *Config) (*forker, error) {
	f := &forker{reqs: make(chan forkRequest)}
	ready := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // for good: the thread dies with init
		if err := lockDown(c); err != nil {
			ready <- err
			return
		}
		ready <- nil
		for r := range f.reqs {
			pid, err := syscall.ForkExec(r.argv0, r.argv, r.attr)
			r.reply <- forkReply{pid, err}
		}
	}()
	if err := <-ready; err != nil {
		return nil, err
	}
	return f, nil
}

// forkExec is syscall.ForkExec on the locked thread.
func (f *forker) forkExec(argv0 string, argv []string, attr *syscall.ProcAttr) (int, error) {
	reply := make(chan forkReply, 1)
	f.reqs <- forkRequest{argv0, argv, attr, reply}
	r := <-reply
	return r.pid, r.err
}

// lockDown limits the calling thread, and so every process it forks or
// becomes by exec, and nothing else: init's other threads keep what its
// own set-up needs, so the two may run at once (Go starts new threads
// from a clean template thread, never from a locked one). It gives a session
// keyring of its own, the capability bounding set, no_new_privs unless
// turned off, and the seccomp filter. The caller has locked its thread.
func lockDown(c *Config) error {
	// The caller's keys (and those of the user's other containers) are
	// not the container's to read.
	if _, _, errno := unix.Syscall(unix.SYS_KEYCTL, unix.KEYCTL_JOIN_SESSION_KEYRING, 0, 0); errno != 0 && errno != unix.ENOSYS {
		return fmt.Errorf("keyctl(KEYCTL_JOIN_SESSION_KEYRING): %w", errno)
	}
	if err := limitBoundingSet(c.Caps); err != nil {
		return err
	}
	if c.InheritableCaps != 0 {
		// What init was not given it cannot pass on: a direct init gets
		// its capabilities as ambient ones, within the caller's bounding
		// set (a host may have dropped some, CAP_SYS_RESOURCE here).
		have, err := permittedCaps()
		if err != nil {
			return err
		}
		c.InheritableCaps &= c.Caps & have
		c.AmbientCaps &= c.InheritableCaps
		if err := setInheritable(c.InheritableCaps); err != nil {
			return err
		}
	}
	if !c.NewPrivs {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("prctl(PR_SET_NO_NEW_PRIVS): %w", err)
		}
	}
	// Last, as it may forbid the calls above.
	return seccomp.Install(c.Seccomp)
}
