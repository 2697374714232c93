package userns

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The binary's internal entry points. Each stage is the same isobox binary
// re-executed through /proc/self/exe with argv[0] set to its name, so the
// kernel has created its namespaces before any Go code runs in it. This
// table is the only place they are listed; main dispatches to them before
// parsing flags.
const (
	// stageHolder: a new user and mount namespace, waiting for its maps;
	// then the parent of init, and the process whose mount namespace and
	// PID network helpers can nsenter.
	stageHolder = "isobox:holder"
	// stageInit: PID 1 of the container, in the nested namespaces.
	stageInit = "isobox:init"
	// stageUnshare: `isobox unshare`: a user namespace with the container's
	// mapping around a host command.
	stageUnshare = "isobox:unshare"
	// stageProbe: `isobox check` starts it in new namespaces to see what
	// an unprivileged user may do there (create them, mount overlayfs).
	stageProbe = "isobox:probe"
	// stageMonitor: the runner of a detached container (run -d), in a
	// session of its own, keeping the container's log (detach.go).
	stageMonitor = "isobox:monitor"
	// stageMapped: root of a user namespace with the container's mapping,
	// doing one of isobox's own tasks there (rootfs import, rootfs rm).
	stageMapped = "isobox:mapped"
	// stageWatcher: on the host, the stand-in for a process `oci exec -d
	// --pid-file` started, which the caller's subreaper can reap (exec.go).
	stageWatcher = "isobox:watcher"
)

var stages = map[string]func() error{
	stageHolder:  holderMain,
	stageInit:    initMain,
	stageUnshare: unshareMain,
	stageProbe:   probeMain,
	stageMonitor: monitorMain,
	stageMapped:  mappedMain,
	stageWatcher: watcherMain,
}

// envStage names the stage instead of argv[0] when the stage is exec'd by
// another program, which sets argv[0] to the path it execs: the holder
// through nsenter(1), to join a user namespace (join.go). The stage is
// then given no other environment but goEnv (threads.go).
const envStage = "_ISOBOX_STAGE"

// stageName is the stage this process runs, or "".
func stageName() string {
	if len(os.Args) == 0 {
		return ""
	}
	if _, ok := stages[os.Args[0]]; ok {
		return os.Args[0]
	}
	// Only the holder is exec'd that way: a variable left in a user's
	// environment names no other stage.
	if os.Getenv(envStage) == stageHolder {
		return stageHolder
	}
	return ""
}

// MaybeRunStage runs the stage named by argv[0] and exits; it returns
// without doing anything when argv[0] names no stage (a user's command).
// Stages report errors to the parent over their channel; what is printed
// here is the last resort when that channel is gone.
func MaybeRunStage() {
	name := stageName()
	if name == "" {
		return
	}
	os.Unsetenv(envStage)
	os.Args[0] = name
	run := stages[name]
	if err := CloseExecFrom3(); err != nil {
		fmt.Fprintf(os.Stderr, "isobox: %s: mark descriptors close-on-exec: %v\n", os.Args[0], err)
		os.Exit(125)
	}
	err := run()
	var rep *reported
	if errors.As(err, &rep) {
		os.Exit(rep.code)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "isobox: %s: %v\n", os.Args[0], err)
		os.Exit(125)
	}
	os.Exit(0)
}

func init() {
	if len(os.Args) == 0 {
		return
	}
	// Each stage carries its own name as its command name (/proc/PID/comm,
	// what ps -o comm, top and pgrep show), where it would otherwise be
	// "exe" or, run from a sealed descriptor, a number. The name is the
	// calling thread's; during package initialization the main goroutine
	// is on the main thread, whose name is the process's.
	stage := stageName()
	if stage != "" {
		name := []byte(stage)
		if len(name) > 15 {
			name = name[:15]
		}
		unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&append(name, 0)[0])), 0, 0, 0)
	}
	// The holder unshares the time namespace and writes its offsets to
	// /proc/self/timens_offsets, which belongs to the thread-group leader
	// (there is no per-thread file). Keeping the holder's main goroutine on
	// the main thread from the start makes that leader the thread that
	// unshares, and the thread init is cloned from.
	if stage == stageHolder {
		runtime.LockOSThread()
	}
}

// selfExe is how a stage is started: the running binary, whatever its path.
const selfExe = "/proc/self/exe"

// Descriptor numbers the stages find their channels at (ExtraFiles order).
const (
	fdChannel     = 3 // this stage's channel to the parent
	fdInitChannel = 4 // holder only: init's channel, passed on as init's fd 3
)
