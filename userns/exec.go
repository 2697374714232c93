package userns

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
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
	switch {
	case r.TTY && r.ConsoleSocket != "":
		r.Term = os.Getenv("TERM")
	case r.TTY:
		term = newTerminal(os.Stdin, os.Stdout)
		r.Rows, r.Cols = term.size()
		r.Term = os.Getenv("TERM")
	default:
		fds = []int{0, 1, 2}
	}
	sigc := make(chan os.Signal, 32)
	signal.Notify(sigc, runnerSignals...)
	defer signal.Stop(sigc)
	watched := r.Detach && r.OnWatcher != nil
	if watched {
		// Held by the watcher: init kills the process if it goes.
		r.Detach = false
	}
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
	if r.ConsoleSocket != "" {
		err := errors.New("protocol: no terminal came with started")
		if len(got) == 1 {
			err = SendConsole(r.ConsoleSocket, got[0])
		}
		closeAll(got)
		got = nil
		if err != nil {
			return 0, setupError(err)
		}
	}
	if r.OnStarted != nil {
		if err := r.OnStarted(m.Pid); err != nil {
			return 0, setupError(err)
		}
	}
	if watched {
		closeAll(got)
		pid, err := startWatcher(ch)
		if err == nil {
			err = r.OnWatcher(pid)
		}
		if err != nil {
			return 0, setupError(err)
		}
		return 0, nil
	}
	if r.Detach {
		closeAll(got)
		return 0, nil
	}
	copied, detach := term.connect(got)
	defer detach()
	code, ok := relay(ch, sigc, func() {
		if term != nil {
			term.resize()
		}
	})
	if ok && copied != nil {
		<-copied
	}
	return code, nil
}

// relay passes the signals of sigc on to the exec'd process over its
// connection ch (SIGWINCH to winch instead) until the process exits, and
// returns its status. ok is false when init hung up instead: the container
// stopped, and with it the PID namespace, whose processes the kernel
// killed; the status is then SIGKILL's.
func relay(ch *channel, sigc <-chan os.Signal, winch func()) (code int, ok bool) {
	go func() {
		for s := range sigc {
			if s == unix.SIGWINCH {
				winch()
				continue
			}
			ch.send(Message{Kind: MsgSignal, Signal: int(s.(syscall.Signal))})
		}
	}()
	m, _, err := ch.expect(MsgExit)
	if err != nil {
		return exitSignalShift + int(unix.SIGKILL), false
	}
	return m.Code, true
}

// startWatcher starts the watcher of an exec'd process with the
// connection ch, in a session of its own (a detached process), and lets it
// go: it outlives this process, and is its caller's to reap.
func startWatcher(ch *channel) (int, error) {
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		return 0, err
	}
	defer devNull.Close()
	cmd := &exec.Cmd{
		Path: selfExe, Args: []string{stageWatcher}, Env: []string{},
		Stdin: devNull, Stdout: devNull, Stderr: devNull,
		ExtraFiles:  []*os.File{ch.f},
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start the exec'd process's watcher: %w", err)
	}
	pid := cmd.Process.Pid
	cmd.Process.Release()
	return pid, nil
}

// watcherMain is stageWatcher: it holds the exec connection on its fd 3,
// passes the signals it gets on to the process, and exits with the
// process's status (128+N for signal N; SIGKILL's when the container is
// gone). Killed itself, it hangs up, and init kills the process.
func watcherMain() error {
	ch := newChannel(fdChannel, "exec")
	sigc := make(chan os.Signal, 32)
	signal.Notify(sigc, runnerSignals...)
	code, _ := relay(ch, sigc, func() {}) // no terminal to resize
	return &reported{code}
}

// HostPid finds, among the children of the container's init (initPid, on
// the host), the process whose PID in the container is nsPid: exec'd
// processes are init's children. Its host PID is what --pid-file holds.
func HostPid(initPid, nsPid int) (int, error) {
	tasks, err := os.ReadDir("/proc/" + strconv.Itoa(initPid) + "/task")
	if err != nil {
		return 0, err
	}
	for _, t := range tasks {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(initPid) + "/task/" + t.Name() + "/children")
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			status, err := os.ReadFile("/proc/" + f + "/status")
			if err != nil {
				continue
			}
			for _, line := range strings.Split(string(status), "\n") {
				if ids, ok := strings.CutPrefix(line, "NSpid:"); ok {
					fs := strings.Fields(ids)
					if len(fs) > 0 && fs[len(fs)-1] == strconv.Itoa(nsPid) {
						return strconv.Atoi(f)
					}
				}
			}
		}
	}
	return 0, fmt.Errorf("process %d of the container is not a child of its init (%d)", nsPid, initPid)
}
