// Package seccomp turns a Docker seccomp profile (Docker's own default,
// taken from github.com/moby/profiles/seccomp, or a JSON file in Docker's
// format) into a classic BPF program for the container, and installs it.
// It needs no cgo: profiles are resolved for the container's capabilities,
// the architecture and the kernel by moby/profiles, and compiled here to
// classic BPF with golang.org/x/net/bpf, where runc and podman link
// libseccomp. The syscall tables are generated from golang.org/x/sys/unix
// (mksysnum.go) as static data: a table built at package init would cost
// every isobox process, not only the one that compiles.
//
// The program is compiled by the runner, so a bad profile is refused
// before anything starts, and sent to init as raw instructions.
package seccomp

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"unsafe"

	profiles "github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

//go:generate go run mksysnum.go

// syscallNumber is one entry of the generated table (zsysnum_GOARCH.go).
type syscallNumber struct {
	name string
	nr   int
}

// syscallNumberOf looks a call up by name in this architecture's table.
func syscallNumberOf(name string) (int, bool) {
	i := sort.Search(len(syscalls), func(i int) bool { return syscalls[i].name >= name })
	if i < len(syscalls) && syscalls[i].name == name {
		return syscalls[i].nr, true
	}
	return 0, false
}

// x32SyscallBit marks the x32 ABI's calls on x86_64 (__X32_SYSCALL_BIT).
const x32SyscallBit = 0x40000000

// bpfMaxInstructions is the kernel's BPF_MAXINSNS.
const bpfMaxInstructions = 4096

// Program is a compiled filter, in the kernel's own instruction layout;
// empty means no filter (unconfined).
type Program []unix.SockFilter

// MarshalJSON packs the program as base64 of its instructions, 8 bytes
// each: init decodes its config on every start, and a JSON object per
// instruction cost it milliseconds.
func (p Program) MarshalJSON() ([]byte, error) {
	b := make([]byte, 8*len(p))
	for i, in := range p {
		binary.LittleEndian.PutUint16(b[8*i:], in.Code)
		b[8*i+2], b[8*i+3] = in.Jt, in.Jf
		binary.LittleEndian.PutUint32(b[8*i+4:], in.K)
	}
	return json.Marshal(b)
}

// UnmarshalJSON reads what MarshalJSON wrote.
func (p *Program) UnmarshalJSON(data []byte) error {
	var b []byte
	if err := json.Unmarshal(data, &b); err != nil {
		return err
	}
	if len(b)%8 != 0 {
		return fmt.Errorf("seccomp program of %d bytes: not whole instructions", len(b))
	}
	out := make(Program, len(b)/8)
	for i := range out {
		out[i] = unix.SockFilter{
			Code: binary.LittleEndian.Uint16(b[8*i:]), Jt: b[8*i+2], Jf: b[8*i+3],
			K: binary.LittleEndian.Uint32(b[8*i+4:]),
		}
	}
	*p = out
	return nil
}

// Default is Docker's default profile for a container with caps (names
// as in "CAP_SYS_ADMIN"): the rules that depend on a capability are in or
// out as with Docker.
func Default(caps []string) (Program, error) {
	p, err := profiles.GetDefaultProfile(spec(caps))
	if err != nil {
		return nil, fmt.Errorf("seccomp: Docker's default profile: %w", err)
	}
	return compile(p)
}

// Load compiles a profile in Docker's JSON format.
func Load(json []byte, caps []string) (Program, error) {
	p, err := profiles.LoadProfile(string(json), spec(caps))
	if err != nil {
		return nil, err
	}
	if p == nil {
		return nil, errors.New("the profile has neither a default action nor rules")
	}
	return compile(p)
}

func spec(caps []string) *specs.Spec {
	return &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: caps}}}
}

// precedence orders rules as libseccomp does when several match a call:
// the most restrictive action wins. The program tries rules in this order
// and takes the first that matches.
var precedence = map[specs.LinuxSeccompAction]int{
	specs.ActKillProcess: 0, specs.ActKillThread: 1, specs.ActKill: 1, specs.ActTrap: 2,
	specs.ActErrno: 3, specs.ActTrace: 4, specs.ActLog: 5, specs.ActAllow: 6,
}

// Offsets in struct seccomp_data.
const (
	offNr   = 0
	offArch = 4
	offArgs = 16
)

