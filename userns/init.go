package userns

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/isobox/isobox/idmap"
	"github.com/isobox/isobox/rootfs"
	"github.com/isobox/isobox/slirp"
)

// Exit statuses for failures before the command runs (podman's convention).
const (
	ExitSetup       = 125 // isobox itself failed
	ExitCannotExec  = 126 // the command exists but cannot be executed
	ExitNotFound    = 127 // the command was not found
	exitSignalShift = 128 // a command killed by signal N exits 128+N
)

// initMain is stage 2: PID 1 of the new PID namespace, root of the user
// namespace, alone in new mount, UTS, IPC, network and cgroup namespaces
// (and time, from the holder). It prepares the root filesystem, waits for
// the parent to configure the network, then runs the command: as its child,
// forwarding signals and reaping zombies, or (--no-init) by exec.
func initMain() error {
	ch := newChannel(fdChannel, "parent")
	// The parent-death signal set at clone is gone after init's execve
	// (seen on Linux 6.18: a runner killed with SIGKILL left init running).
	// Set it again, so init, and the PID namespace with it, dies with the
	// holder. getppid() is 0 in a new PID namespace, so a holder that died
	// before this line cannot be detected here; the channel covers that:
	// the runner then stops, and init's next read fails.
	// Adopted (Config.Adopted, argv[1]), init's parent is the runner's
	// parent: the channel stands in for the signal. The attribute belongs
	// to the thread that sets it, so it cannot be taken back later.
	if len(os.Args) < 2 || os.Args[1] != argAdopted {
		if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
			return fmt.Errorf("prctl(PR_SET_PDEATHSIG): %w", err)
		}
	}
	// Started directly by the runner (no holder), init carries the
	// capabilities raised as ambient for its exec; nothing it starts may.
	if err := dropCarriedCaps(); err != nil {
		return err
	}
	defaultIgnoredSignals()
	// Handled from the first moment: the runner forwards signals as soon as
	// init exists, and the kernel drops those a PID 1 does not handle. What
	// arrives during set-up is passed on once the command runs.
	sigc := make(chan os.Signal, 128)
	signal.Notify(sigc, append(forwarded, unix.SIGCHLD)...)
	m, fds, err := ch.expect(MsgConfig)
	if err != nil {
		return err
	}
	c := m.Config
	if c == nil {
		return errors.New("protocol: config message without config")
	}
	// Init's threads are made now, on the other CPU (threads.go).
	var threads *threadReserve
	if !c.NoInit {
		threads = reserveThreads()
	}
	// The exec socket's listener, when the container has a record.
	execListener := -1
	var preserved []int // the command's 3, 4, ...: last in the message
	if n := c.PreservedFDs; n > 0 && n <= len(fds) {
		fds, preserved = fds[:len(fds)-n], fds[len(fds)-n:]
	}
	if len(fds) == 1 && !c.NoInit {
		execListener = fds[0]
	} else {
		closeAll(fds)
	}
	// Until the tap is up, init may be the process whose mount namespace
	// the runner's network driver is entering (nsenter): after a failure
	// before it says its namespaces are ready, it waits, as the holder
	// would, until the runner has stopped the driver and hangs up, so
	// nsenter never meets a dead PID.
	failEarly := func(code int, err error) error {
		rep := ch.fail(code, err)
		if c.DirectNetwork {
			for {
				if _, _, err := ch.recv(); err != nil {
					break
				}
			}
		}
		return rep
	}
	// The forker's thread locks itself down (forker.go) on the other CPU
	// while this one prepares the rootfs: neither depends on the other.
	type started struct {
		f   *forker
		err error
	}
	forkerDone := make(chan started, 1)
	if !c.NoInit {
		go func() {
			f, err := startForker(c)
			forkerDone <- started{f, err}
		}()
	}
	pivotRoot, err := setupContainer(c)
	if err != nil {
		return failEarly(ExitSetup, err)
	}
	// What needs no network is done before saying so: the runner is
	// setting the network up meanwhile, usually the longer of the two.
	// Started directly with a network (Config.DirectNetwork), init is the
	// process whose mount namespace the driver's nsenter joins to create
	// the tap, so it keeps the host's root until the tap is up, the
	// driver's last step there; it configures the tap then, while the
	// driver's helper is still starting.
	if c.DirectNetwork {
		c.tracer()("tap")
		if err := slirp.WaitLinkUp(c.Tap.Dev); err != nil {
			return failEarly(ExitSetup, err)
		}
		if err := slirp.ConfigureHere(c.Tap); err != nil {
			return failEarly(ExitSetup, err)
		}
	}
	hostPid := 0 // init's pid on the host, for the hooks' state
	if c.createHooks() {
		// The runner's hooks run on the host, this one's in the
		// container's namespaces with the host's paths, before the pivot.
		if err := ch.send(Message{Kind: MsgCreateHooks}); err != nil {
			return err
		}
		m, _, err := ch.expect(MsgCreateHooksRun)
		if err != nil {
			return err
		}
		hostPid = m.Pid
		if err := runHooks(c, c.tracer(), "createContainer", c.hookSet().CreateContainer, "creating", hostPid); err != nil {
			return failEarly(ExitSetup, err)
		}
	}
	if err := pivotRoot(); err != nil {
		return failEarly(ExitSetup, err)
	}
	if c.MakeWorkdir && c.Workdir != "" {
		c.tracer()("workdir")
		if err := os.MkdirAll(c.Workdir, 0o755); err != nil {
			return failEarly(ExitCannotExec, fmt.Errorf("workdir: %w", err))
		}
	}
	var argv0 string
	if !c.NoProcess {
		if argv0, err = lookPath(c.Args[0], c.Env); err != nil {
			return failEarly(ExitNotFound, err)
		}
	}
	var fork *forker
	if !c.NoInit {
		r := <-forkerDone
		if r.err != nil {
			return failEarly(ExitSetup, r.err)
		}
		fork = r.f
		traceLockDown(c)
	}
	var console *ptyPair // opened now: its master goes to --console-socket
	ready := Message{Kind: MsgNamespacesReady}
	if c.ConsoleEarly && !c.NoInit {
		if console, err = openPTY(c); err != nil {
			return failEarly(ExitSetup, err)
		}
		err = ch.send(ready, console.master)
		unix.Close(console.master)
		console.master = -1
	} else {
		err = ch.send(ready)
	}
	if err != nil {
		return err
	}
	m, _, err = ch.expect(MsgNetworkReady)
	if err != nil {
		return err
	}
	if c.NoProcess {
		return ch.fail(ExitSetup, errors.New("config.json has no process: there is nothing to start"))
	}
	if err := runHooks(c, c.tracer(), "startContainer", c.hookSet().StartContainer, "created", m.Pid); err != nil {
		return ch.fail(ExitSetup, err)
	}
	if threads != nil {
		threads.settle()
	}
	// Last, so that nothing of the set-up runs under the command's limits.
	if err := applyRlimits(c); err != nil {
		return ch.fail(ExitSetup, err)
	}
	if err := applyOOMScoreAdj(c); err != nil {
		return ch.fail(ExitSetup, err)
	}
	if c.NoInit {
		return execCommand(ch, c, argv0)
	}
	return superviseCommand(ch, c, argv0, sigc, execListener, fork, console, preserved)
}

