// Command probe makes one system call that a hardening test is about and
// prints "ok", or the error name: the integration tests build it statically
// into a rootfs copy and run it inside containers (and on the host).
//
//	probe keyring   the session keyring's serial number and description
//	probe keyctl    add_key("user", ...) into the session keyring
//	probe ptrace    ptrace(PTRACE_ATTACH) of a child
//	probe personality  personality(READ_IMPLIES_EXEC)
package main

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Println("usage: probe keyring|keyctl|ptrace|personality")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "keyring":
		id, e := unix.KeyctlGetKeyringID(unix.KEY_SPEC_SESSION_KEYRING, false)
		if e == nil {
			desc, e := unix.KeyctlString(unix.KEYCTL_DESCRIBE, id)
			if e == nil {
				fmt.Println(id, desc)
				return
			}
		}
		err = e
	case "keyctl":
		_, err = unix.AddKey("user", "isobox-probe", []byte("x"), unix.KEY_SPEC_SESSION_KEYRING)
	case "ptrace":
		c := exec.Command("/bin/sleep", "10")
		if err = c.Start(); err == nil {
			err = unix.PtraceAttach(c.Process.Pid)
			c.Process.Kill()
		}
	case "personality":
		const readImpliesExec = 0x0400000
		_, _, errno := syscall.RawSyscall(unix.SYS_PERSONALITY, readImpliesExec, 0, 0)
		if errno != 0 {
			err = errno
		}
	default:
		fmt.Println("unknown probe", os.Args[1])
		os.Exit(2)
	}
	if err != nil {
		if errno, ok := err.(syscall.Errno); ok {
			fmt.Println(unix.ErrnoName(errno))
		} else {
			fmt.Println(err)
		}
		return
	}
	fmt.Println("ok")
}
