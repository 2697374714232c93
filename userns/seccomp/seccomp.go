// Package seccomp turns a Docker seccomp profile (Docker's own default,
// taken from github.com/moby/profiles/seccomp, or a JSON file in Docker's
// format) into a classic BPF program for the container, and installs it.
// It needs no cgo: profiles are resolved for the container's capabilities,
// the architecture and the kernel by moby/profiles, and compiled with
// github.com/elastic/go-seccomp-bpf, where runc and podman link libseccomp.
//
// The program is compiled by the runner, so a bad profile is refused
// before anything starts, and sent to init as raw instructions.
package seccomp

import (
	"errors"
	"fmt"
	"sort"
	"unsafe"

	bpfseccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	profiles "github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// bpfMaxInstructions is the kernel's BPF_MAXINSNS.
const bpfMaxInstructions = 4096

// Instruction is one classic BPF instruction, as the kernel takes it.
type Instruction struct {
	Op uint16 `json:"op"`
	Jt uint8  `json:"jt"`
	Jf uint8  `json:"jf"`
	K  uint32 `json:"k"`
}

// Program is a compiled filter; empty means no filter (unconfined).
type Program []Instruction

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
// the most restrictive action wins. go-seccomp-bpf takes the first group
// that matches, so groups are sorted by it.
var precedence = map[specs.LinuxSeccompAction]int{
	specs.ActKillProcess: 0, specs.ActKillThread: 1, specs.ActKill: 1, specs.ActTrap: 2,
	specs.ActErrno: 3, specs.ActTrace: 4, specs.ActLog: 5, specs.ActAllow: 6,
}

func compile(p *specs.LinuxSeccomp) (Program, error) {
	info, err := arch.GetInfo("")
	if err != nil {
		return nil, fmt.Errorf("seccomp: %w", err)
	}
	defErrno := uint(unix.EPERM)
	if p.DefaultErrnoRet != nil {
		defErrno = *p.DefaultErrnoRet
	}
	def, err := action(p.DefaultAction, &defErrno, defErrno)
	if err != nil {
		return nil, fmt.Errorf("seccomp: default action: %w", err)
	}
	// go-seccomp-bpf's own default action can only be EPERM as an errno.
	if p.DefaultAction == specs.ActErrno && defErrno != uint(unix.EPERM) {
		return nil, fmt.Errorf("seccomp: defaultErrnoRet %d: only EPERM (1) is supported as the default errno", defErrno)
	}
	rules := append([]specs.LinuxSyscall(nil), p.Syscalls...)
	sort.SliceStable(rules, func(i, j int) bool { return precedence[rules[i].Action] < precedence[rules[j].Action] })
	policy := bpfseccomp.Policy{DefaultAction: def}
	for _, r := range rules {
		act, err := action(r.Action, r.ErrnoRet, defErrno)
		if err != nil {
			return nil, fmt.Errorf("seccomp: rule for %v: %w", r.Names, err)
		}
		conds, err := conditions(r.Args)
		if err != nil {
			return nil, fmt.Errorf("seccomp: rule for %v: %w", r.Names, err)
		}
		g := bpfseccomp.SyscallGroup{Action: act}
		for _, name := range r.Names {
			// Profiles name calls of every architecture; this one's only.
			if _, ok := info.SyscallNames[name]; !ok {
				continue
			}
			if conds == nil {
				g.Names = append(g.Names, name)
			} else {
				g.NamesWithCondtions = append(g.NamesWithCondtions, bpfseccomp.NameWithConditions{Name: name, Conditions: conds})
			}
		}
		if len(g.Names)+len(g.NamesWithCondtions) > 0 {
			policy.Syscalls = append(policy.Syscalls, g)
		}
	}
	if len(policy.Syscalls) == 0 {
		// go-seccomp-bpf wants at least one rule; one that changes nothing.
		policy.Syscalls = []bpfseccomp.SyscallGroup{{Names: []string{"getpid"}, Action: def}}
	}
	insts, err := policy.Assemble()
	if err != nil {
		return nil, fmt.Errorf("seccomp: %w", err)
	}
	raw, err := bpf.Assemble(insts)
	if err != nil {
		return nil, fmt.Errorf("seccomp: assemble: %w", err)
	}
	if len(raw) > bpfMaxInstructions {
		return nil, fmt.Errorf("seccomp: the profile compiles to %d instructions; the kernel takes at most %d", len(raw), bpfMaxInstructions)
	}
	prog := make(Program, len(raw))
	for i, r := range raw {
		prog[i] = Instruction{Op: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	return prog, nil
}

func action(a specs.LinuxSeccompAction, errnoRet *uint, defErrno uint) (bpfseccomp.Action, error) {
	switch a {
	case specs.ActAllow:
		return bpfseccomp.ActionAllow, nil
	case specs.ActErrno:
		e := defErrno
		if errnoRet != nil {
			e = *errnoRet
		}
		if e > 0xffff {
			return 0, fmt.Errorf("errno %d out of range", e)
		}
		if e == uint(unix.EPERM) {
			return bpfseccomp.ActionErrno, nil // which go-seccomp-bpf returns as EPERM
		}
		return bpfseccomp.ActionErrno | bpfseccomp.Action(e), nil
	case specs.ActKill, specs.ActKillThread:
		return bpfseccomp.ActionKillThread, nil
	case specs.ActKillProcess:
		return bpfseccomp.ActionKillProcess, nil
	case specs.ActTrap:
		return bpfseccomp.ActionTrap, nil
	case specs.ActLog:
		return bpfseccomp.ActionLog, nil
	}
	return 0, fmt.Errorf("action %q is not supported", a)
}

// conditions turns one rule's argument checks (all must hold) into
// go-seccomp-bpf's; nil for a rule without any.
func conditions(args []specs.LinuxSeccompArg) (bpfseccomp.ArgumentConditions, error) {
	if len(args) == 0 {
		return nil, nil
	}
	var out bpfseccomp.ArgumentConditions
	for _, a := range args {
		if a.Index > 5 {
			return nil, fmt.Errorf("argument index %d: at most 5", a.Index)
		}
		c := bpfseccomp.Condition{Argument: uint32(a.Index), Value: a.Value}
		switch a.Op {
		case specs.OpEqualTo:
			c.Operation = bpfseccomp.Equal
		case specs.OpNotEqual:
			c.Operation = bpfseccomp.NotEqual
		case specs.OpLessThan:
			c.Operation = bpfseccomp.LessThan
		case specs.OpLessEqual:
			c.Operation = bpfseccomp.LessOrEqual
		case specs.OpGreaterThan:
			c.Operation = bpfseccomp.GreaterThan
		case specs.OpGreaterEqual:
			c.Operation = bpfseccomp.GreaterOrEqual
		case specs.OpMaskedEqual:
			// (arg & Value) == ValueTwo, in the two forms profiles use.
			switch {
			case a.ValueTwo == 0:
				c.Operation = bpfseccomp.BitsNotSet
			case a.ValueTwo == a.Value && a.Value&(a.Value-1) == 0:
				c.Operation = bpfseccomp.BitsSet
			default:
				return nil, fmt.Errorf("SCMP_CMP_MASKED_EQ with mask %#x and value %#x is not supported", a.Value, a.ValueTwo)
			}
		default:
			return nil, fmt.Errorf("operator %q is not supported", a.Op)
		}
		out = append(out, c)
	}
	return out, nil
}

// Install loads the program into the calling thread, which the caller has
// locked: the filter binds it and every process it forks from then on.
func Install(p Program) error {
	if len(p) == 0 {
		return nil
	}
	filter := make([]unix.SockFilter, len(p))
	for i, in := range p {
		filter[i] = unix.SockFilter{Code: in.Op, Jt: in.Jt, Jf: in.Jf, K: in.K}
	}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	_, _, errno := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&prog)))
	if errno != 0 {
		return fmt.Errorf("seccomp(SECCOMP_SET_MODE_FILTER): %w", errno)
	}
	return nil
}
