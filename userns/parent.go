package userns

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/isobox/isobox/idmap"
	"github.com/isobox/isobox/slirp"
	"github.com/isobox/isobox/userns/state"
)

// Options is a container to run.
type Options struct {
	Config
	Map         idmap.Mode
	TimeOffsets TimeOffsets
	// AllowHostLoopback lets a --net slirp container reach the host's
	// 127.0.0.1 through 10.0.2.2.
	AllowHostLoopback bool
	// Publish are the ports to forward from the host (--net slirp only).
	Publish []slirp.Publish
	Logger  *slog.Logger `json:"-"`
	// Record is the container's record, or nil for none. Run fills in PID 1
	// and the exit status, listens on its exec socket, and removes it when
	// the command never started (nothing is left of a failed start) or
	// when it had --rm.
	Record *state.Container `json:"-"`
	// CreateRecord, when Record is nil, makes it: Run calls it while the
	// holder starts, off the start's critical path. Its failure (a name in
	// use) ends the start before anything of the container exists.
	CreateRecord func() (*state.Container, error) `json:"-"`
	// Stdio are the container's standard streams; nil means the runner's.
	Stdio [3]*os.File `json:"-"`
	// OnStarted is called once the command runs (the detached monitor
	// reports it to the command that started it).
	OnStarted func() `json:"-"`
	// WaitStart stops the start just before the command runs, everything
	// else set up, until Start is called from another process (`oci
	// create`, then `oci start`); OnCreated is called then.
	WaitStart bool   `json:"waitStart,omitempty"`
	OnCreated func() `json:"-"`
	// PassStdio gives a detached container the standard streams of the
	// command that starts it instead of the record's log, as runc's
	// detached containers without a terminal have (`oci create`, `oci run
	// -d`): the caller reads the container's output from its own files.
	PassStdio bool `json:"passStdio,omitempty"`
	// ConsoleSocket, with a terminal, is where the terminal's master is
	// sent (runc's --console-socket) instead of being joined to the
	// runner's: an absolute path.
	ConsoleSocket string `json:"consoleSocket,omitempty"`
}

// Error is a failure of isobox itself, with the runner's exit status.
type Error struct {
	Code int
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }
func (e *Error) ExitCode() int { return e.Code }

func setupError(err error) error { return &Error{Code: ExitSetup, Err: err} }

// runnerSignals are passed from the runner to the container's PID 1.
var runnerSignals = []os.Signal{
	unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2, unix.SIGWINCH,
}

