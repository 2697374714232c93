package userns

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// holder is the running stage 1 and its channel; in a direct start (Run),
// it is init itself, with no channel.
type holder struct {
	cmd     *exec.Cmd
	ch      *channel
	done    chan struct{}
	initPid int
	netns   string // the container's network namespace, held by the holder
	// releaseNetns lets the namespace go, when this process holds it (a
	// direct start with a network).
	releaseNetns func()
	killed       atomic.Bool
	// adopted: init is its runner's sibling (Config.Adopted), watched
	// through pidfd; it reports its own exit on report.
	adopted bool
	pidfd   int
	report  *channel
	// setns: namespaces the cloning thread joins first (join.go); via: a
	// command line that joins namespaces and execs the stage in them
	// (nsenter), for a stage not cloned into a new user namespace.
	setns []joined
	via   []string
}

// placement is where a new stage is born besides its new namespaces: the
// cgroup whose directory cgroup is open on (-1: the caller's), and
// existing namespaces its cloning thread joins first (join.go).
type placement struct {
	cgroup int
	setns  []joined
}

// callers: the caller's cgroup and namespaces.
var callers = placement{cgroup: -1}

// stdStreams are this process's own standard streams.
func stdStreams() [3]*os.File { return [3]*os.File{os.Stdin, os.Stdout, os.Stderr} }

// startHolder starts stage in a new user and mount namespace, with stdio as
// its (and the container's) standard streams, in at's cgroup and joined
// namespaces. The thread
// that forks it stays locked and alive until the holder is reaped: the
// holder's parent-death signal fires when that thread exits.
func startHolder(stage string, env []string, stdio [3]*os.File, at placement, extra ...*os.File) (*holder, error) {
	parentEnd, childEnd, err := channelPair("holder")
	if err != nil {
		return nil, err
	}
	defer childEnd.Close()
	h := &holder{ch: &channel{f: parentEnd, name: "holder"}, pidfd: -1, setns: at.setns}
	flags := uintptr(unix.CLONE_NEWUSER | unix.CLONE_NEWNS)
	// The holder is the container's ancestor: a session of its own keeps
	// the caller's terminal out of reach (TIOCSTI).
	setsid := stage == stageHolder
	if err := h.start(selfExe, stage, env, flags, setsid, stdio, at.cgroup, append([]*os.File{childEnd}, extra...)); err != nil {
		parentEnd.Close()
		return nil, err
	}
	return h, nil
}

// startJoinedHolder starts the holder in the user namespace at.setns names
// and the other namespaces it joins, through nsenter (join.go), with stdio,
// in at.cgroup.
func startJoinedHolder(stdio [3]*os.File, at placement, extra ...*os.File) (*holder, error) {
	js := at.setns
	parentEnd, childEnd, err := channelPair("holder")
	if err != nil {
		return nil, err
	}
	defer childEnd.Close()
	self, err := os.Open(selfExe)
	if err != nil {
		parentEnd.Close()
		return nil, err
	}
	defer self.Close()
	// The child's descriptors from 3: the channels, the namespaces, and
	// last this binary, which nsenter execs by its /proc/self/fd name
	// once it has joined them.
	files := append([]*os.File{childEnd}, extra...)
	firstNS := 3 + len(files)
	for _, j := range js {
		files = append(files, j.f)
	}
	exe := "/proc/self/fd/" + strconv.Itoa(3+len(files))
	files = append(files, self)
	h := &holder{ch: &channel{f: parentEnd, name: "holder"}, pidfd: -1}
	if h.via, err = nsenterArgs(js, firstNS, exe); err != nil {
		parentEnd.Close()
		return nil, err
	}
	if err := h.start(h.via[0], stageHolder, []string{envStage + "=" + stageHolder, goEnv}, 0, true, stdio, at.cgroup, files); err != nil {
		parentEnd.Close()
		return nil, err
	}
	return h, nil
}

// startInit starts the container's init as this process's own child, in a
// new user namespace and all the nested ones at once: the start without a
// holder (see Run). exe must name this binary in init's new mount
// namespace (directExe); channel becomes init's fd 3. The holder's other
// fields stay empty: h.ch is nil, and h.initPid is the child itself.
// Adopted by report's end, init is this process's parent's child instead
// (Config.Adopted), and its exit is read from report.
func startInit(exe string, flags uintptr, stdio [3]*os.File, at placement, channel *os.File, report *channel) (*holder, error) {
	h := &holder{adopted: report != nil, report: report, pidfd: -1, setns: at.setns}
	if h.adopted {
		flags |= unix.CLONE_PARENT
	}
	if err := h.start(exe, stageInit, []string{goEnv}, unix.CLONE_NEWUSER|flags, true, stdio, at.cgroup, []*os.File{channel}); err != nil {
		return nil, err
	}
	h.initPid = h.cmd.Process.Pid
	return h, nil
}

