package cgroups

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"strings"
)

// Limits are a container's resource limits, in podman's terms. A zero
// field is no limit.
type Limits struct {
	Memory            int64 `json:"memory,omitempty"`            // memory.max, bytes
	MemoryReservation int64 `json:"memoryReservation,omitempty"` // memory.low, bytes
	// MemorySwap is memory plus swap, podman's (and Docker's) meaning: -1
	// is unlimited swap; unset with Memory set, the swap allowed equals
	// Memory, as podman does.
	MemorySwap int64 `json:"memorySwap,omitempty"`
	// CPUQuota microseconds of CPU time per CPUPeriod (cpu.max).
	CPUQuota  int64  `json:"cpuQuota,omitempty"`
	CPUPeriod uint64 `json:"cpuPeriod,omitempty"`
	// CPUShares is cgroup v1's relative weight (2-262144, default 1024),
	// written as cpu.weight the way runc and crun convert it.
	CPUShares   uint64 `json:"cpuShares,omitempty"`
	CpusetCpus  string `json:"cpusetCpus,omitempty"`
	CpusetMems  string `json:"cpusetMems,omitempty"`
	PidsLimit   int64  `json:"pidsLimit,omitempty"`   // pids.max; -1 unlimited
	BlkioWeight uint16 `json:"blkioWeight,omitempty"` // 10-1000, as io.weight
}

// MinPids is the smallest pids limit taken. isobox's init (and the holder,
// when there is one) run in the container's cgroup, and the Go runtime makes
// its threads as it needs them: measured on Linux 6.1, a limit of 8 let the
// runtime fail to make one ("fatal error: newosproc") and 10 was the
// least that always started.
const MinPids = 32

// DefaultCPUPeriod is cpu.max's period when only a quota is given (podman's
// --cpus), in microseconds.
const DefaultCPUPeriod = 100000

// IsZero reports whether no limit is set.
func (l Limits) IsZero() bool { return l == Limits{} }

// Validate checks the limits the way podman refuses them, before anything
// is made; what only the kernel knows (a CPU list it does not have) is
// refused when the file is written.
func (l Limits) Validate() error {
	switch {
	case l.Memory < 0:
		return errors.New("memory limit: must be positive")
	case l.Memory > 0 && l.Memory < 6<<20:
		return errors.New("memory limit: the minimum allowed is 6MB")
	case l.MemoryReservation < 0:
		return errors.New("memory reservation: must be positive")
	case l.Memory > 0 && l.MemoryReservation > l.Memory:
		return errors.New("memory reservation: must be at most the memory limit")
	case l.MemorySwap < -1:
		return errors.New("memory-swap: must be -1 (unlimited) or a size")
	case l.MemorySwap > 0 && l.Memory == 0:
		return errors.New("memory-swap: needs a memory limit as well")
	case l.MemorySwap > 0 && l.MemorySwap < l.Memory:
		return errors.New("memory-swap: must be at least the memory limit (it counts memory plus swap)")
	case l.CPUQuota < 0:
		return errors.New("cpu quota: must be positive")
	case l.CPUPeriod != 0 && (l.CPUPeriod < 1000 || l.CPUPeriod > 1000000):
		return errors.New("cpu period: must be between 1000 and 1000000 microseconds")
	case l.CPUQuota > 0 && l.CPUQuota < 1000:
		return errors.New("cpu quota: the minimum is 1000 microseconds per period (--cpus 0.01)")
	case l.CPUShares != 0 && (l.CPUShares < 2 || l.CPUShares > 262144):
		return errors.New("cpu shares: must be between 2 and 262144")
	case l.PidsLimit < -1:
		return errors.New("pids limit: must be -1 (unlimited) or positive")
	case l.PidsLimit > 0 && l.PidsLimit < MinPids:
		return fmt.Errorf("pids limit %d: at least %d: the container's PID 1 is isobox's init, a Go program whose threads count too (below that it cannot start)", l.PidsLimit, MinPids)
	case l.BlkioWeight != 0 && (l.BlkioWeight < 10 || l.BlkioWeight > 1000):
		return errors.New("blkio weight: must be between 10 and 1000")
	}
	return nil
}

