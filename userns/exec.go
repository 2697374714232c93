package userns

import (
	"errors"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// Exec runs a process in the running container whose record is in dir,
// the way Run runs its command: the caller's standard streams (or, with
// TTY, a terminal from the container's devpts), signals passed on, and the
// process's exit status returned (128+N for a signal). It asks the
// container's init over the record's exec socket; see execServer.
func Exec(dir string, r ExecRequest) (int, error) {
	ch, err := dialExec(dir)
	if err != nil {
		return 0, setupError(err)
	}
	defer ch.Close()
	var term *terminal
	var fds []int
	if r.TTY {
		term = newTerminal(os.Stdin, os.Stdout)
		r.Rows, r.Cols = term.size()
		r.Term = os.Getenv("TERM")
	} else {
		fds = []int{0, 1, 2}
	}
	sigc := make(chan os.Signal, 32)
	signal.Notify(sigc, runnerSignals...)
	defer signal.Stop(sigc)
	if err := ch.send(Message{Kind: MsgExecRequest, Exec: &r}, fds...); err != nil {
		return 0, setupError(err)
	}
	m, got, err := ch.expect(MsgStarted)
	if err != nil {
		if errors.Is(err, errHungUp) {
			return 0, setupError(errNoExecServer)
		}
		return 0, stageError(err)
	}
	copied, detach := term.connect(got)
	defer detach()
	go func() {
		for s := range sigc {
			if s == unix.SIGWINCH {
				if term != nil {
					term.resize()
				}
				continue
			}
			ch.send(Message{Kind: MsgSignal, Signal: int(s.(syscall.Signal))})
		}
	}()
	m, _, err = ch.expect(MsgExit)
	if err != nil {
		// init is gone: the container stopped, and with it the PID
		// namespace, whose processes the kernel killed.
		return exitSignalShift + int(unix.SIGKILL), nil
	}
	if copied != nil {
		<-copied
	}
	return m.Code, nil
}
