package slirp

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// LoopbackUp brings up lo in the calling process's network namespace, as
// `ip link set lo up` does in the seed article. A new network namespace has
// lo down, and nothing, not even 127.0.0.1, answers until it is up. The
// kernel adds 127.0.0.1/8 and ::1 itself when lo comes up.
func LoopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket for lo: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("ioctl(SIOCGIFFLAGS) lo: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("ioctl(SIOCSIFFLAGS) lo up: %w", err)
	}
	return nil
}
