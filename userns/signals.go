package userns

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// sigIgn and sigDfl are the kernel's SIG_IGN and SIG_DFL handler values.
const (
	sigDfl = 0
	sigIgn = 1
)

// kernelSigaction is large enough for every architecture's struct
// sigaction; only the handler, its first word, is read or set here.
type kernelSigaction struct {
	handler uintptr
	rest    [3]uintptr
}

// defaultIgnoredSignals resets to SIG_DFL every signal this process
// inherited as ignored. Ignored dispositions survive fork and execve, and a
// shell cannot trap a signal that was ignored when it started, so a runner
// started under nohup would otherwise hand the container a SIGHUP it can
// never catch. Signals the Go runtime handles are left alone: they are not
// SIG_IGN.
func defaultIgnoredSignals() {
	for sig := 1; sig <= 64; sig++ {
		if sig == int(unix.SIGKILL) || sig == int(unix.SIGSTOP) {
			continue
		}
		var old kernelSigaction
		if _, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), 0, uintptr(unsafe.Pointer(&old)), 8, 0, 0); e != 0 {
			continue
		}
		if old.handler != sigIgn {
			continue
		}
		act := kernelSigaction{handler: sigDfl}
		unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&act)), 0, 8, 0, 0)
	}
}