func (h *holder) start(path, stage string, env []string, flags uintptr, setsid bool, stdio [3]*os.File, cgroup int, files []*os.File) error {
	h.done = make(chan struct{})
	args := []string{stage}
	if h.adopted {
		args = append(args, argAdopted)
	}
	if h.via != nil {
		args = h.via
	}
	h.cmd = &exec.Cmd{
		Path:       path,
		Args:       args,
		Env:        env,
		Stdin:      stdio[0],
		Stdout:     stdio[1],
		Stderr:     stdio[2],
		ExtraFiles: files,
		SysProcAttr: &syscall.SysProcAttr{
			Cloneflags: flags,
			Setsid:     setsid,
			Pdeathsig:  syscall.SIGKILL,
			// Capabilities in a new user namespace are lost at execve while
			// the namespace has no maps yet (the uid is not 0 there). Raised
			// as ambient before the exec, they survive it, so the stage
			// can nest namespaces or mount without exec'ing itself a
			// second time. It clears them first thing (dropCarriedCaps).
			AmbientCaps: boundingCaps(),
		},
	}
	if flags&unix.CLONE_NEWUSER == 0 {
		// In the caller's user namespace, or one to join: no
		// capabilities to carry.
		h.cmd.SysProcAttr.AmbientCaps = nil
	}
	if h.adopted {
		// The parent-death signal would be the runner's parent's, and
		// fire when `oci create` returns: init watches its channel
		// instead. Not the runner's child, it cannot be waited for: its
		// end is seen through a pidfd.
		h.cmd.SysProcAttr.Pdeathsig = 0
		h.cmd.SysProcAttr.PidFD = &h.pidfd
	}
	if cgroup >= 0 {
		// clone3's CLONE_INTO_CGROUP: born in the container's cgroup, under
		// its limits from the first instruction, and never in the caller's.
		h.cmd.SysProcAttr.UseCgroupFD, h.cmd.SysProcAttr.CgroupFD = true, cgroup
	}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // Pdeathsig: see startHolder
		if len(h.setns) == 0 {
			// Else the thread has joined namespaces: it ends with this
			// goroutine, locked, never to run another.
			defer runtime.UnlockOSThread()
		} else if err := setnsAll(h.setns); err != nil {
			started <- err
			return
		}
		if err := h.cmd.Start(); err != nil {
			started <- err
			return
		}
		if h.adopted && h.pidfd < 0 {
			h.cmd.Process.Kill()
			started <- errors.New("no pidfd for a process started with CLONE_PARENT (Linux 5.3+)")
			return
		}
		started <- nil
		if h.adopted {
			awaitExit(h.pidfd)
			unix.Close(h.pidfd)
		} else {
			h.cmd.Wait()
		}
		close(h.done)
	}()
	if err := <-started; err != nil {
		if je := (joinError{}); errors.As(err, &je) {
			return je
		}
		return fmt.Errorf("start %s in a new user namespace: %w%s", stage, err, userNSHint(err))
	}
	return nil
}

// argAdopted, init's argv[1], says it is adopted (Config.Adopted) before
// its config comes.
const argAdopted = "adopted"

// awaitExit returns once the process of pidfd has exited: its descriptor
// is then readable, whoever reaps it.
func awaitExit(pidfd int) {
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	for {
		if _, err := unix.Poll(fds, -1); err != unix.EINTR {
			return
		}
	}
}

// directExe names the running binary by its path, for init's exec in its
// own new mount namespace, where that path leads to init's copy of the
// mount, which init can then make read-only (rootfs: the old root). Through
// /proc/self/exe, the exec would instead keep the runner's mount, which init
// can do nothing about. ok is false when the path no longer leads to this
// binary (it was replaced or deleted): the holder's start then seals it.
func directExe() (path string, ok bool) {
	name, err := os.Readlink(selfExe)
	if err != nil || !filepath.IsAbs(name) {
		return "", false
	}
	var self, named unix.Stat_t
	if unix.Stat(selfExe, &self) != nil || unix.Stat(name, &named) != nil {
		return "", false
	}
	return name, self.Dev == named.Dev && self.Ino == named.Ino
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
	if h.ch != nil {
		h.ch.Close()
	}
}

// exit waits for init to exit and says how: as the holder reports it, or,
// in a direct start, from init's own wait status.
func (h *holder) exit() (Message, error) {
	if h.report != nil {
		m, _, err := h.report.expect(MsgExit)
		<-h.done
		if errors.Is(err, errHungUp) {
			// Gone without a word: killed (oci kill KILL names init).
			return Message{Kind: MsgExit, Signal: int(unix.SIGKILL)}, nil
		}
		return m, err
	}
	if h.ch != nil {
		m, _, err := h.ch.expect(MsgExit)
		return m, err
	}
	<-h.done
	return exitMessage(h.cmd.ProcessState), nil
}

// exitMessage is how a stage's end is reported: its code, or its signal.
func exitMessage(ps *os.ProcessState) Message {
	ws := ps.Sys().(syscall.WaitStatus)
	m := Message{Kind: MsgExit, Code: ws.ExitStatus()}
	if ws.Signaled() {
		m.Signal = int(ws.Signal())
	}
	return m
}

// wait hangs up, which lets the holder exit once init is gone, and waits.
func (h *holder) wait() {
	if h.ch != nil {
		h.ch.Close()
	}
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
