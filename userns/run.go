package userns

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/isobox/isobox/idmap"
	"github.com/isobox/isobox/slirp"
	"github.com/isobox/isobox/userns/cgroups"
	"github.com/isobox/isobox/userns/state"
)

// Run starts the container and waits for it. It returns the command's exit
// status (128+N for a signal), or an error whose ExitCode says 125, 126 or
// 127 when the command never ran.
//
// It is the same list of steps for `run`, `run -d` (in the monitor), `oci
// run` and `oci create` (which waits at the gate until `oci start`); `exec`
// asks the running container's init instead (Exec).
func Run(o Options) (code int, err error) {
	r, err := newRunner(o)
	if err != nil {
		return 0, err
	}
	defer func() { r.teardown(code, err) }()
	for _, step := range []func() error{
		r.makeCgroup,      // the container's cgroup and its limits, where there can be one
		r.prepare,         // the network's driver, the terminal, init's channel, the record
		r.clone,           // init (or the holder) in its new namespaces
		r.mapAndConfigure, // the id maps, init's config, the holder's init
		r.awaitNamespaces, // init's rootfs and create hooks, and the network
		r.awaitStart,      // oci create: stopped here until oci start
		r.startCommand,    // the command runs
	} {
		if err := step(); err != nil {
			r.tellStart(err)
			return r.abortedCode(err)
		}
	}
	return r.wait()
}

// runner is one start of a container: the state Run's steps share, in
// the order they fill it in.
type runner struct {
	o     Options
	lp    *launch
	cfg   *Config // the plan's config, which init is sent
	log   *slog.Logger
	trace func(key string)
	stdio [3]*os.File

	// makeCgroup
	cg *cgroups.Cgroup // nil: the container stays in the caller's cgroup

	// prepare
	joins    []joined // the namespaces to join, open until the clone
	netLog   io.Writer
	prepared <-chan slirp.PreparedDriver
	term     *terminal
	initCh   *channel
	initKid  *os.File // init's end of its channel, until the clone
	sigc     chan os.Signal
	// The record is made on a goroutine once the clone is under way (not
	// competing with it for the CPU): needed only when the config is sent.
	spawned    chan bool // the clone's outcome, for that goroutine
	spawnSent  bool
	recordMade chan bool // it was: a start refused for its name must not begin the network
	recordDone chan recordReady
	collected  *recordReady
	record     *state.Container

	// clone
	h         *holder
	initPid   atomic.Int64 // set once init handles signals
	aborted   atomic.Int32 // a signal that came before: it ends the start
	mapsDone  func() error // waits, once, for the maps' goroutine
	netDone   chan networkSetup
	netOn     atomic.Bool
	net       *networkSetup
	initStart uint64

	// awaitStart and startCommand
	startConn        int
	created, started bool
	detachTerm       func()
	copied           <-chan struct{}
}

type recordReady struct {
	c   *state.Container
	l   *os.File // the exec socket's listener
	err error
}

func newRunner(o Options) (*runner, error) {
	lp, err := decide(o)
	if err != nil {
		return nil, err
	}
	r := &runner{o: o, lp: lp, cfg: &lp.cfg, log: o.Logger, stdio: o.Stdio, startConn: -1}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	r.log = r.log.With("stage", "parent")
	r.trace = func(key string) { r.log.Debug("step", "key", key) }
	r.cfg.Trace = r.log.Enabled(context.Background(), slog.LevelDebug)
	for i, f := range stdStreams() {
		if r.stdio[i] == nil {
			r.stdio[i] = f
		}
	}
	return r, nil
}

// makeCgroup gives the container a cgroup of its own, with its limits,
// before anything else is made: limits that cannot be applied end the
// start with nothing left (an OCI bundle's are dropped with a warning).
func (r *runner) makeCgroup() error {
	l := r.o.Limits
	required := !l.IsZero() && !r.o.LimitsBestEffort
	cg, err := cgroups.Create(l, required)
	if err != nil && !required {
		r.log.Warn("resource limits ignored: " + err.Error())
		cg, err = cgroups.Create(cgroups.Limits{}, false)
	}
	if err != nil {
		return setupError(err)
	}
	if r.cg = cg; cg != nil {
		r.trace("cgroup")
		r.cfg.Cgroup = true
		r.log.Debug("cgroup made", "path", cg.Path)
	}
	return nil
}

