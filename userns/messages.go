package userns

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"github.com/isobox/isobox/slirp"
)

// Kind names a hand-over in the launch protocol; see the diagram in doc.go.
type Kind string

const (
	MsgConfig          Kind = "config"           // parent → init: what to run, queued before init exists
	MsgReady           Kind = "ready"            // holder → parent: alone in its user namespace, unmapped
	MsgMapsWritten     Kind = "maps-written"     // parent → holder: uid/gid maps are written
	MsgInitStarted     Kind = "init-started"     // holder → parent: init cloned with the nested namespaces
	MsgNamespacesReady Kind = "namespaces-ready" // init → parent: rootfs pivoted, hostname and lo set
	MsgNetworkReady    Kind = "network-ready"    // parent → init: the network is configured, go on (Pid: init's, on the host)
	MsgCreateHooks     Kind = "create-hooks"     // init → parent: mounts made, not pivoted: run the bundle's prestart and createRuntime hooks
	MsgCreateHooksRun  Kind = "create-hooks-run" // parent → init: they ran (Pid: init's, on the host); init runs createContainer, then pivots
	MsgStarted         Kind = "started"          // init → parent: command forked (pty master attached with -t)
	MsgExecing         Kind = "execing"          // init → parent: about to exec the command itself (--no-init)
	MsgStatePrepare    Kind = "state-prepare"    // parent → holder: make a private tmpfs for the network helpers' state
	MsgStatePrepared   Kind = "state-prepared"   // holder → parent: done, at /proc/HOLDER/root + StateDir
	MsgNetStart        Kind = "net-start"        // parent → holder: configure the tap (Network), first running the driver's child side (Opaque) if it has one
	MsgNetStarted      Kind = "net-started"      // holder → parent: the tap is up with its address and route
	MsgPortsStart      Kind = "ports-start"      // parent → holder: run the port driver's child side (Opaque)
	MsgExit            Kind = "exit"             // holder → parent: init's wait status; init → exec client: the process's status
	MsgExecRequest     Kind = "exec-request"     // exec client → init: start a process (Exec; stdio attached unless TTY)
	MsgSignal          Kind = "signal"           // exec client → init: pass Signal on to the process
	MsgError           Kind = "error"            // stage → parent: setup failed; Code is the exit status
)

// Message is one packet of the protocol.
type Message struct {
	Kind   Kind    `json:"kind"`
	Config *Config `json:"config,omitempty"`
	// Holder is what the holder needs from the parent with MsgMapsWritten.
	Holder *HolderConfig `json:"holder,omitempty"`
	// Network is sent with MsgNetStart for the holder to configure.
	Network *slirp.Network `json:"network,omitempty"`
	// NetNS names the container's network namespace with MsgInitStarted:
	// a descriptor the holder keeps open (/proc/HOLDER/fd/N).
	NetNS string `json:"netns,omitempty"`
	// Helper is the program that runs a driver's child side (isobox-gvisor).
	Helper string `json:"helper,omitempty"`
	// Exec is the process `isobox exec` asks init to start.
	Exec *ExecRequest `json:"exec,omitempty"`
	// Opaque is a RootlessKit driver's configuration for its child side.
	Opaque map[string]string `json:"opaque,omitempty"`
	Pid    int               `json:"pid,omitempty"`
	Code   int               `json:"code,omitempty"`
	Signal int               `json:"signal,omitempty"`
	Error  string            `json:"error,omitempty"`
}

// MaxPassedFDs bounds the descriptors one message carries: the exec
// socket's listener and `oci --preserve-fds`' files with the config.
const MaxPassedFDs = 64

// StageError is an error a stage reported over the protocol.
type StageError struct {
	Msg  string
	Code int
}

func (e *StageError) Error() string { return e.Msg }

// ExitCode makes the CLI exit with the stage's code (125, 126, 127).
func (e *StageError) ExitCode() int { return e.Code }

// errHungUp means the peer closed its end: it exited or exec'd.
var errHungUp = errors.New("peer hung up")

// channel is one end of a SOCK_SEQPACKET socketpair: every send is one
// packet, so messages need no framing and can carry descriptors.
type channel struct {
	f    *os.File
	name string // the peer, for errors
}

func newChannel(fd int, name string) *channel {
	return &channel{f: os.NewFile(uintptr(fd), name), name: name}
}

// channelPair returns two connected ends, both close-on-exec.
func channelPair(name string) (parent, child *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	return os.NewFile(uintptr(fds[0]), name), os.NewFile(uintptr(fds[1]), name), nil
}

func (c *channel) send(m Message, fds ...int) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	rc, err := c.f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Write(func(fd uintptr) bool {
		serr = unix.Sendmsg(int(fd), b, oob, nil, 0)
		return serr != unix.EAGAIN
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("send %s to %s: %w", m.Kind, c.name, serr)
	}
	return nil
}

// recv reads one message and the descriptors that came with it.
//
// The packet's length is peeked first (MSG_TRUNC reports the whole length of
// a SEQPACKET record), so the buffer fits it: a fixed one big enough for any
// Config was allocated and cleared for every message, 0.7 ms of init's
// start.
func (c *channel) recv() (Message, []int, error) {
	oob := make([]byte, unix.CmsgSpace(4*MaxPassedFDs))
	rc, err := c.f.SyscallConn()
	if err != nil {
		return Message{}, nil, err
	}
	var buf []byte
	var n, oobn int
	var rerr error
	if err := rc.Read(func(fd uintptr) bool {
		if buf == nil {
			n, _, rerr = unix.Recvfrom(int(fd), nil, unix.MSG_PEEK|unix.MSG_TRUNC)
			if rerr != nil {
				return rerr != unix.EAGAIN
			}
			buf = make([]byte, max(n, 1))
		}
		n, oobn, _, _, rerr = unix.Recvmsg(int(fd), buf, oob, unix.MSG_CMSG_CLOEXEC)
		return rerr != unix.EAGAIN
	}); err != nil {
		return Message{}, nil, err
	}
	if rerr == unix.ECONNRESET {
		n, rerr = 0, nil // the peer died: same as a hang-up (n was -1)
	}
	if rerr != nil {
		return Message{}, nil, fmt.Errorf("receive from %s: %w", c.name, rerr)
	}
	if n == 0 {
		return Message{}, nil, fmt.Errorf("%s: %w", c.name, errHungUp)
	}
	var fds []int
	if oobn > 0 {
		cmsgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			return Message{}, nil, err
		}
		for _, cm := range cmsgs {
			got, err := unix.ParseUnixRights(&cm)
			if err == nil {
				fds = append(fds, got...)
			}
		}
	}
	var m Message
	if err := json.Unmarshal(buf[:n], &m); err != nil {
		closeAll(fds)
		return Message{}, nil, fmt.Errorf("bad message from %s: %w", c.name, err)
	}
	return m, fds, nil
}

// expect reads the next message and checks it is one of kinds. A MsgError
// becomes a *StageError; anything else is a protocol error naming what was
// expected.
func (c *channel) expect(kinds ...Kind) (Message, []int, error) {
	m, fds, err := c.recv()
	if err != nil {
		return m, nil, err
	}
	if m.Kind == MsgError {
		closeAll(fds)
		return m, nil, &StageError{Msg: m.Error, Code: m.Code}
	}
	for _, k := range kinds {
		if m.Kind == k {
			return m, fds, nil
		}
	}
	closeAll(fds)
	return m, nil, fmt.Errorf("protocol: expected %v from %s, got %q", kinds, c.name, m.Kind)
}

func (c *channel) Close() error { return c.f.Close() }

func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

var _ io.Closer = (*channel)(nil)
