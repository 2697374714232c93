package main

import (
	"fmt"
	"strconv"

	"github.com/isobox/isobox/userns/cgroups"
)

// limitFlags are podman's resource flags, applied through the caller's
// delegated cgroup v2 (package cgroups).
// --cpu-shares has no -c, unlike podman's: after an image, -c is the
// command's own far more often (sh -c).
type limitFlags struct {
	Memory            string `short:"m" group:"Resource limits (a delegated cgroup v2; see isobox check)" placeholder:"SIZE" help:"Memory limit (memory.max), as podman writes sizes: 512m, 2g or bytes."`
	MemoryReservation string `name:"memory-reservation" group:"Resource limits (a delegated cgroup v2; see isobox check)" placeholder:"SIZE" help:"Memory the container keeps under pressure (memory.low)."`
	MemorySwap        string `name:"memory-swap" group:"Resource limits (a delegated cgroup v2; see isobox check)" placeholder:"SIZE" help:"Memory plus swap (podman's meaning; -1 unlimited swap). Default with --memory: as much swap as memory."`
	CPUs              string `name:"cpus" group:"Resource limits (a delegated cgroup v2; see isobox check)" placeholder:"N" help:"CPUs the container may use, such as 0.5 (cpu.max: 50000 100000)."`
	CPUShares         uint64 `name:"cpu-shares" group:"Resource limits (a delegated cgroup v2; see isobox check)" placeholder:"N" help:"Relative CPU weight, 2-262144 (default 1024; cpu.weight, converted as runc does)."`
	CpusetCpus        string `name:"cpuset-cpus" group:"Resource limits (a delegated cgroup v2; see isobox check)" placeholder:"LIST" help:"CPUs the container may run on (0-3, 0,2)."`
	CpusetMems        string `name:"cpuset-mems" group:"Resource limits (a delegated cgroup v2; see isobox check)" placeholder:"LIST" help:"Memory nodes the container may use."`
	PidsLimit         string `name:"pids-limit" group:"Resource limits (a delegated cgroup v2; see isobox check)" placeholder:"N" help:"Most processes and threads at once (pids.max; -1 unlimited)."`
	BlkioWeight       uint16 `name:"blkio-weight" group:"Resource limits (a delegated cgroup v2; see isobox check)" placeholder:"N" help:"Relative block I/O weight, 10-1000 (io.weight)."`
}

// limits reads the flags; what the kernel alone can judge (a CPU it does
// not have) is refused when the cgroup is made, still before the start.
func (f limitFlags) limits() (cgroups.Limits, error) {
	l := cgroups.Limits{CPUShares: f.CPUShares, CpusetCpus: f.CpusetCpus, CpusetMems: f.CpusetMems, BlkioWeight: f.BlkioWeight}
	err := memorySizes(&l, f.Memory, f.MemoryReservation, f.MemorySwap)
	if err != nil {
		return l, err
	}
	if f.CPUs != "" {
		if l.CPUQuota, err = cgroups.CPUs(f.CPUs); err != nil {
			return l, fmt.Errorf("--cpus %w", err)
		}
	}
	if f.PidsLimit != "" {
		n, err := strconv.ParseInt(f.PidsLimit, 10, 64)
		if err != nil || n < -1 {
			return l, fmt.Errorf("--pids-limit %q: want a positive number, or -1 (or 0, as Docker) for no limit", f.PidsLimit)
		}
		if l.PidsLimit = n; n == 0 {
			l.PidsLimit = -1
		}
	}
	if err := l.Validate(); err != nil {
		return l, err
	}
	return l, nil
}

// memorySizes reads --memory, --memory-reservation and --memory-swap
// (podman's and runc's sizes; -1 swap is unlimited) into l; "" leaves one
// unset.
func memorySizes(l *cgroups.Limits, memory, reservation, swap string) error {
	for _, s := range []struct {
		flag, val string
		dst       *int64
	}{{"--memory", memory, &l.Memory}, {"--memory-reservation", reservation, &l.MemoryReservation}, {"--memory-swap", swap, &l.MemorySwap}} {
		if s.val == "" {
			continue
		}
		if s.flag == "--memory-swap" && s.val == "-1" {
			*s.dst = -1
			continue
		}
		n, err := cgroups.ParseSize(s.val)
		if err != nil {
			return fmt.Errorf("%s %w", s.flag, err)
		}
		*s.dst = n
	}
	return nil
}
