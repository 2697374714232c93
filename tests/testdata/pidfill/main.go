// Command pidfill takes every PID its cgroup's pids limit leaves and keeps
// them taken: it starts `sleep 1000` until the kernel refuses (EAGAIN), and
// tries again for as long as it runs, so that any PID freed is taken back
// within a moment. Unlike a shell fork bomb, whose processes end when a
// fork fails and give PIDs back, it holds the limit reached. It prints how
// many it started once the first fork was refused.
package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"syscall"
	"time"
)

func main() {
	// One CPU, and a wait that stays in a system call, so that Go wants
	// no new thread: one would be refused too, and Go aborts then.
	runtime.GOMAXPROCS(1)
	pause := syscall.NsecToTimespec(int64(time.Millisecond))
	attr := &syscall.ProcAttr{Files: []uintptr{0, 1, 2}}
	started, told := 0, false
	for {
		_, err := syscall.ForkExec("/bin/sleep", []string{"sleep", "1000"}, attr)
		switch {
		case err == nil:
			started++
		case errors.Is(err, syscall.EAGAIN):
			if !told {
				fmt.Printf("pidfill: limit reached after %d\n", started)
				told = true
			}
			syscall.Nanosleep(&pause, nil)
		default:
			fmt.Fprintln(os.Stderr, "pidfill:", err)
			os.Exit(2)
		}
	}
}
