package userns

import (
	"runtime"
	"sync"
	"time"
)

// A Go process inside the container's cgroup (init, and the holder when
// there is one) counts its threads against the container's pids limit and
// the user's RLIMIT_NPROC. The Go runtime starts a thread whenever it has
// work and no idle thread, and when the kernel refuses one (EAGAIN: the
// container's own processes took the last PIDs, a fork bomb or a build
// run with too many jobs) it neither retries nor fails the one call: it
// aborts the process, "failed to create new OS thread". Init would die, and
// the container with it, of what the limit is there to survive. The VM lane
// shows it: with its command holding every PID of --pids-limit 32, init
// wanted one thread more about a second in (its memory trim, trim.go, and a
// system call the scheduler handed off) and died with "fatal error:
// newosproc", its stack in the container's log.
//
// So such a process makes the threads it will want while it starts, before
// the command can run, and keeps them: the runtime takes an idle thread
// before it makes one, and never ends a thread no goroutine is locked to.
// Soon after the command runs, it runs Go code on one CPU (GOMAXPROCS 1),
// which bounds how many threads it can want at once, whatever the machine's
// size: the one running, those blocked in a system call for good (the exec
// socket's accept, a blocking channel's read), the forker's locked one,
// sysmon.

// goEnv is the environment init and the holder are started with (their
// commands get the container's own). Go then uses at most two CPUs from
// the first instruction, as many as init's set-up uses (its own work and
// the forker's, forker.go), so the threads they make while they start are
// as many as on the 2-CPU machines the VM lane counts them on, whatever
// the machine's size: a 64-CPU node's runtime could otherwise start more
// than a small pids limit leaves.
const goEnv = "GOMAXPROCS=2"

// spareThreads is how many idle threads a reserve leaves: one for each
// goroutine that may block in a system call for the container's life, and
// one for a short call the scheduler hands off. The VM lane checks that
// the thread counts of init and the holder stay as they were at start,
// through the trim, an exec and a published port's use.
const spareThreads = 3

// threadReserve is a set of goroutines each holding a thread of its own
// (runtime.LockOSThread) until settle: the runtime has to make the threads
// meanwhile, off the start's path.
type threadReserve struct {
	locked  sync.WaitGroup
	release chan struct{}
}

func reserveThreads() *threadReserve {
	r := &threadReserve{release: make(chan struct{})}
	r.locked.Add(spareThreads)
	for range spareThreads {
		go func() {
			runtime.LockOSThread()
			r.locked.Done()
			<-r.release
			// Unlocked before the goroutine ends: a thread still locked
			// then would exit with it.
			runtime.UnlockOSThread()
		}()
	}
	return r
}

// settle waits until the reserved threads exist and leaves them idle for
// the runtime to reuse.
func (r *threadReserve) settle() {
	r.locked.Wait()
	close(r.release)
}

// oneCPUAfter limits Go to one CPU once the process has waited d. Not at
// once: the change stops the world, 50-100 µs here, which the exit of a
// short command would wait for; until then the spare threads cover what a
// second CPU may want, and the memory trim (trim.go), whose collection
// would want a thread for each CPU, comes later.
func oneCPUAfter(d time.Duration) {
	time.AfterFunc(d, func() { runtime.GOMAXPROCS(1) })
}