// setupContainer prepares the container's namespaces and root filesystem,
// all but the pivot_root into it, which the caller does with pivotRoot.
func setupContainer(c *Config) (pivotRoot func() error, err error) {
	unix.Umask(0o022)
	trace := c.tracer()
	if c.Joined&unix.CLONE_NEWUTS == 0 {
		trace("hostname")
		if err := unix.Sethostname([]byte(c.Hostname)); err != nil {
			return nil, fmt.Errorf("sethostname %q: %w", c.Hostname, err)
		}
	}
	if c.Net != NetHost {
		trace("loopback")
		if err := slirp.LoopbackUp(); err != nil {
			return nil, err
		}
		trace("ping_group_range")
		// ping without CAP_NET_RAW (not in the default set): ICMP echo
		// sockets for the container's groups, in its own network namespace,
		// as podman sets for rootless containers. The kernel takes only
		// mapped gids.
		rng := "0 " + strconv.FormatUint(uint64(mappedFromZero("/proc/self/gid_map")), 10)
		if err := os.WriteFile("/proc/sys/net/ipv4/ping_group_range", []byte(rng), 0); err != nil {
			return nil, fmt.Errorf("net.ipv4.ping_group_range %s: %w", rng, err)
		}
	}
	if len(c.Sysctl) > 0 {
		trace("sysctl")
		if err := writeSysctls(c); err != nil {
			return nil, err
		}
	}
	spec := rootfsSpec(c)
	if c.Trace {
		spec.Trace = trace
	}
	return rootfs.PrepareToPivot(spec)
}