// Controllers are the cgroup v2 controllers the limits need, in the order
// cgroup.controllers lists them.
func (l Limits) Controllers() []string {
	var c []string
	if l.CpusetCpus != "" || l.CpusetMems != "" {
		c = append(c, "cpuset")
	}
	if l.CPUQuota != 0 || l.CPUShares != 0 {
		c = append(c, "cpu")
	}
	if l.BlkioWeight != 0 {
		c = append(c, "io")
	}
	if l.Memory != 0 || l.MemoryReservation != 0 || l.MemorySwap != 0 {
		c = append(c, "memory")
	}
	if l.PidsLimit != 0 {
		c = append(c, "pids")
	}
	return c
}

// setting is one write into the container's cgroup. Optional settings are
// skipped when the kernel has no such file (swap accounting off, io.weight
// without iocost), as podman skips an implicit swap limit.
type setting struct {
	file, value string
	optional    bool
}

// settings are the file writes for the limits, in the order they are made
// (cpuset's lists first: the other controllers need none of them).
func (l Limits) settings(exists func(file string) bool) []setting {
	var s []setting
	if l.CpusetCpus != "" {
		s = append(s, setting{file: "cpuset.cpus", value: l.CpusetCpus})
	}
	if l.CpusetMems != "" {
		s = append(s, setting{file: "cpuset.mems", value: l.CpusetMems})
	}
	if l.CPUQuota > 0 {
		period := l.CPUPeriod
		if period == 0 {
			period = DefaultCPUPeriod
		}
		s = append(s, setting{file: "cpu.max", value: fmt.Sprintf("%d %d", l.CPUQuota, period)})
	}
	if l.CPUShares != 0 {
		s = append(s, setting{file: "cpu.weight", value: strconv.FormatUint(CPUWeight(l.CPUShares), 10)})
	}
	if l.BlkioWeight != 0 {
		// BFQ has its own file, in blkio's own scale; iocost's io.weight
		// takes the converted value (runc does the same).
		if exists("io.bfq.weight") {
			s = append(s, setting{file: "io.bfq.weight", value: strconv.Itoa(int(l.BlkioWeight))})
		} else {
			s = append(s, setting{file: "io.weight", value: "default " + strconv.FormatUint(IOWeight(l.BlkioWeight), 10)})
		}
	}
	if l.MemoryReservation > 0 {
		s = append(s, setting{file: "memory.low", value: strconv.FormatInt(l.MemoryReservation, 10)})
	}
	if l.Memory > 0 {
		s = append(s, setting{file: "memory.max", value: strconv.FormatInt(l.Memory, 10)})
	}
	switch {
	case l.MemorySwap == -1:
		s = append(s, setting{file: "memory.swap.max", value: "max"})
	case l.MemorySwap > 0:
		s = append(s, setting{file: "memory.swap.max", value: strconv.FormatInt(l.MemorySwap-l.Memory, 10)})
	case l.Memory > 0:
		s = append(s, setting{file: "memory.swap.max", value: strconv.FormatInt(l.Memory, 10), optional: true})
	}
	switch {
	case l.PidsLimit == -1:
		s = append(s, setting{file: "pids.max", value: "max"})
	case l.PidsLimit > 0:
		s = append(s, setting{file: "pids.max", value: strconv.FormatInt(l.PidsLimit, 10)})
	}
	return s
}

// CPUWeight converts cgroup v1 cpu shares (2-262144) to cgroup v2's
// cpu.weight (1-10000), the formula runc and crun share: 1024 becomes 39.
func CPUWeight(shares uint64) uint64 {
	if shares == 0 {
		return 0
	}
	return 1 + ((shares-2)*9999)/262142
}

// IOWeight converts a blkio weight (10-1000) to io.weight (1-10000), as runc
// does: 500 becomes 5000.
func IOWeight(w uint16) uint64 {
	if w == 0 {
		return 0
	}
	return 1 + (uint64(w)-10)*9999/990
}

