package slirp

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// DrainLimit bounds how long a network helper is kept after the container
// exits, for connections that do not end by themselves.
const DrainLimit = 2 * time.Second

// tcpDone are the TCP states in which a socket carries no more data:
// LISTEN, FIN_WAIT2 and TIME_WAIT (everything sent was acknowledged, FIN
// included), CLOSE.
var tcpDone = map[uint8]bool{unix.BPF_TCP_LISTEN: true, unix.BPF_TCP_FIN_WAIT2: true,
	unix.BPF_TCP_TIME_WAIT: true, unix.BPF_TCP_CLOSE: true}

// drain waits, at most limit, until process pid has no TCP connection that
// may still carry data. A helper acknowledges to the container what it has
// not yet delivered to the host; stopped as soon as the container exits, it
// lost the tail of what a short-lived container sent (measured: 800 KB of
// 256 MiB). A container without open connections waits for nothing.
func drain(pid int, limit time.Duration) {
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return // gone already, or no pidfd on this kernel: nothing to wait for
	}
	defer unix.Close(pidfd)
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if !busy(pid, pidfd) {
			return
		}
	}
}

// busy looks at each socket the helper holds, through a duplicate taken
// with pidfd_getfd: asking the socket is exact and cheap, where reading
// /proc/PID/net/tcp makes the kernel walk every TCP socket of the host's
// namespace (12 ms here).
func busy(pid, pidfd int) bool {
	dir := filepath.Join("/proc", strconv.Itoa(pid), "fd")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range entries {
		link, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil || !strings.HasPrefix(link, "socket:") {
			continue
		}
		target, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		fd, err := unix.PidfdGetfd(pidfd, target, 0)
		if err != nil {
			continue
		}
		state, isTCP := tcpState(fd)
		unix.Close(fd)
		if isTCP && !tcpDone[state] {
			return true
		}
	}
	return false
}

func tcpState(fd int) (uint8, bool) {
	proto, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PROTOCOL)
	// Go makes listeners (and what they accept) multipath TCP by default
	// since 1.24; TCP_INFO answers for both.
	if err != nil || (proto != unix.IPPROTO_TCP && proto != unix.IPPROTO_MPTCP) {
		return 0, false
	}
	info, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
	if err != nil {
		return 0, false
	}
	return info.State, true
}

// childrenNamed lists this process's children named comm. Each thread's
// /proc/self/task/TID/children has its children, which costs a few reads
// where scanning every process's stat under /proc cost milliseconds on a
// busy host; the scan stays for kernels without those files.
func childrenNamed(comm string) []int {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return scanChildrenNamed(comm)
	}
	var pids []int
	for _, t := range tasks {
		b, err := os.ReadFile(filepath.Join("/proc/self/task", t.Name(), "children"))
		if err != nil {
			return scanChildrenNamed(comm)
		}
		for _, f := range strings.Fields(string(b)) {
			c, err := os.ReadFile(filepath.Join("/proc", f, "comm"))
			if err != nil || strings.TrimSpace(string(c)) != comm {
				continue
			}
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

func scanChildrenNamed(comm string) []int {
	self := strconv.Itoa(os.Getpid())
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 || !strings.HasPrefix(s, e.Name()+" ("+comm+")") {
			continue
		}
		if f := strings.Fields(s[i+1:]); len(f) > 1 && f[1] == self {
			pids = append(pids, pid)
		}
	}
	return pids
}