func (r *runner) cgroupPath() string {
	if r.cg == nil {
		return ""
	}
	return r.cg.Path
}

// cgroupFD is the container cgroup's descriptor for the clone, or -1.
func (r *runner) cgroupFD() int {
	if r.cg == nil {
		return -1
	}
	return r.cg.FD()
}

// prepare starts what needs no namespace yet: the network driver's own
// preparation, the terminal, init's channel, the record's goroutine and
// signal handling.
func (r *runner) prepare() error {
	lp := r.lp
	if lp.mapping.Fallback != nil {
		r.log.Warn("mapping only root to the caller: " + lp.mapping.Fallback.Error())
	}
	if lp.slirpFallback {
		r.log.Warn("slirp4netns is not installed: using --net gvisor (sudo apt-get install slirp4netns for the default)")
	}
	if lp.userMode {
		if err := slirp.Preflight(lp.driver); err != nil {
			return setupError(err)
		}
		r.netLog = slirpLog(r.log, string(lp.driver))
		r.prepared = slirp.PrepareDriver(lp.driver, r.o.AllowHostLoopback, r.netLog)
	}
	var err error
	if r.joins, err = openJoins(r.o.Join); err != nil {
		return setupError(err)
	}
	r.cfg.ConsoleEarly = r.cfg.TTY && r.o.ConsoleSocket != ""
	if r.cfg.TTY && !r.cfg.ConsoleEarly {
		r.term = newTerminal(r.stdio[0], r.stdio[1])
		r.cfg.Rows, r.cfg.Cols = r.term.size()
	}
	// init's channel: the config is queued in the socket once the maps
	// are written, before the holder clones init, or while a direct init
	// starts, so it costs no round trip.
	parent, child, err := channelPair("init")
	if err != nil {
		return setupError(err)
	}
	r.initCh, r.initKid = &channel{f: parent, name: "init"}, child
	r.startRecord()
	r.sigc = make(chan os.Signal, 32)
	signal.Notify(r.sigc, runnerSignals...)
	return nil
}

// startRecord makes the record, and the socket in its directory on which
// init serves `isobox exec`, once the clone is under way; the config hands
// the socket over.
func (r *runner) startRecord() {
	r.spawned, r.recordMade, r.recordDone = make(chan bool, 1), make(chan bool, 1), make(chan recordReady, 1)
	go func() {
		rr := recordReady{c: r.o.Record}
		if !<-r.spawned {
			r.recordMade <- false
			r.recordDone <- rr
			return
		}
		if rr.c == nil && r.o.CreateRecord != nil {
			rr.c, rr.err = r.o.CreateRecord()
		}
		if rr.err == nil && rr.c != nil && !r.cfg.NoInit {
			rr.l, rr.err = listenExec(rr.c.Dir)
		}
		r.recordMade <- rr.err == nil
		r.recordDone <- rr
	}()
}

// collectRecord waits, once, for the record's goroutine.
func (r *runner) collectRecord() recordReady {
	if r.collected == nil {
		rr := <-r.recordDone
		r.collected, r.record = &rr, rr.c
	}
	return *r.collected
}

// clone starts init directly, in all its namespaces at once, or the
// holder that will; the maps are written on a goroutine the moment the new
// user namespace exists, and signals are handled from then on.
func (r *runner) clone() error {
	var err error
	at := placement{cgroup: r.cgroupFD(), setns: r.joins}
	switch {
	case r.lp.joinUser:
		r.trace("clone-holder")
		r.h, err = startJoinedHolder(r.stdio, at, r.initKid)
	case r.lp.direct && r.cfg.Adopted:
		r.trace("clone")
		r.h, err = r.startAdopted(at)
	case r.lp.direct:
		r.trace("clone")
		r.h, err = startInit(r.lp.directPath, r.lp.flags, r.stdio, at, r.initKid, nil)
	default:
		r.trace("clone-holder")
		r.h, err = startHolder(stageHolder, []string{goEnv}, r.stdio, at, r.initKid)
	}
	r.initKid.Close()
	closeJoins(r.joins) // the child is in them, or nsenter has them
	r.joins = nil
	r.spawned <- err == nil
	r.spawnSent = true
	if err != nil {
		return setupError(err)
	}
	go r.forwardSignals()
	r.netDone = make(chan networkSetup, 1)
	mapped := make(chan error, 1)
	go func() {
		switch {
		case r.lp.joinUser:
			mapped <- nil // the joined namespace has its maps (joinedMaps)
		case r.lp.direct:
			mapped <- r.mapDirect()
		default:
			mapped <- idmap.Apply(r.h.cmd.Process.Pid, r.lp.mapping)
		}
	}()
	r.mapsDone = sync.OnceValue(func() error { return <-mapped })
	return nil
}