// tracer logs a step's key on stderr with --log-level debug, in the debug
// log's form; it does nothing otherwise.
func (c *Config) tracer() func(key string) {
	if !c.Trace {
		return func(string) {}
	}
	return func(key string) { fmt.Fprintf(os.Stderr, "isobox: debug: [init] step key=%s\n", key) }
}

// traceLockDown logs the lock-down's steps once they are in place.
func traceLockDown(c *Config) {
	trace := c.tracer()
	for _, s := range lockDownPlan(c) {
		trace(s.Key)
	}
}

// mappedFromZero is the highest id n such that 0..n are all mapped in the
// map file (0 when only root is).
func mappedFromZero(mapFile string) uint32 {
	b, _ := os.ReadFile(mapFile)
	ex, _ := idmap.ParseMap(string(b)) // the kernel's own text
	next := uint64(0)                  // the first id not known to be mapped
	for grew := true; grew; {
		grew = false
		for _, e := range ex {
			if start := uint64(e.ContainerID); start <= next && start+uint64(e.Size) > next {
				next, grew = start+uint64(e.Size), true
			}
		}
	}
	if next == 0 {
		return 0
	}
	return uint32(next - 1)
}

// lookPath finds the command in the container's PATH, after pivot_root.
func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	pathEnv := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			pathEnv = v
		}
	}
	for _, dir := range strings.Split(pathEnv, ":") {
		if dir == "" {
			dir = "."
		}
		p := path.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: executable file not found in $PATH", name)
}

// execError maps a failed execve to podman's exit statuses.
func execError(name string, err error) (int, error) {
	if errors.Is(err, unix.ENOENT) {
		return ExitNotFound, fmt.Errorf("%s: no such file or directory", name)
	}
	if errors.Is(err, unix.EAGAIN) {
		// fork's answer when a process limit is reached, which a user
		// would not guess from "resource temporarily unavailable".
		return ExitCannotExec, fmt.Errorf("%s: fork: %w: the container's pids limit, or your user's process limit (ulimit -u), is reached", name, err)
	}
	return ExitCannotExec, fmt.Errorf("%s: %w", name, err)
}

func credential(c *Config) *syscall.Credential {
	return &syscall.Credential{Uid: c.UID, Gid: c.GID, Groups: c.Groups, NoSetGroups: !c.SetGroups}
}

// forwarded are the signals init passes on to the command. The kernel
// delivers to a namespace's PID 1 only the signals it handles, so without
// this SIGTERM would never reach a command that relies on the default action.
var forwarded = []os.Signal{
	unix.SIGHUP, unix.SIGINT, unix.SIGQUIT, unix.SIGTERM, unix.SIGUSR1, unix.SIGUSR2,
	unix.SIGALRM, unix.SIGWINCH, unix.SIGCONT, unix.SIGPIPE,
}

// superviseCommand forks the command, forwards signals to it, reaps every
// process that ends up as init's child, and exits with the command's status
// once it is gone (the kernel then kills whatever else is left in the PID
// namespace).
func superviseCommand(ch *channel, c *Config, argv0 string, sigc <-chan os.Signal, execListener int, fork *forker, console *ptyPair, preserved []int) error {
	files := []uintptr{0, 1, 2}
	pty := console
	if pty != nil {
		files = []uintptr{uintptr(pty.slave), uintptr(pty.slave), uintptr(pty.slave)}
	} else if c.TTY {
		var err error
		if pty, err = openPTY(c); err != nil {
			return ch.fail(ExitSetup, err)
		}
		files = []uintptr{uintptr(pty.slave), uintptr(pty.slave), uintptr(pty.slave)}
	}
	for _, fd := range preserved {
		files = append(files, uintptr(fd))
	}
	c.tracer()("exec")
	pid, err := fork.forkExec(argv0, c.Args, &syscall.ProcAttr{
		Dir:   c.Workdir,
		Env:   c.Env,
		Files: files,
		Sys: &syscall.SysProcAttr{
			Setsid:      true,
			Setctty:     c.TTY,
			Ctty:        0,
			Credential:  credential(c),
			AmbientCaps: procCaps(c, c.UID),
		},
	})
	if err != nil {
		if errors.Is(err, unix.ENOENT) && c.Workdir != "" {
			if _, serr := os.Stat(c.Workdir); serr != nil {
				return ch.fail(ExitCannotExec, fmt.Errorf("workdir %s: %w", c.Workdir, serr))
			}
		}
		code, err := execError(c.Args[0], err)
		return ch.fail(code, err)
	}
	closeAll(preserved) // the command has them; execs must not
	var sendErr error
	switch {
	case console != nil: // its master went to the console socket
		sendErr = ch.send(Message{Kind: MsgStarted, Pid: pid})
		unix.Close(console.slave)
	case pty != nil:
		sendErr = ch.send(Message{Kind: MsgStarted, Pid: pid}, pty.master)
		pty.close()
	default:
		sendErr = ch.send(Message{Kind: MsgStarted, Pid: pid})
	}
	if sendErr != nil {
		unix.Kill(pid, unix.SIGKILL)
	}
	exit := func(code int) { os.Exit(code) }
	if c.Adopted {
		// The runner, not init's parent, learns the exit here; its hang-up
		// (a monitor killed with kill -9) ends the container, as the
		// parent-death signal does otherwise.
		exit = func(code int) {
			ch.send(Message{Kind: MsgExit, Code: code})
			os.Exit(code)
		}
		go func() {
			for {
				if _, _, err := ch.recv(); err != nil {
					os.Exit(exitSignalShift + int(unix.SIGKILL))
				}
			}
		}()
	} else {
		ch.Close()
	}

	// init waits for the container's life too.
	oneCPUAfter(100 * time.Millisecond)
	trimAfter(time.Second)
	execs := newExecServer(c, fork)
	if execListener >= 0 {
		go execs.serve(execListener)
	}
	for s := range sigc {
		if s != unix.SIGCHLD {
			unix.Kill(pid, s.(syscall.Signal))
			continue
		}
		for {
			var ws unix.WaitStatus
			wpid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
			if err == unix.EINTR {
				continue
			}
			if wpid <= 0 {
				break
			}
			if wpid == pid {
				exit(statusCode(ws))
			}
			execs.reaped(wpid, ws)
		}
	}
	return nil
}