// compile emits the program. (github.com/elastic/go-seccomp-bpf's
// assembler was tried: its argument checks leave an argument in the
// accumulator where the next rule expects the syscall number, which breaks
// any profile with two conditional rules, and Docker's allows socket(2)
// through several.) Each conditional rule here is a block that reloads the
// number when its checks fail:
//
//	ld arch; jeq NATIVE, next, ret default   (other ABIs get the default)
//	ld nr; jge X32_BIT, ret ENOSYS           (x86_64's x32 ABI)
//	jeq NR1, ret; jeq NR2, ret; ...; ja +1; ret ACTION   unconditional rule
//	jne NR, skip; checks...; ret ACTION; ld nr   conditional rule
//	ret default
//
// Compile is compile for a profile in runtime-spec's form, as an OCI
// bundle's linux.seccomp gives it.
func Compile(p *specs.LinuxSeccomp) (Program, error) { return compile(p) }

func compile(p *specs.LinuxSeccomp) (Program, error) {
	if len(syscalls) == 0 {
		return nil, fmt.Errorf("seccomp: no syscall table for %s: use --security-opt seccomp=unconfined", runtime.GOARCH)
	}
	defErrno := uint(unix.EPERM)
	if p.DefaultErrnoRet != nil {
		defErrno = *p.DefaultErrnoRet
	}
	def, err := action(p.DefaultAction, &defErrno, defErrno)
	if err != nil {
		return nil, fmt.Errorf("seccomp: default action: %w", err)
	}
	rules := append([]specs.LinuxSyscall(nil), p.Syscalls...)
	sort.SliceStable(rules, func(i, j int) bool { return precedence[rules[i].Action] < precedence[rules[j].Action] })

	ret := func(a uint32) bpf.Instruction { return bpf.RetConstant{Val: a} }
	prog := []bpf.Instruction{
		bpf.LoadAbsolute{Off: offArch, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(nativeArch), SkipTrue: 1},
		ret(def),
		bpf.LoadAbsolute{Off: offNr, Size: 4},
	}
	if nativeArch == unix.AUDIT_ARCH_X86_64 {
		prog = append(prog,
			bpf.JumpIf{Cond: bpf.JumpLessThan, Val: x32SyscallBit, SkipTrue: 1},
			ret(uint32(unix.SECCOMP_RET_ERRNO)|uint32(unix.ENOSYS)))
	}
	for _, r := range rules {
		act, err := action(r.Action, r.ErrnoRet, defErrno)
		if err != nil {
			return nil, fmt.Errorf("seccomp: rule for %v: %w", r.Names, err)
		}
		checks, err := argChecks(r.Args)
		if err != nil {
			return nil, fmt.Errorf("seccomp: rule for %v: %w", r.Names, err)
		}
		var plain []uint32 // this rule's calls without checks
		for _, name := range r.Names {
			// Profiles name calls of every architecture; this one's only.
			nr, ok := syscallNumberOf(name)
			if !ok {
				continue
			}
			if checks == nil {
				plain = append(plain, uint32(nr))
				continue
			}
			// Every failing check jumps to the reload at the block's end.
			block := append([]bpf.Instruction{nil}, checks...)
			block = append(block, ret(act), bpf.LoadAbsolute{Off: offNr, Size: 4})
			if len(block) > 255 {
				return nil, fmt.Errorf("seccomp: rule for %s: too many argument checks", name)
			}
			for i, in := range block {
				if j, ok := in.(bpf.JumpIf); ok && j.SkipFalse == failMarker {
					j.SkipFalse = uint8(len(block) - 1 - i - 1)
					block[i] = j
				}
			}
			block[0] = bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: uint32(nr), SkipTrue: uint8(len(block) - 1)}
			prog = append(prog, block...)
		}
		prog = append(prog, shared(plain, act)...)
	}
	prog = append(prog, ret(def))
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return nil, fmt.Errorf("seccomp: assemble: %w", err)
	}
	if len(raw) > bpfMaxInstructions {
		return nil, fmt.Errorf("seccomp: the profile compiles to %d instructions; the kernel takes at most %d", len(raw), bpfMaxInstructions)
	}
	out := make(Program, len(raw))
	for i, r := range raw {
		out[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	return out, nil
}

func action(a specs.LinuxSeccompAction, errnoRet *uint, defErrno uint) (uint32, error) {
	switch a {
	case specs.ActAllow:
		return unix.SECCOMP_RET_ALLOW, nil
	case specs.ActErrno:
		e := defErrno
		if errnoRet != nil {
			e = *errnoRet
		}
		if e > 0xffff {
			return 0, fmt.Errorf("errno %d out of range", e)
		}
		return unix.SECCOMP_RET_ERRNO | uint32(e), nil
	case specs.ActKill, specs.ActKillThread:
		return unix.SECCOMP_RET_KILL_THREAD, nil
	case specs.ActKillProcess:
		return unix.SECCOMP_RET_KILL_PROCESS, nil
	case specs.ActTrap:
		return unix.SECCOMP_RET_TRAP, nil
	case specs.ActLog:
		return unix.SECCOMP_RET_LOG, nil
	}
	return 0, fmt.Errorf("action %q is not supported", a)
}

// shared emits the checks of many calls with one action and no argument
// checks, sharing the return: a run of "jeq NR, ret" per call, then "ja
// over; ret ACTION", in chunks that keep every jump within the 255
// instructions classic BPF allows. Half the program of a jeq and ret per
// call, which the kernel converts and checks on every container start.
func shared(nrs []uint32, act uint32) []bpf.Instruction {
	const chunk = 250
	var out []bpf.Instruction
	for len(nrs) > 0 {
		n := min(len(nrs), chunk)
		for i, nr := range nrs[:n] {
			out = append(out, bpf.JumpIf{Cond: bpf.JumpEqual, Val: nr, SkipTrue: uint8(n - i)})
		}
		out = append(out, bpf.Jump{Skip: 1}, bpf.RetConstant{Val: act})
		nrs = nrs[n:]
	}
	return out
}

// failMarker stands for "jump to the end of the block" until it is known.
const failMarker = 0xff

// argChecks emits the checks of one rule (all must hold), each falling
// through when it holds and jumping to failMarker when not; nil for a rule
// without any. Arguments are 64-bit, compared as two 32-bit words, most
// significant first, as libseccomp does.
func argChecks(args []specs.LinuxSeccompArg) ([]bpf.Instruction, error) {
	if len(args) == 0 {
		return nil, nil
	}
	var out []bpf.Instruction
	for _, a := range args {
		if a.Index > 5 {
			return nil, fmt.Errorf("argument index %d: at most 5", a.Index)
		}
		lo := bpf.LoadAbsolute{Off: offArgs + 8*uint32(a.Index), Size: 4}
		hi := bpf.LoadAbsolute{Off: offArgs + 8*uint32(a.Index) + 4, Size: 4}
		if nativeBigEndian {
			lo, hi = hi, lo
		}
		vlo, vhi := uint32(a.Value), uint32(a.Value>>32)
		fail := func(c bpf.JumpTest, v uint32) bpf.Instruction { // jump to fail unless c holds
			return bpf.JumpIf{Cond: c, Val: v, SkipFalse: failMarker}
		}
		switch a.Op {
		case specs.OpEqualTo:
			out = append(out, hi, fail(bpf.JumpEqual, vhi), lo, fail(bpf.JumpEqual, vlo))
		case specs.OpNotEqual:
			// hi != vhi || lo != vlo: hi differs, then done (skip 2).
			out = append(out, hi, bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: vhi, SkipTrue: 2}, lo, fail(bpf.JumpNotEqual, vlo))
		case specs.OpMaskedEqual:
			mlo, mhi := uint32(a.Value), uint32(a.Value>>32)
			wlo, whi := uint32(a.ValueTwo), uint32(a.ValueTwo>>32)
			out = append(out,
				hi, bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: mhi}, fail(bpf.JumpEqual, whi),
				lo, bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: mlo}, fail(bpf.JumpEqual, wlo))
		case specs.OpLessThan, specs.OpLessEqual, specs.OpGreaterThan, specs.OpGreaterEqual:
			// Decided by the high word unless it is equal, then by the low.
			strict, loCond := bpf.JumpLessThan, bpf.JumpLessThan
			switch a.Op {
			case specs.OpLessEqual:
				loCond = bpf.JumpLessOrEqual
			case specs.OpGreaterThan:
				strict, loCond = bpf.JumpGreaterThan, bpf.JumpGreaterThan
			case specs.OpGreaterEqual:
				strict, loCond = bpf.JumpGreaterThan, bpf.JumpGreaterOrEqual
			}
			out = append(out, hi,
				bpf.JumpIf{Cond: strict, Val: vhi, SkipTrue: 3}, // decided: holds
				fail(bpf.JumpEqual, vhi),                        // decided: fails
				lo, fail(loCond, vlo))
		default:
			return nil, fmt.Errorf("operator %q is not supported", a.Op)
		}
	}
	return out, nil
}

// nativeBigEndian: seccomp_data's arguments are in the machine's order.
var nativeBigEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 0
}()

// Install loads the program into the calling thread, which the caller has
// locked: the filter binds it and every process it forks from then on.
func Install(p Program) error {
	if len(p) == 0 {
		return nil
	}
	prog := unix.SockFprog{Len: uint16(len(p)), Filter: &p[0]}
	_, _, errno := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&prog)))
	if errno != 0 {
		return fmt.Errorf("seccomp(SECCOMP_SET_MODE_FILTER): %w", errno)
	}
	return nil
}