// Run starts the container and waits for it. It returns the command's exit
// status (128+N for a signal), or an error whose ExitCode says 125, 126 or
// 127 when the command never ran.
func Run(o Options) (code int, err error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("stage", "parent")
	started := false
	created := false            // oci create: it reached "created"
	var record *state.Container // once it exists
	defer func() {
		if record != nil {
			settleRecord(record, started || created, code, err, log)
		}
	}()
	stdio := o.Stdio
	for i, f := range stdStreams() {
		if stdio[i] == nil {
			stdio[i] = f
		}
	}
	lp, err := decide(o)
	if err != nil {
		return 0, err
	}
	plan, cfg, driver, userMode, flags, hc, direct, directPath := lp.mapping, lp.cfg, lp.driver, lp.userMode, lp.flags, lp.hc, lp.direct, lp.directPath
	if plan.Fallback != nil {
		log.Warn("mapping only root to the caller: " + plan.Fallback.Error())
	}
	if lp.slirpFallback {
		log.Warn("slirp4netns is not installed: using --net gvisor (sudo apt-get install slirp4netns for the default)")
	}
	trace := func(key string) { log.Debug("step", "key", key) }
	cfg.Trace = log.Enabled(context.Background(), slog.LevelDebug)
	var prepared <-chan slirp.PreparedDriver
	var netLog io.Writer
	if userMode {
		if err := slirp.Preflight(driver); err != nil {
			return 0, setupError(err)
		}
		netLog = slirpLog(log, string(driver))
		prepared = slirp.PrepareDriver(driver, o.AllowHostLoopback, netLog)
	}

	var term *terminal
	cfg.ConsoleEarly = cfg.TTY && o.ConsoleSocket != ""
	if cfg.TTY && !cfg.ConsoleEarly {
		term = newTerminal(stdio[0], stdio[1])
		cfg.Rows, cfg.Cols = term.size()
	}

	// init's channel: the config is queued in the socket once the maps
	// are written, before the holder clones init, or while a direct init
	// starts, so it costs no round trip.
	initParent, initChild, err := channelPair("init")
	if err != nil {
		return 0, setupError(err)
	}
	initCh := &channel{f: initParent, name: "init"}
	defer initCh.Close()
	// The record, and the socket in its directory on which init serves
	// `isobox exec`, are made while the holder or init starts; the config
	// hands the socket over.
	type recordReady struct {
		c   *state.Container
		l   *os.File
		err error
	}
	recordDone := make(chan recordReady, 1)
	// recordMade says whether it was: a start refused for its name must not
	// have begun the network.
	recordMade := make(chan bool, 1)
	// Made once init's clone is under way, not competing with it for the
	// CPU: the record is needed only when the config is sent, after the maps.
	spawned := make(chan bool, 1)
	go func() {
		r := recordReady{c: o.Record}
		if !<-spawned {
			recordMade <- false
			recordDone <- r
			return
		}
		if r.c == nil && o.CreateRecord != nil {
			r.c, r.err = o.CreateRecord()
		}
		if r.err == nil && r.c != nil && !cfg.NoInit {
			r.l, r.err = listenExec(r.c.Dir)
		}
		recordMade <- r.err == nil
		recordDone <- r
	}()
	// collect waits for that once; deferred here, it runs on every way out
	// before settleRecord, which removes the record of a failed start.
	var collected *recordReady
	collect := func() recordReady {
		if collected == nil {
			r := <-recordDone
			collected, record = &r, r.c
		}
		return *collected
	}
	defer collect()
	sendConfig := func() error {
		r := collect()
		if r.l != nil {
			defer r.l.Close()
		}
		if r.err != nil {
			return r.err
		}
		var passed []int
		if r.l != nil {
			passed = append(passed, int(r.l.Fd()))
		}
		return initCh.send(Message{Kind: MsgConfig, Config: &cfg}, passed...)
	}

	sigc := make(chan os.Signal, 32)
	signal.Notify(sigc, runnerSignals...)
	defer signal.Stop(sigc)

	// The network needs init's network namespace, the maps (the tap's
	// owner must be mapped) and the record. In a direct start it begins on
	// the goroutine that wrote the maps, the moment they are written, while
	// init prepares the rootfs.
	netDone := make(chan networkSetup, 1)
	var netStarted atomic.Bool
	startNetwork := func(h *holder) {
		netStarted.Store(true)
		go func() {
			netDone <- setUpNetwork(h, driver, prepared, netLog, userMode, o.AllowHostLoopback, o.Publish, log)
		}()
	}
	var net *networkSetup
	awaitNetwork := func() *networkSetup {
		if net == nil {
			n := <-netDone
			net = &n
		}
		return net
	}
	mapDirect := func(h *holder) error {
		pid := h.cmd.Process.Pid
		if err := idmap.Apply(pid, plan); err != nil {
			return err
		}
		if userMode && <-recordMade {
			// Held here for the network's life: the driver is given this
			// path, and the namespace must outlive init while the
			// helper drains it.
			netns, release, err := holdNetns(pid)
			if err != nil {
				return err
			}
			h.netns, h.releaseNetns = netns, release
			startNetwork(h)
		}
		return nil
	}
	var h *holder
	if direct {
		trace("clone")
		h, err = startInit(directPath, flags, stdio, initChild)
	} else {
		trace("clone-holder")
		h, err = startHolder(stageHolder, []string{}, stdio, initChild)
	}
	initChild.Close()
	spawned <- err == nil
	if err != nil {
		return 0, setupError(err)
	}
	defer h.kill()

	// Until the container's PID 1 exists, a signal aborts the start; after,
	// it is passed on to PID 1.
	var initPid atomic.Int64
	var aborted atomic.Int32
	go func() {
		for s := range sigc {
			sig := s.(syscall.Signal)
			switch pid := int(initPid.Load()); {
			case sig == unix.SIGWINCH:
				if term != nil {
					term.resize()
				}
			case pid == 0:
				aborted.Store(int32(sig))
				h.kill()
			default:
				unix.Kill(pid, sig)
			}
		}
	}()
	abortedCode := func(err error) (int, error) {
		if s := aborted.Load(); s != 0 {
			return exitSignalShift + int(s), nil
		}
		return 0, err
	}

	// The maps can be written as soon as the new user namespace exists:
	// while the Go runtime of its first process starts up, not after.
	mapped := make(chan error, 1)
	go func() {
		if direct {
			mapped <- mapDirect(h)
		} else {
			mapped <- idmap.Apply(h.cmd.Process.Pid, plan)
		}
	}()
	// mapsResult waits, once, for the maps' goroutine.
	mapsResult := sync.OnceValue(func() error { return <-mapped })
	// On every way out, before init is killed (h.kill, deferred before):
	// the maps' goroutine is done with h, the network, if begun, is
	// stopped, and then the namespace its helper used is let go.
	defer func() {
		mapsResult()
		if netStarted.Load() {
			awaitNetwork().stop()
		}
		if h.releaseNetns != nil {
			h.releaseNetns()
		}
	}()
	if !direct {
		if _, _, err := h.ch.expect(MsgReady); err != nil {
			return abortedCode(setupError(err))
		}
		log.Debug("holder ready", "pid", h.cmd.Process.Pid)
	}
	if err := mapsResult(); err != nil {
		return abortedCode(setupError(fmt.Errorf("write id maps: %w", err)))
	}
	trace("uid-map")
	trace("gid-map")
	// A direct init waits for its config, so it does nothing as root of
	// its namespace before it is root there.
	if err := sendConfig(); err != nil {
		return abortedCode(setupError(err))
	}
	log.Debug("maps written", "uid_map", strings.ReplaceAll(strings.TrimSpace(idmap.MapText(plan.UIDs)), "\n", "; "))
	if !direct {
		if err := h.ch.send(Message{Kind: MsgMapsWritten, Holder: hc}); err != nil {
			return abortedCode(setupError(err))
		}
		m, _, err := h.ch.expect(MsgInitStarted)
		if err != nil {
			return abortedCode(stageError(err))
		}
		h.initPid, h.netns = m.Pid, m.NetNS
		trace("clone-init")
	}
	// Read now: init waits for network-ready, so it cannot have exited and
	// been reaped yet, as a short command's init may be by the time it runs.
	var initStart uint64
	if record != nil {
		if initStart, err = state.ProcStart(h.initPid); err != nil {
			return abortedCode(setupError(fmt.Errorf("container record: start time of PID 1: %w", err)))
		}
	}
	log.Debug("init started", "pid", h.initPid, "namespaces", CloneflagString(flags), "holder", !direct)
	if !netStarted.Load() {
		startNetwork(h)
	}
	// Both are awaited, in whichever order they end: with a direct network,
	// init waits for the driver's tap, which a failed driver never makes.
	nsReady := make(chan error, 1)
	go func() {
		for {
			m, fds, err := initCh.expect(MsgNamespacesReady, MsgCreateHooks)
			if err == nil && m.Kind == MsgNamespacesReady && cfg.ConsoleEarly {
				// The terminal's master, opened early, goes to the caller
				// now: before `oci create` returns.
				if len(fds) != 1 {
					err = fmt.Errorf("protocol: namespaces-ready with %d descriptors, want the terminal", len(fds))
				} else {
					err = SendConsole(o.ConsoleSocket, fds[0])
				}
			}
			closeAll(fds)
			if err != nil || m.Kind == MsgNamespacesReady {
				nsReady <- err
				return
			}
			// init has made the mounts and waits, not pivoted.
			if err := runCreateHooks(&cfg, trace, h.initPid); err != nil {
				nsReady <- setupError(err)
				return
			}
			if err := initCh.send(Message{Kind: MsgCreateHooksRun, Pid: h.initPid}); err != nil {
				nsReady <- err
				return
			}
		}
	}()
	var nsErr error
	select {
	case nsErr = <-nsReady:
		awaitNetwork()
	case n := <-netDone:
		net = &n
		if n.err == nil || !cfg.DirectNetwork {
			nsErr = <-nsReady
		}
	}
	if nsErr != nil {
		return abortedCode(stageError(nsErr))
	}
	if net.err != nil {
		return abortedCode(stageError(net.err))
	}
	if userMode {
		trace("network")
	}
	startConn := -1
	if o.WaitStart {
		c, reached, err := waitForStart(record, h.initPid, initStart, o.OnCreated)
		created = reached
		if err != nil {
			return abortedCode(setupError(err))
		}
		startConn = c
		defer unix.Close(startConn)
	}
	// init handles signals from here on (queueing them until the command
	// runs); before, the kernel would drop them, as PID 1 had no handler
	// yet, so until now a signal aborts the start instead.
	initPid.Store(int64(h.initPid))
	if aborted.Load() != 0 {
		return abortedCode(nil)
	}
	ready := Message{Kind: MsgNetworkReady, Pid: h.initPid}
	if err := initCh.send(ready); err != nil {
		return abortedCode(setupError(err))
	}
	m, fds, err := initCh.expect(MsgStarted, MsgExecing)
	if err != nil {
		return abortedCode(stageError(err))
	}
	if m.Kind == MsgExecing {
		// The channel is close-on-exec: a hang-up means the exec worked.
		if _, _, err := initCh.expect(); !errors.Is(err, errHungUp) {
			closeAll(fds)
			return abortedCode(stageError(err))
		}
	}
	log.Debug("command started", "kind", m.Kind)
	started = true
	if record != nil {
		if err := recordStarted(record, h.initPid, initStart, cfg.Net); err != nil {
			log.Warn(err.Error())
		}
	}
	// A poststart hook that fails is logged, and the container runs on
	// (runtime-spec).
	if err := runHooks(&cfg, trace, "poststart", poststartHooks, "running", h.initPid); err != nil {
		log.Warn(err.Error())
	}
	if startConn >= 0 {
		unix.Write(startConn, []byte{1}) // start returns: the command runs
	}
	if o.OnStarted != nil {
		o.OnStarted()
	}
	// From here the runner mostly waits, for as long as the container runs.
	trimAfter(time.Second)

	copied, detach := term.connect(fds)
	defer detach()

	m, err = h.exit()
	if err != nil {
		return 0, setupError(fmt.Errorf("wait for the container: %w", err))
	}
	if copied != nil {
		<-copied
	}
	// Before hanging up on the holder, which holds the container's network
	// namespace: the container's kernel may still be sending, and the
	// helper still delivering, what was written just before the exit.
	log.Debug("container exited", "code", m.Code, "signal", m.Signal)
	net.drain()
	log.Debug("network drained")
	h.wait()
	if m.Signal != 0 {
		return exitSignalShift + m.Signal, nil
	}
	return m.Code, nil
}

// runCreateHooks runs the bundle's prestart and createRuntime hooks, on
// the host, while init waits before its pivot_root.
func runCreateHooks(c *Config, trace func(string), initPid int) error {
	if err := runHooks(c, trace, "prestart", prestartHooks, "creating", initPid); err != nil {
		return err
	}
	return runHooks(c, trace, "createRuntime", createRuntimeHooks, "creating", initPid)
}

// holdNetns opens the network namespace of process pid and returns the path
// that names it through this process's descriptor.
func holdNetns(pid int) (path string, closeFn func(), err error) {
	name := "/proc/" + strconv.Itoa(pid) + "/ns/net"
	fd, err := unix.Open(name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	return "/proc/" + strconv.Itoa(os.Getpid()) + "/fd/" + strconv.Itoa(fd), func() { unix.Close(fd) }, nil
}

// stageError keeps a stage's own exit code, else makes err a setup error.
func stageError(err error) error {
	var se *StageError
	if errors.As(err, &se) {
		return &Error{Code: se.Code, Err: se}
	}
	return setupError(err)
}

// HaveTimeNamespace reports whether the kernel has time namespaces.
func HaveTimeNamespace() bool {
	_, err := os.Lstat("/proc/self/ns/time")
	return err == nil
}
