package userns

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/isobox/isobox/slirp"
)

// holderMain is stage 1. The kernel created it in a new user namespace and
// a new mount namespace, with no maps yet. It says it is ready, waits for
// the parent to write the maps, then, as root of the namespace, clones init
// with the nested namespaces, so the user namespace owns all of them. It
// stays as init's parent to report init's wait status, and its PID is the
// one network helpers can nsenter (it has a mount namespace of its own).
func holderMain() error {
	ch := newChannel(fdChannel, "parent")
	parent := os.Getppid()
	threads := reserveThreads() // made while the runner writes the maps
	if err := ch.send(Message{Kind: MsgReady}); err != nil {
		return err
	}
	m, _, err := ch.expect(MsgMapsWritten)
	if err != nil {
		return err
	}
	hc := m.Holder
	if hc == nil {
		return errors.New("protocol: maps-written without holder config")
	}

	// Init's Pdeathsig fires when the thread that cloned it exits, and the
	// time namespace set by unshare(CLONE_NEWTIME) is inherited from the
	// calling thread only: both need init cloned from this very thread.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := setParentDeathSignal(parent); err != nil {
		return ch.fail(125, err)
	}
	if err := dropCarriedCaps(); err != nil {
		return ch.fail(125, err)
	}
	if hc.Joined {
		// exec'd by nsenter in the caller's mount namespace, which this
		// one may not change: a copy of its own for this thread, where
		// the binary can be sealed (open_tree) and init cloned from. It
		// unshares CLONE_FS with it, so it needs no single thread.
		if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
			return ch.fail(125, fmt.Errorf("unshare a mount namespace in the joined user namespace: %w (is its root you?)", err))
		}
	}
	cloneflags := hc.Cloneflags
	switch {
	case hc.Time && hc.Offsets == (TimeOffsets{}):
		// No offsets to write first: init's clone makes the namespace
		// (clone3). After unshare(CLONE_NEWTIME), Linux 6.1 and older
		// refuse the CLONE_VM clone Go starts every child with (EINVAL).
		cloneflags |= unix.CLONE_NEWTIME
	case hc.Time:
		if err := unshareTime(hc.Offsets); err != nil {
			return ch.fail(125, err)
		}
	}

	initExe, initExeFD, err := sealedSelf()
	if err != nil {
		return ch.fail(125, fmt.Errorf("seal the binary init runs from: %w", err))
	}
	initChannel := os.NewFile(fdInitChannel, "init channel")
	cmd := &exec.Cmd{
		Path:       initExe,
		Args:       []string{stageInit},
		Env:        []string{goEnv},
		Stdin:      os.Stdin,
		Stdout:     os.Stdout,
		Stderr:     os.Stderr,
		ExtraFiles: []*os.File{initChannel},
		SysProcAttr: &syscall.SysProcAttr{
			Cloneflags: cloneflags,
			// A session of its own: no controlling terminal, so neither
			// TIOCSTI nor the caller's job control reaches the container.
			Setsid:    true,
			Pdeathsig: syscall.SIGKILL,
		},
	}
	threads.settle() // before init, and the command after it, can take PIDs
	if err := cmd.Start(); err != nil {
		if errors.Is(err, unix.EINVAL) && cloneflags&unix.CLONE_NEWTIME == 0 && hc.Time {
			return ch.fail(125, fmt.Errorf("--time-offset: this kernel (%s) cannot start a process from a Go program in a time namespace made with offsets (it refuses a vfork after unshare(CLONE_NEWTIME), as Linux 6.1 does; later kernels allow it)", kernelRelease()))
		}
		return ch.fail(125, fmt.Errorf("start init with namespaces %s: %w", CloneflagString(cloneflags), err))
	}
	initChannel.Close()
	unix.Close(initExeFD)
	// Hold init's network namespace open, and name it by this descriptor:
	// the network is set up while init prepares the rootfs, and if init
	// fails meanwhile, the namespace, and the path the drivers were given,
	// must stay valid until they are stopped.
	netnsFD, err := unix.Open("/proc/"+strconv.Itoa(cmd.Process.Pid)+"/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		cmd.Process.Kill()
		return ch.fail(ExitSetup, fmt.Errorf("open init's network namespace: %w", err))
	}
	netns := "/proc/" + strconv.Itoa(os.Getpid()) + "/fd/" + strconv.Itoa(netnsFD)
	if err := ch.send(Message{Kind: MsgInitStarted, Pid: cmd.Process.Pid, NetNS: netns}); err != nil {
		cmd.Process.Kill()
	}
	// The holder waits from here on, for the container's life.
	oneCPUAfter(100 * time.Millisecond)
	trimAfter(time.Second)
	quit := make(chan struct{})
	served := make(chan struct{})
	go func() {
		serveParent(ch, netns, quit)
		close(served)
	}()
	cmd.Wait()
	close(quit)
	if err := ch.send(exitMessage(cmd.ProcessState)); err != nil {
		return err
	}
	// Stay, holding the namespaces, until the runner hangs up: it may still
	// be setting up or stopping the network helpers, which use them.
	<-served
	return nil
}

// StateDir is where the holder mounts a tmpfs of its own for the network
// helpers' sockets and FIFOs (the gvisor driver's, the port driver's). The
// runner reaches it through /proc/HOLDER/root; it exists only in the
// holder's mount namespace, so it disappears with the holder however the
// runner ends: nothing is left on the host.
const StateDir = "/dev/shm"