// startAdopted starts init as its parent's child (Config.Adopted), then
// moves it into the container's cgroup: it waits for its config before it
// does anything of the container's.
func (r *runner) startAdopted(at placement) (*holder, error) {
	at.cgroup = -1
	h, err := startInit(r.lp.directPath, r.lp.flags, r.stdio, at, r.initKid, r.initCh)
	if err != nil || r.cg == nil {
		return h, err
	}
	if err := r.cg.Add(h.initPid); err != nil {
		h.kill()
		return nil, err
	}
	return h, nil
}

// joinedMaps takes the maps of the user namespace the holder joined as the
// container's: the caller must be its root, as init will be.
func (r *runner) joinedMaps() error {
	plan, err := idmap.Read(r.h.cmd.Process.Pid)
	if err != nil {
		return fmt.Errorf("read the joined user namespace's maps: %w", err)
	}
	uid, uok := idmap.HostOf(plan.UIDs, 0)
	_, gok := idmap.HostOf(plan.GIDs, 0)
	if !uok || !gok || uid != uint32(os.Getuid()) {
		return fmt.Errorf("the joined user namespace does not map its root to you (uid %d): its uid_map is %q", os.Getuid(), strings.TrimSpace(idmap.MapText(plan.UIDs)))
	}
	if err := checkUser(plan, r.cfg.UID, r.cfg.GID); err != nil {
		return err
	}
	if len(r.cfg.Groups) > 0 && !plan.Full {
		return errors.New("supplementary groups: setgroups(2) is denied in the joined user namespace")
	}
	r.lp.mapping = plan
	r.cfg.SetGroups = plan.Full
	r.cfg.TTYGroup = idmap.Contains(plan.GIDs, 5)
	return nil
}

// forwardSignals: until the container's PID 1 handles signals, one aborts
// the start; after, it is passed on to PID 1.
func (r *runner) forwardSignals() {
	for s := range r.sigc {
		sig := s.(syscall.Signal)
		switch pid := int(r.initPid.Load()); {
		case sig == unix.SIGWINCH:
			if r.term != nil {
				r.term.resize()
			}
		case pid == 0:
			r.aborted.Store(int32(sig))
			r.h.kill()
		default:
			unix.Kill(pid, sig)
		}
	}
}

// tellStart gives `oci start`, when it is waiting, the reason the command
// never ran: the record, and any log in it, goes with the failed start.
func (r *runner) tellStart(err error) {
	if r.startConn >= 0 && !r.started {
		unix.Write(r.startConn, []byte(err.Error()))
	}
}

func (r *runner) abortedCode(err error) (int, error) {
	if s := r.aborted.Load(); s != 0 {
		return exitSignalShift + int(s), nil
	}
	return 0, err
}

// mapDirect writes a direct init's maps and, the moment they are written
// (the tap's owner must be mapped) and the record exists, starts the
// network on the same goroutine, while init prepares the rootfs.
func (r *runner) mapDirect() error {
	pid := r.h.cmd.Process.Pid
	if err := idmap.Apply(pid, r.lp.mapping); err != nil {
		return err
	}
	if r.lp.userMode && <-r.recordMade {
		// Held here for the network's life: the driver is given this
		// path, and the namespace must outlive init while the helper
		// drains it.
		netns, release, err := holdNetns(pid)
		if err != nil {
			return err
		}
		r.h.netns, r.h.releaseNetns = netns, release
		r.startNetwork()
	}
	return nil
}

func (r *runner) startNetwork() {
	r.netOn.Store(true)
	go func() {
		r.netDone <- setUpNetwork(r.h, r.lp.driver, r.prepared, r.netLog, r.lp.userMode, r.o.AllowHostLoopback, r.o.Publish, r.log)
	}()
}

func (r *runner) awaitNetwork() *networkSetup {
	if r.net == nil {
		n := <-r.netDone
		r.net = &n
	}
	return r.net
}

