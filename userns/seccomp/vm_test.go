package seccomp

import (
	"encoding/binary"
	"testing"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// run evaluates the program on a system call as the kernel would.
func run(t *testing.T, p Program, nr int, args ...uint64) uint32 {
	t.Helper()
	raw := make([]bpf.Instruction, len(p))
	for i, in := range p {
		raw[i] = bpf.RawInstruction{Op: in.Code, Jt: in.Jt, Jf: in.Jf, K: in.K}.Disassemble()
	}
	vm, err := bpf.NewVM(raw)
	if err != nil {
		t.Fatal(err)
	}
	// struct seccomp_data as an x86_64 kernel lays it out, in 32-bit words
	// (the VM loads words big-endian, the kernel in the machine's order).
	data := make([]byte, 64)
	binary.BigEndian.PutUint32(data[0:], uint32(nr))
	binary.BigEndian.PutUint32(data[4:], 0xc000003e) // AUDIT_ARCH_X86_64
	for i, a := range args {
		binary.BigEndian.PutUint32(data[16+8*i:], uint32(a))
		binary.BigEndian.PutUint32(data[16+8*i+4:], uint32(a>>32))
	}
	ret, err := vm.Run(data)
	if err != nil {
		t.Fatal(err)
	}
	return uint32(ret)
}

func TestDefaultOnSocketCalls(t *testing.T) {
	p, err := Default(podmanCaps)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		domain uint64
		allow  bool
	}{{"unix", unix.AF_UNIX, true}, {"inet", unix.AF_INET, true}, {"netlink", unix.AF_NETLINK, true}, {"inet6", unix.AF_INET6, true}, {"vsock", unix.AF_VSOCK, false}, {"alg", unix.AF_ALG, false}} {
		got := run(t, p, unix.SYS_SOCKET, c.domain, unix.SOCK_STREAM, 0)
		if (got == unix.SECCOMP_RET_ALLOW) != c.allow {
			t.Errorf("socket(%s): %#x", c.name, got)
		}
	}
}

func TestDefaultOnCloneAndPersonality(t *testing.T) {
	p, err := Default(podmanCaps)
	if err != nil {
		t.Fatal(err)
	}
	if got := run(t, p, unix.SYS_CLONE, unix.CLONE_VM|unix.CLONE_VFORK|uint64(unix.SIGCHLD)); got != unix.SECCOMP_RET_ALLOW {
		t.Errorf("clone(CLONE_VM|CLONE_VFORK): %#x", got)
	}
	if got := run(t, p, unix.SYS_CLONE, unix.CLONE_NEWUSER); got == unix.SECCOMP_RET_ALLOW {
		t.Errorf("clone(CLONE_NEWUSER) allowed")
	}
	if got := run(t, p, unix.SYS_PERSONALITY, 0); got != unix.SECCOMP_RET_ALLOW {
		t.Errorf("personality(0): %#x", got)
	}
	if got := run(t, p, unix.SYS_PERSONALITY, 0x0400000); got != unix.SECCOMP_RET_ERRNO|uint32(unix.EPERM) {
		t.Errorf("personality(READ_IMPLIES_EXEC): %#x", got)
	}
	if got := run(t, p, unix.SYS_GETPID); got != unix.SECCOMP_RET_ALLOW {
		t.Errorf("getpid: %#x", got)
	}
	if got := run(t, p, unix.SYS_GETPID|0x40000000); got == unix.SECCOMP_RET_ALLOW {
		t.Errorf("x32 getpid allowed")
	}
}

// Every operator on 64-bit values, and conditional rules of two actions
// for one call, the case go-seccomp-bpf's own assembler gets wrong.
func TestOperatorsOn64BitArguments(t *testing.T) {
	const big = 0x1_0000_0005
	profile := `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
		{"names":["read"],"action":"SCMP_ACT_ERRNO","errnoRet":1,"args":[{"index":0,"value":4294967301,"op":"SCMP_CMP_EQ"}]},
		{"names":["read"],"action":"SCMP_ACT_ERRNO","errnoRet":2,"args":[{"index":1,"value":7,"op":"SCMP_CMP_NE"},{"index":2,"value":3,"op":"SCMP_CMP_GT"}]},
		{"names":["write"],"action":"SCMP_ACT_ERRNO","errnoRet":3,"args":[{"index":0,"value":4294967301,"op":"SCMP_CMP_LT"}]},
		{"names":["close"],"action":"SCMP_ACT_ERRNO","errnoRet":4,"args":[{"index":0,"value":4294967301,"op":"SCMP_CMP_GE"}]},
		{"names":["dup"],"action":"SCMP_ACT_ERRNO","errnoRet":5,"args":[{"index":0,"value":4294967301,"op":"SCMP_CMP_LE"}]},
		{"names":["dup2"],"action":"SCMP_ACT_ERRNO","errnoRet":6,"args":[{"index":0,"value":4294967552,"valueTwo":4294967296,"op":"SCMP_CMP_MASKED_EQ"}]},
		{"names":["read","write"],"action":"SCMP_ACT_ALLOW"}]}`
	p, err := Load([]byte(profile), podmanCaps)
	if err != nil {
		t.Fatal(err)
	}
	errno := func(e uint32) uint32 { return unix.SECCOMP_RET_ERRNO | e }
	allow := uint32(unix.SECCOMP_RET_ALLOW)
	for _, c := range []struct {
		nr   int
		args []uint64
		want uint32
	}{
		{unix.SYS_READ, []uint64{big, 7, 0}, errno(1)},
		{unix.SYS_READ, []uint64{5, 7, 9}, allow},    // low word alone is not equal; NE fails
		{unix.SYS_READ, []uint64{5, 8, 9}, errno(2)}, // second rule, both checks hold
		{unix.SYS_READ, []uint64{5, 8, 3}, allow},    // GT fails
		{unix.SYS_WRITE, []uint64{big - 1}, errno(3)},
		{unix.SYS_WRITE, []uint64{6}, errno(3)},    // high word smaller decides
		{unix.SYS_WRITE, []uint64{big}, allow},     // not less
		{unix.SYS_WRITE, []uint64{1 << 33}, allow}, // high word larger decides
		{unix.SYS_CLOSE, []uint64{big}, errno(4)},
		{unix.SYS_CLOSE, []uint64{0xffffffff}, allow},
		{unix.SYS_DUP, []uint64{big}, errno(5)},
		{unix.SYS_DUP, []uint64{big + 1}, allow},
		{unix.SYS_DUP2, []uint64{1<<32 | 0xff}, errno(6)}, // masked: hi bit set, 0x100 clear
		{unix.SYS_DUP2, []uint64{1<<32 | 0x100}, allow},   // 0x100 set
		{unix.SYS_GETPID, nil, allow},
	} {
		if got := run(t, p, c.nr, c.args...); got != c.want {
			t.Errorf("syscall %d %#x: %#x, want %#x", c.nr, c.args, got, c.want)
		}
	}
}