// serveParent answers the parent's requests while init runs: the private
// state directory, and the child sides of the network and port drivers,
// which need the host's filesystem and may enter the container's network
// namespace, as the holder can and init (pivoted) cannot.
func serveParent(ch *channel, netns string, quit <-chan struct{}) {
	for {
		m, _, err := ch.expect(MsgStatePrepare, MsgNetStart, MsgPortsStart)
		if err != nil {
			return // the parent hung up: it is exiting or gone
		}
		switch m.Kind {
		case MsgStatePrepare:
			if err := unix.Mount("tmpfs", StateDir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=700,size=64k"); err != nil {
				ch.send(Message{Kind: MsgError, Code: ExitSetup, Error: (&os.PathError{Op: "mount tmpfs", Path: StateDir, Err: err}).Error()})
				continue
			}
			ch.send(Message{Kind: MsgStatePrepared})
		case MsgNetStart:
			if m.Network == nil {
				ch.send(Message{Kind: MsgError, Code: ExitSetup, Error: "protocol: net-start without network"})
				continue
			}
			if m.Opaque != nil {
				if err := slirp.StartNetChild(m.Helper, m.Network, m.Opaque, netns); err != nil {
					ch.send(Message{Kind: MsgError, Code: ExitSetup, Error: "network driver: " + err.Error()})
					continue
				}
			}
			if err := slirp.Configure(m.Network, netns); err != nil {
				ch.send(Message{Kind: MsgError, Code: ExitSetup, Error: err.Error()})
				continue
			}
			ch.send(Message{Kind: MsgNetStarted})
		case MsgPortsStart:
			go func() {
				if err := slirp.RunPortChild(m.Opaque, quit, netns, os.Stderr); err != nil {
					ch.send(Message{Kind: MsgError, Code: ExitSetup, Error: "port driver: " + err.Error()})
				}
			}()
		}
	}
}

// setParentDeathSignal sets SIGKILL on the runner's death again. The first
// one, set by the clone, is cleared by any credential change; the maps were
// just written, and nothing must be left running if the runner died meanwhile.
func setParentDeathSignal(parent int) error {
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_PDEATHSIG): %w", err)
	}
	if os.Getppid() != parent {
		return errors.New("the runner exited during start-up")
	}
	return nil
}

// dropCarriedCaps clears the ambient and inheritable sets that carried a
// stage's capabilities over its own execve (startHolder, startInit). They
// have done their work; left in place they would pass on to init and to the
// container's commands (an inheritable set meets a file's inheritable
// capabilities at exec, and root's exec adds it to the permitted set).
// Capabilities are per thread, and by now the Go runtime has started
// threads of its own, each with the carried sets: they are cleared on all
// of them, as any may later fork. A cgo build cannot (AllThreadsSyscall),
// and then only this thread is cleared: enough for the holder, which clones
// init from it; such a build never starts init directly (cgoBuild).
func dropCarriedCaps() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capget: %w", err)
	}
	data[0].Inheritable, data[1].Inheritable = 0, 0
	_, _, errno := syscall.AllThreadsSyscall(unix.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0)
	if errno == unix.ENOTSUP {
		if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
			return fmt.Errorf("prctl(PR_CAP_AMBIENT_CLEAR_ALL): %w", err)
		}
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			return fmt.Errorf("capset: %w", err)
		}
		return nil
	}
	if errno != 0 {
		return fmt.Errorf("prctl(PR_CAP_AMBIENT_CLEAR_ALL) on all threads: %w", errno)
	}
	_, _, errno = syscall.AllThreadsSyscall(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0)
	runtime.KeepAlive(&hdr)
	runtime.KeepAlive(&data)
	if errno != 0 {
		return fmt.Errorf("capset on all threads: %w", errno)
	}
	return nil
}

// unshareTime gives the children of the calling thread a new time namespace
// with offsets. The offsets can only be written before any process has
// entered the namespace, which is why this is done here, before init is
// cloned, and not with CLONE_NEWTIME in init's clone flags.
func unshareTime(o TimeOffsets) error {
	if err := unix.Unshare(unix.CLONE_NEWTIME); err != nil {
		return fmt.Errorf("unshare(CLONE_NEWTIME): %w", err)
	}
	if o == (TimeOffsets{}) {
		return nil
	}
	// The file is the thread-group leader's: see the init in stages.go.
	const p = "/proc/self/timens_offsets"
	text := "monotonic " + strconv.FormatInt(o.Monotonic, 10) + " 0\n" +
		"boottime " + strconv.FormatInt(o.Boottime, 10) + " 0\n"
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Write([]byte(text)); err != nil {
		return fmt.Errorf("write %s: %w (offsets %+v)", p, err, o)
	}
	return nil
}

// reported is an error a stage already sent to the parent: the stage exits
// with its code and prints nothing.
type reported struct{ code int }

func (r *reported) Error() string { return "reported to the parent" }

// fail reports err to the parent with the exit code the runner should use.
func (c *channel) fail(code int, err error) error {
	if serr := c.send(Message{Kind: MsgError, Code: code, Error: err.Error()}); serr != nil {
		return err // the parent is gone; MaybeRunStage prints it
	}
	return &reported{code}
}

// CloneflagString renders clone flags by name, for errors and debug logs.
func CloneflagString(f uintptr) string {
	names := []struct {
		f uintptr
		n string
	}{
		{unix.CLONE_NEWUSER, "user"}, {unix.CLONE_NEWNS, "mnt"}, {unix.CLONE_NEWPID, "pid"},
		{unix.CLONE_NEWUTS, "uts"}, {unix.CLONE_NEWIPC, "ipc"}, {unix.CLONE_NEWNET, "net"},
		{unix.CLONE_NEWCGROUP, "cgroup"}, {unix.CLONE_NEWTIME, "time"},
	}
	s := ""
	for _, n := range names {
		if f&n.f != 0 {
			if s != "" {
				s += ","
			}
			s += n.n
		}
	}
	return s
}

// kernelRelease is uname -r.
func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "unknown"
	}
	return unix.ByteSliceToString(u.Release[:])
}
