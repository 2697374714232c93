package userns

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// The fallback for kernels without open_tree/mount_setattr (before 5.12):
// a memfd copy of the binary, sealed against every change.
func TestMemfdSelfIsASealedCopy(t *testing.T) {
	fd, err := memfdSelf()
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	seals, err := unix.FcntlInt(uintptr(fd), unix.F_GET_SEALS, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []int{unix.F_SEAL_SEAL, unix.F_SEAL_SHRINK, unix.F_SEAL_GROW, unix.F_SEAL_WRITE} {
		if seals&want == 0 {
			t.Errorf("seal %#x missing from %#x", want, seals)
		}
	}
	if _, err := unix.Pwrite(fd, []byte("x"), 0); err == nil {
		t.Error("wrote into the sealed copy")
	}
	copyBytes, err := os.ReadFile("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.ReadFile(selfExe)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(copyBytes, self) {
		t.Error("the copy differs from the binary")
	}
}

// The read-only clone of the binary's mount: the same file, not writable
// through any path.
func TestReadOnlySelfMountCannotBeWritten(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("open_tree(OPEN_TREE_CLONE) needs CAP_SYS_ADMIN over the mount namespace (the holder has it)")
	}
	fd, err := readOnlySelfMount()
	if err != nil {
		t.Skip(err) // a kernel before 5.12: the memfd path is tested above
	}
	defer unix.Close(fd)
	// O_TRUNC meets the read-only mount before "text file busy".
	_, err = os.OpenFile("/proc/self/fd/"+strconv.Itoa(fd), os.O_WRONLY|os.O_TRUNC, 0)
	if !errors.Is(err, unix.EROFS) {
		t.Fatalf("opening the clone for writing: %v, want EROFS", err)
	}
}
