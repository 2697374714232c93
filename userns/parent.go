package userns

import (
	"errors"
	"log/slog"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/isobox/isobox/idmap"
	"github.com/isobox/isobox/slirp"
	"github.com/isobox/isobox/userns/cgroups"
	"github.com/isobox/isobox/userns/state"
)

// Options is a container to run.
type Options struct {
	Config
	Map idmap.Mode
	// UIDMap and GIDMap, when given, are the exact maps (an OCI bundle's),
	// checked against the caller's own ids and subordinate ranges; Map is
	// then not used.
	UIDMap      []idmap.Mapping `json:"uidMap,omitempty"`
	GIDMap      []idmap.Mapping `json:"gidMap,omitempty"`
	TimeOffsets TimeOffsets
	// AllowHostLoopback lets a --net slirp container reach the host's
	// 127.0.0.1 through 10.0.2.2.
	AllowHostLoopback bool
	// Publish are the ports to forward from the host (--net slirp only).
	Publish []slirp.Publish
	// Limits are the container's cgroup v2 limits. Set, a host where they
	// cannot be applied refuses the start, unless LimitsBestEffort (an OCI
	// bundle's linux.resources, which runc --rootless ignores without a
	// delegated cgroup): then they are dropped with one warning.
	Limits           cgroups.Limits `json:"limits,omitzero"`
	LimitsBestEffort bool           `json:"limitsBestEffort,omitempty"`
	Logger           *slog.Logger   `json:"-"`
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
	// AdoptableInit makes init, as runc's, a child of the runner's parent
	// instead of the runner's (clone's CLONE_PARENT): under a detached
	// monitor, that is the command that started it, and once it has
	// returned, the caller's subreaper (containerd's shim), which can then
	// reap the PID that --pid-file and state name. The runner learns the
	// exit from init's channel and a pidfd. Only where init is cloned
	// directly (no holder), and without a time namespace unless
	// NoTimeNamespace (Go clones into one with clone3, which refuses
	// CLONE_PARENT with the exit signal Go gives it).
	AdoptableInit bool `json:"adoptableInit,omitempty"`
	// Join are existing namespaces the container joins instead of making
	// them (join.go); with a user namespace among them, its maps are the
	// container's, and UIDMap, GIDMap and Map are not used.
	Join []Join `json:"join,omitempty"`
	// NoTimeNamespace: the container did not ask for one (an OCI bundle's
	// namespaces without "time"), so one may be left out.
	NoTimeNamespace bool `json:"noTimeNamespace,omitempty"`
	// ConsoleSocket, with a terminal, is where the terminal's master is
	// sent (runc's --console-socket) instead of being joined to the
	// runner's: an absolute path.
	ConsoleSocket string `json:"consoleSocket,omitempty"`
	// ExtraFiles are given to the command as its descriptors 3, 4, ...
	// (runc's --preserve-fds); at most MaxPassedFDs-1.
	ExtraFiles []*os.File `json:"-"`
	// Preserved is how many ExtraFiles a detached monitor gets after the
	// standard streams.
	Preserved int `json:"preserved,omitempty"`
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

// runCreateHooks runs the bundle's prestart and createRuntime hooks, on
// the host, while init waits before its pivot_root.
func runCreateHooks(c *Config, trace func(string), initPid int) error {
	if err := runHooks(c, trace, "prestart", c.hookSet().Prestart, "creating", initPid); err != nil {
		return err
	}
	return runHooks(c, trace, "createRuntime", c.hookSet().CreateRuntime, "creating", initPid)
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
