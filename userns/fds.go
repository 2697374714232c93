package userns

import (
	"golang.org/x/sys/unix"
)

// CloseExecFrom3 marks every descriptor from 3 up close-on-exec. os/exec
// passes on any descriptor left without O_CLOEXEC, whether this process
// opened it or inherited it from its caller, so every stage (and the CLI
// before anything else) calls this first: nothing reaches the container
// that was not named in ExtraFiles.
func CloseExecFrom3() error {
	err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	if err == unix.ENOSYS || err == unix.EINVAL {
		// Before Linux 5.11: walk /proc/self/fd instead.
		return closeExecByWalk()
	}
	return err
}

func closeExecByWalk() error {
	d, err := unix.Open("/proc/self/fd", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(d)
	buf := make([]byte, 4096)
	var fds []int
	for {
		n, err := unix.Getdents(d, buf)
		if err != nil {
			return err
		}
		if n <= 0 {
			break
		}
		_, _, names := unix.ParseDirent(buf[:n], -1, nil)
		for _, name := range names {
			fd := 0
			for _, c := range name {
				fd = fd*10 + int(c-'0')
			}
			if fd >= 3 && fd != d {
				fds = append(fds, fd)
			}
		}
	}
	for _, fd := range fds {
		unix.CloseOnExec(fd)
	}
	return nil
}
