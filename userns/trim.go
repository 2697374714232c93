package userns

import (
	"bufio"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// trimAfter gives memory back once a runner or holder settles into waiting
// for its container, which may run for days: the heap start-up used, and
// the pages of this binary that start-up touched. Those are mapped
// read-only from the file and shared, but each process counts them as
// resident; dropping the mappings (MADV_DONTNEED on the binary's read-only
// mappings, never a writable one) lets the few a waiting process needs
// fault back in from the page cache. It runs late, off the start's path,
// and only if the process is still waiting then.
func trimAfter(d time.Duration) {
	time.AfterFunc(d, func() {
		debug.FreeOSMemory()
		dropBinaryPages()
	})
}

func dropBinaryPages() {
	exe, err := os.Readlink(selfExe)
	if err != nil {
		return
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "00400000-00ae2000 r-xp 00000000 fd:01 123 /path/isobox"
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[5] != exe || strings.Contains(fields[1], "w") {
			continue
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		// The raw call: the range is this process's own mapping, not Go
		// memory, so no slice is made over it.
		unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_DONTNEED)
	}
}
