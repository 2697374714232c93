package rootfs

import (
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

func TestMountErrorNamesEverythingAndMatchesErrno(t *testing.T) {
	err := error(&MountError{Source: "/proc", Target: "/r/proc", Flags: unix.MS_BIND | unix.MS_REC, Err: unix.EPERM})
	if got, want := err.Error(), "mount src=/proc dst=/r/proc flags=MS_BIND|MS_REC: operation not permitted"; got != want {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	if !errors.Is(err, unix.EPERM) {
		t.Fatal("errors.Is(err, EPERM) is false")
	}
	err = &MountError{Source: "tmpfs", Target: "/r/dev", FSType: "tmpfs", Flags: unix.MS_NOSUID | 1<<30, Data: "mode=755", Err: unix.EINVAL}
	if got, want := err.Error(), "mount src=tmpfs dst=/r/dev type=tmpfs flags=MS_NOSUID|0x40000000 data=mode=755: invalid argument"; got != want {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}
