package userns

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// ExecRequest is what `isobox exec` asks init to start. Empty fields take
// the container's own values (its user, working directory, environment).
type ExecRequest struct {
	Args    []string `json:"args"`
	Env     []string `json:"env,omitempty"` // KEY=VALUE, over the container's
	Workdir string   `json:"workdir,omitempty"`
	User    string   `json:"user,omitempty"` // UID[:GID] or names from the container's /etc/passwd
	TTY     bool     `json:"tty,omitempty"`
	Term    string   `json:"term,omitempty"` // the caller's $TERM, with TTY
	Rows    uint16   `json:"rows,omitempty"`
	Cols    uint16   `json:"cols,omitempty"`
	// Detach: the process keeps running when the client hangs up (oci exec
	// -d); init still reaps it.
	Detach bool `json:"detach,omitempty"`
	// ConsoleSocket, with TTY, is where the client sends the terminal's
	// master instead of joining it to its own terminal.
	ConsoleSocket string `json:"-"`
	// OnStarted is called in the client with the process's PID in the
	// container's PID namespace once it runs.
	OnStarted func(nsPid int) error `json:"-"`
	// OnWatcher, with Detach, has the client hand its connection to a
	// watcher (watcherMain) instead of letting go, and is called with the
	// watcher's PID. A caller that reaps what it started (containerd's
	// shim, conmon: subreapers) then reaps the watcher, which exits with
	// the process's status and passes signals on to it; the process is
	// init's child, which no process outside the container can reap.
	OnWatcher func(pid int) error `json:"-"`
}

// execServer is init's side of `isobox exec`. init is already in every
// namespace of the container, pivoted into its root, and is the reaper of
// the PID namespace, so a process it forks is in the container in every
// way with no setns(2) at all (which a multi-threaded Go process cannot do
// for user and mount namespaces). The caller's standard streams arrive as
// descriptors over the socket; with -t, init allocates the terminal from
// the container's devpts and sends the master back, as for run.
type execServer struct {
	c     *Config
	fork  *forker
	mu    sync.Mutex
	procs map[int]*channel // running exec'd processes, by PID
}

func newExecServer(c *Config, fork *forker) *execServer {
	return &execServer{c: c, fork: fork, procs: map[int]*channel{}}
}

// serve accepts connections until the listener fails (init exits first).
func (s *execServer) serve(l int) {
	for {
		fd, _, err := unix.Accept4(l, unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK)
		if err == unix.EINTR || err == unix.ECONNABORTED {
			continue
		}
		if err != nil {
			return
		}
		go s.handle(&channel{f: os.NewFile(uintptr(fd), "exec client"), name: "exec client"})
	}
}

// handle runs one request: start the process, pass signals on to it, and
// kill its process group if the client goes away before it exits (as a
// runner that dies takes its container with it).
func (s *execServer) handle(ch *channel) {
	// The socket's directory is closed to other users; the peer's uid is
	// checked all the same. The caller is root here, in both mappings.
	if cred, err := unix.GetsockoptUcred(int(ch.f.Fd()), unix.SOL_SOCKET, unix.SO_PEERCRED); err != nil || cred.Uid != 0 {
		ch.Close()
		return
	}
	m, fds, err := ch.expect(MsgExecRequest)
	if err != nil || m.Exec == nil || len(m.Exec.Args) == 0 {
		closeAll(fds)
		ch.Close()
		return
	}
	req := m.Exec
	pid, code, err := s.start(ch, req, fds)
	if err != nil {
		ch.fail(code, err)
		ch.Close()
		return
	}
	for {
		m, _, err := ch.expect(MsgSignal)
		s.mu.Lock()
		_, running := s.procs[pid]
		switch {
		case !running:
		case err != nil && req.Detach:
			// -d: the client is gone on purpose, the process stays.
		case err != nil:
			unix.Kill(-pid, unix.SIGKILL)
		default:
			unix.Kill(pid, syscall.Signal(m.Signal))
		}
		s.mu.Unlock()
		if err != nil || !running {
			return
		}
	}
}

// start forks the process, registers it and tells the client, all under
// the lock the reaper takes: its exit is reported only after that.
func (s *execServer) start(ch *channel, r *ExecRequest, fds []int) (pid, code int, err error) {
	defer closeAll(fds)
	// The container's user and environment, unless the request says.
	uid, gid := s.c.UID, s.c.GID
	var over []string
	if r.User != "" {
		var home string
		if uid, gid, home, err = ResolveUser("/", r.User); err != nil {
			return 0, ExitSetup, err
		}
		over = append(over, "HOME="+home)
	}
	if r.TTY && r.Term != "" {
		over = append(over, "TERM="+r.Term)
	}
	env := MergeEnv(s.c.Env, append(over, r.Env...)...)
	argv0, err := lookPath(r.Args[0], env)
	if err != nil {
		return 0, ExitNotFound, err
	}
	wd := r.Workdir
	if wd == "" {
		wd = s.c.Workdir
	}
	var files []uintptr
	var pty *ptyPair
	if r.TTY {
		if pty, err = openPTY(&Config{UID: uid, Rows: r.Rows, Cols: r.Cols}); err != nil {
			return 0, ExitSetup, err
		}
		defer unix.Close(pty.slave)
		files = []uintptr{uintptr(pty.slave), uintptr(pty.slave), uintptr(pty.slave)}
	} else {
		if len(fds) != 3 {
			return 0, ExitSetup, fmt.Errorf("protocol: exec request with %d descriptors, want 3", len(fds))
		}
		files = []uintptr{uintptr(fds[0]), uintptr(fds[1]), uintptr(fds[2])}
	}
	cred := &syscall.Credential{Uid: uid, Gid: gid, NoSetGroups: !s.c.SetGroups}
	s.mu.Lock()
	pid, err = s.fork.forkExec(argv0, r.Args, &syscall.ProcAttr{
		Dir: wd, Env: env, Files: files,
		Sys: &syscall.SysProcAttr{Setsid: true, Setctty: r.TTY, Ctty: 0, Credential: cred, AmbientCaps: procCaps(s.c, uid)},
	})
	if err != nil {
		s.mu.Unlock()
		if pty != nil {
			unix.Close(pty.master)
		}
		if errors.Is(err, unix.ENOENT) && wd != "" {
			if _, serr := os.Stat(wd); serr != nil {
				return 0, ExitCannotExec, fmt.Errorf("workdir %s: %w", wd, serr)
			}
		}
		code, err := execError(r.Args[0], err)
		return 0, code, err
	}
	defer s.mu.Unlock()
	s.procs[pid] = ch
	if pty != nil {
		err = ch.send(Message{Kind: MsgStarted, Pid: pid}, pty.master)
		unix.Close(pty.master)
	} else {
		err = ch.send(Message{Kind: MsgStarted, Pid: pid})
	}
	if err != nil {
		unix.Kill(-pid, unix.SIGKILL)
	}
	return pid, 0, nil
}

// reaped is called by init's reaper for every child that is not the
// container's command: an exec'd process reports its status to its client.
func (s *execServer) reaped(pid int, ws unix.WaitStatus) {
	s.mu.Lock()
	ch, ok := s.procs[pid]
	delete(s.procs, pid)
	s.mu.Unlock()
	if ok {
		ch.send(Message{Kind: MsgExit, Code: statusCode(ws)})
		ch.Close()
	}
}