// CPUs turns podman's --cpus (a number of CPUs, 0.01 granularity) into a
// quota per DefaultCPUPeriod.
func CPUs(s string) (quota int64, err error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%q: want a number of CPUs, such as 0.5 or 2", s)
	}
	if f <= 0 {
		return 0, fmt.Errorf("%q: must be more than 0", s)
	}
	quota = int64(math.Round(f * DefaultCPUPeriod))
	if quota < 1000 {
		return 0, fmt.Errorf("%q: the minimum is 0.01", s)
	}
	return quota, nil
}

// ParseSize reads a size the way podman and Docker write one: bytes, or a
// number with b, k, m, g, t or p (binary multiples, case-insensitive, an
// optional trailing b: 512m, 2g, 1.5GB, 1048576).
func ParseSize(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	num := strings.TrimRight(t, "kmgtpb")
	unit := strings.TrimSuffix(t[len(num):], "b")
	if t[len(num):] == "b" {
		unit = ""
	}
	mult := map[string]float64{"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}[unit]
	f, err := strconv.ParseFloat(num, 64)
	if mult == 0 || err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) || num == "" || num[0] == '+' {
		return 0, fmt.Errorf("%q: want a size such as 512m, 2g or a number of bytes", s)
	}
	v := f * mult
	if v >= math.MaxInt64 {
		return 0, fmt.Errorf("%q: too large", s)
	}
	return int64(v), nil
}

// String is the limits as podman's flags would give them, for ps and
// inspect: "memory=64m cpus=0.5 pids=50"; empty when there are none.
func (l Limits) String() string {
	var out []string
	add := func(k, v string) { out = append(out, k+"="+v) }
	if l.Memory != 0 {
		add("memory", FormatSize(l.Memory))
	}
	if l.MemoryReservation != 0 {
		add("memory-reservation", FormatSize(l.MemoryReservation))
	}
	switch {
	case l.MemorySwap == -1:
		add("memory-swap", "-1")
	case l.MemorySwap != 0:
		add("memory-swap", FormatSize(l.MemorySwap))
	}
	if l.CPUQuota != 0 {
		period := l.CPUPeriod
		if period == 0 {
			period = DefaultCPUPeriod
		}
		add("cpus", strconv.FormatFloat(float64(l.CPUQuota)/float64(period), 'f', -1, 64))
	}
	if l.CPUShares != 0 {
		add("cpu-shares", strconv.FormatUint(l.CPUShares, 10))
	}
	if l.CpusetCpus != "" {
		add("cpuset-cpus", l.CpusetCpus)
	}
	if l.CpusetMems != "" {
		add("cpuset-mems", l.CpusetMems)
	}
	if l.PidsLimit != 0 {
		add("pids", strconv.FormatInt(l.PidsLimit, 10))
	}
	if l.BlkioWeight != 0 {
		add("blkio-weight", strconv.Itoa(int(l.BlkioWeight)))
	}
	return strings.Join(out, " ")
}

// FormatSize writes bytes the way ParseSize reads them back, in the largest
// unit that divides them (64m, 1g, 1536k, 1000).
func FormatSize(n int64) string {
	for _, u := range []struct {
		s     string
		shift uint
	}{{"t", 40}, {"g", 30}, {"m", 20}, {"k", 10}} {
		if n != 0 && n%(1<<u.shift) == 0 {
			return strconv.FormatInt(n>>u.shift, 10) + u.s
		}
	}
	return strconv.FormatInt(n, 10)
}

// Commands are the shell commands that apply the limits to the cgroup
// dir, for `run --explain`.
func (l Limits) Commands(dir string) []string {
	var out []string
	if c := l.Controllers(); len(c) > 0 {
		out = append(out, "echo '+"+strings.Join(c, " +")+"' > "+filepath.Dir(dir)+"/cgroup.subtree_control   # its processes moved to init/ first")
	}
	out = append(out, "mkdir "+dir)
	for _, s := range l.settings(func(string) bool { return false }) {
		out = append(out, "echo '"+s.value+"' > "+dir+"/"+s.file)
	}
	return out
}