// mapAndConfigure waits for the maps, sends init its config (a direct
// init waits for it, so it does nothing as root of its namespace before
// it is root there), has the holder clone init, and begins the network if
// the maps' goroutine has not.
func (r *runner) mapAndConfigure() error {
	h := r.h
	if !r.lp.direct {
		if _, _, err := h.ch.expect(MsgReady); err != nil {
			return setupError(err)
		}
		r.log.Debug("holder ready", "pid", h.cmd.Process.Pid)
	}
	if err := r.mapsDone(); err != nil {
		return setupError(fmt.Errorf("write id maps: %w", err))
	}
	if r.lp.joinUser {
		if err := r.joinedMaps(); err != nil {
			return setupError(err)
		}
	}
	r.trace("uid-map")
	r.trace("gid-map")
	if err := r.sendConfig(); err != nil {
		return setupError(err)
	}
	r.log.Debug("maps written", "uid_map", strings.ReplaceAll(strings.TrimSpace(idmap.MapText(r.lp.mapping.UIDs)), "\n", "; "))
	if !r.lp.direct {
		if err := h.ch.send(Message{Kind: MsgMapsWritten, Holder: r.lp.hc}); err != nil {
			return setupError(err)
		}
		m, _, err := h.ch.expect(MsgInitStarted)
		if err != nil {
			return stageError(err)
		}
		h.initPid, h.netns = m.Pid, m.NetNS
		r.trace("clone-init")
	}
	// Read now: init waits for network-ready, so it cannot have exited and
	// been reaped yet, as a short command's init may be by the time it runs.
	if r.record != nil {
		var err error
		if r.initStart, err = state.ProcStart(h.initPid); err != nil {
			return setupError(fmt.Errorf("container record: start time of PID 1: %w", err))
		}
	}
	r.log.Debug("init started", "pid", h.initPid, "namespaces", CloneflagString(r.lp.flags), "holder", !r.lp.direct)
	if !r.netOn.Load() {
		r.startNetwork()
	}
	return nil
}

// sendConfig sends init its config, with the exec socket's listener.
func (r *runner) sendConfig() error {
	rr := r.collectRecord()
	if rr.l != nil {
		defer rr.l.Close()
	}
	if rr.err != nil {
		return rr.err
	}
	var passed []int
	if rr.l != nil {
		passed = append(passed, int(rr.l.Fd()))
	}
	for _, f := range r.o.ExtraFiles {
		passed = append(passed, int(f.Fd()))
	}
	r.cfg.PreservedFDs = len(r.o.ExtraFiles)
	return r.initCh.send(Message{Kind: MsgConfig, Config: r.cfg}, passed...)
}

// awaitNamespaces waits for init's rootfs (running the bundle's create
// hooks when init asks, and sending --console-socket the terminal it opened)
// and for the network, in whichever order they end: with a direct network,
// init waits for the driver's tap, which a failed driver never makes.
func (r *runner) awaitNamespaces() error {
	nsReady := make(chan error, 1)
	go func() { nsReady <- r.initNamespaces() }()
	var nsErr error
	select {
	case nsErr = <-nsReady:
		r.awaitNetwork()
	case n := <-r.netDone:
		r.net = &n
		if n.err == nil || !r.cfg.DirectNetwork {
			nsErr = <-nsReady
		}
	}
	if nsErr != nil {
		return stageError(nsErr)
	}
	if r.net.err != nil {
		return stageError(r.net.err)
	}
	if r.lp.userMode {
		r.trace("network")
	}
	return nil
}

// initNamespaces reads init's messages up to namespaces-ready.
func (r *runner) initNamespaces() error {
	for {
		m, fds, err := r.initCh.expect(MsgNamespacesReady, MsgCreateHooks)
		if err == nil && m.Kind == MsgNamespacesReady && r.cfg.ConsoleEarly {
			// The terminal's master, opened early, goes to the caller
			// now: before `oci create` returns.
			if len(fds) != 1 {
				err = fmt.Errorf("protocol: namespaces-ready with %d descriptors, want the terminal", len(fds))
			} else {
				err = SendConsole(r.o.ConsoleSocket, fds[0])
			}
		}
		closeAll(fds)
		if err != nil || m.Kind == MsgNamespacesReady {
			return err
		}
		// init has made the mounts and waits, not pivoted.
		if err := runCreateHooks(r.cfg, r.trace, r.h.initPid); err != nil {
			return setupError(err)
		}
		if err := r.initCh.send(Message{Kind: MsgCreateHooksRun, Pid: r.h.initPid}); err != nil {
			return err
		}
	}
}