func statusCode(ws unix.WaitStatus) int {
	if ws.Signaled() {
		return exitSignalShift + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// execCommand makes the command PID 1 itself (--no-init), as the seed's
// `exec /bin/sh` does. It returns only on failure. Signals that reached init
// during set-up are lost: the command, as PID 1, would ignore them anyway
// unless it handles them, and it cannot have yet.
func execCommand(ch *channel, c *Config, argv0 string) error {
	// PR_SET_PDEATHSIG belongs to the thread that calls execve; the
	// credential change below clears it, so it is set again on this thread.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := lockDown(c); err != nil {
		return ch.fail(ExitSetup, err)
	}
	traceLockDown(c)

	var ptyMaster []int
	if c.TTY {
		pty, err := openPTY(c)
		if err != nil {
			return ch.fail(ExitSetup, err)
		}
		if err := pty.becomeControllingTerminal(); err != nil {
			return ch.fail(ExitSetup, err)
		}
		ptyMaster = []int{pty.master}
	}
	if c.SetGroups {
		groups := make([]int, len(c.Groups))
		for i, g := range c.Groups {
			groups[i] = int(g)
		}
		if err := syscall.Setgroups(groups); err != nil {
			return ch.fail(ExitSetup, fmt.Errorf("setgroups: %w", err))
		}
	}
	if err := syscall.Setgid(int(c.GID)); err != nil {
		return ch.fail(ExitSetup, fmt.Errorf("setgid %d: %w", c.GID, err))
	}
	ambient := procCaps(c, c.UID)
	if len(ambient) > 0 {
		// Keep the permitted set over setuid, to raise ambient ones after.
		if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
			return ch.fail(ExitSetup, fmt.Errorf("prctl(PR_SET_KEEPCAPS): %w", err))
		}
	}
	if err := syscall.Setuid(int(c.UID)); err != nil {
		return ch.fail(ExitSetup, fmt.Errorf("setuid %d: %w", c.UID, err))
	}
	if err := raiseAmbient(ambient); err != nil {
		return ch.fail(ExitSetup, err)
	}
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
		return ch.fail(ExitSetup, fmt.Errorf("prctl(PR_SET_PDEATHSIG): %w", err))
	}
	if c.Workdir != "" {
		if err := unix.Chdir(c.Workdir); err != nil {
			return ch.fail(ExitCannotExec, &os.PathError{Op: "chdir", Path: c.Workdir, Err: err})
		}
	}
	if err := ch.send(Message{Kind: MsgExecing, Pid: 1}, ptyMaster...); err != nil {
		return err
	}
	for _, fd := range ptyMaster {
		unix.Close(fd)
	}
	c.tracer()("exec")
	err := unix.Exec(argv0, c.Args, c.Env)
	code, err := execError(c.Args[0], err)
	return ch.fail(code, err)
}