// awaitStart is `oci create`'s stop: everything is set up, the command
// not started, until `oci start` connects to the gate.
func (r *runner) awaitStart() error {
	if !r.o.WaitStart {
		return nil
	}
	c, reached, err := waitForStart(r.record, r.h.initPid, r.initStart, r.o.OnCreated)
	r.created = reached
	if err != nil {
		return setupError(err)
	}
	r.startConn = c
	return nil
}

// errAborted: a signal came before init could take it; abortedCode turns
// it into the signal's status.
var errAborted = errors.New("aborted by a signal")

// startCommand lets init run the command and waits until it does.
func (r *runner) startCommand() error {
	// init handles signals from here on (queueing them until the command
	// runs); before, the kernel would drop them, as PID 1 had no handler
	// yet, so until now a signal aborts the start instead.
	r.initPid.Store(int64(r.h.initPid))
	if r.aborted.Load() != 0 {
		return errAborted
	}
	if err := r.initCh.send(Message{Kind: MsgNetworkReady, Pid: r.h.initPid}); err != nil {
		return setupError(err)
	}
	m, fds, err := r.initCh.expect(MsgStarted, MsgExecing)
	if err != nil {
		return stageError(err)
	}
	if m.Kind == MsgExecing {
		// The channel is close-on-exec: a hang-up means the exec worked.
		if _, _, err := r.initCh.expect(); !errors.Is(err, errHungUp) {
			closeAll(fds)
			return stageError(err)
		}
	}
	r.log.Debug("command started", "kind", m.Kind)
	r.started = true
	if r.record != nil {
		if err := recordStarted(r.record, r.h.initPid, r.initStart, r.cfg.Net, r.cgroupPath()); err != nil {
			r.log.Warn(err.Error())
		}
	}
	// A poststart hook that fails is logged, and the container runs on
	// (runtime-spec).
	if err := runHooks(r.cfg, r.trace, "poststart", r.cfg.hookSet().Poststart, "running", r.h.initPid); err != nil {
		r.log.Warn(err.Error())
	}
	if r.startConn >= 0 {
		unix.Write(r.startConn, []byte{1}) // start returns: the command runs
	}
	if r.o.OnStarted != nil {
		r.o.OnStarted()
	}
	r.copied, r.detachTerm = r.term.connect(fds)
	return nil
}

// wait is the runner's life while the container runs: its exit status,
// once the network has delivered what it was still sending.
func (r *runner) wait() (int, error) {
	trimAfter(time.Second)
	m, err := r.h.exit()
	if err != nil {
		return 0, setupError(fmt.Errorf("wait for the container: %w", err))
	}
	if r.copied != nil {
		<-r.copied
	}
	// Before hanging up on the holder, which holds the container's network
	// namespace: the container's kernel may still be sending, and the
	// helper still delivering, what was written just before the exit.
	r.log.Debug("container exited", "code", m.Code, "signal", m.Signal)
	r.net.drain()
	r.log.Debug("network drained")
	r.h.wait()
	if m.Signal != 0 {
		return exitSignalShift + m.Signal, nil
	}
	return m.Code, nil
}

// teardown undoes, on every way out and in reverse, what the steps made:
// the terminal, the gate, the network (stopped before the namespace its
// helper used is let go), init, signals, the record's goroutine, init's
// channel, and last the record (removed when the command never started).
func (r *runner) teardown(code int, err error) {
	closeJoins(r.joins)
	if r.detachTerm != nil {
		r.detachTerm()
	}
	if r.startConn >= 0 {
		unix.Close(r.startConn)
	}
	if r.mapsDone != nil {
		r.mapsDone()
		if r.netOn.Load() {
			r.awaitNetwork().stop()
		}
		if r.h.releaseNetns != nil {
			r.h.releaseNetns()
		}
	}
	if r.h != nil {
		r.h.kill()
	}
	oom := false
	if r.cg != nil {
		oom = r.cg.OOMKilled()
		if err := r.cg.Remove(); err != nil {
			r.log.Debug(err.Error())
		}
	}
	if r.sigc != nil {
		signal.Stop(r.sigc)
	}
	if r.recordDone != nil {
		if !r.spawnSent {
			r.spawned <- false
		}
		r.collectRecord()
	}
	if r.initCh != nil {
		r.initCh.Close()
	}
	if r.record != nil {
		settleRecord(r.record, r.started || r.created, code, err, oom, r.log)
	}
}
