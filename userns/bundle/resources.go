package bundle

import (
	"fmt"
	"sort"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/isobox/isobox/userns/cgroups"
)

// resources translates linux.resources into cgroup limits, applied when the
// caller's cgroup v2 is delegated and otherwise ignored with one warning at
// start, as runc --rootless does (Options.LimitsBestEffort). What has no
// rootless cgroup v2 meaning is named in one note.
func (l *Launch) resources(r *specs.LinuxResources) error {
	lim, notes, err := Resources(r)
	if err != nil {
		return fieldError("linux.resources", "%v", err)
	}
	l.Options.Limits, l.Options.LimitsBestEffort = lim, true
	l.Notes = append(l.Notes, notes...)
	return nil
}

// Resources turns runtime-spec's linux.resources into cgroup v2 limits, as
// `oci run` and `oci update -r` take them, with a note for each part that
// is raised or has no rootless cgroup v2 meaning.
func Resources(r *specs.LinuxResources) (cgroups.Limits, []string, error) {
	var lim cgroups.Limits
	var ignored, notes []string
	if len(r.Devices) > 0 {
		// A user namespace has no device cgroup to program: the container
		// gets only isobox's harmless devices and linux.devices, bound.
		ignored = append(ignored, "devices")
	}
	if m := r.Memory; m != nil {
		lim.Memory = positive(m.Limit)
		lim.MemoryReservation = positive(m.Reservation)
		if m.Swap != nil && (*m.Swap == -1 || *m.Swap > 0) {
			lim.MemorySwap = *m.Swap
		}
		for name, set := range map[string]bool{"memory.kernel": m.Kernel != nil, "memory.kernelTCP": m.KernelTCP != nil,
			"memory.swappiness": m.Swappiness != nil, "memory.disableOOMKiller": m.DisableOOMKiller != nil} {
			if set {
				ignored = append(ignored, name)
			}
		}
	}
	if c := r.CPU; c != nil {
		lim.CPUQuota = positive(c.Quota)
		if c.Period != nil {
			lim.CPUPeriod = *c.Period
		}
		if c.Shares != nil {
			lim.CPUShares = *c.Shares
		}
		lim.CpusetCpus, lim.CpusetMems = c.Cpus, c.Mems
		if c.RealtimeRuntime != nil || c.RealtimePeriod != nil {
			ignored = append(ignored, "cpu.realtime*")
		}
	}
	if p := r.Pids; p != nil {
		switch {
		case p.Limit > 0 && p.Limit < cgroups.MinPids:
			// isobox's init counts; below this it cannot start.
			lim.PidsLimit = cgroups.MinPids
			notes = append(notes, fmt.Sprintf("linux.resources.pids.limit %d raised to %d: isobox's init, the container's PID 1, is a Go program whose threads count too", p.Limit, cgroups.MinPids))
		case p.Limit > 0:
			lim.PidsLimit = p.Limit
		case p.Limit < 0:
			lim.PidsLimit = -1
		}
	}
	if b := r.BlockIO; b != nil {
		if b.Weight != nil {
			lim.BlkioWeight = *b.Weight
		}
		if len(b.WeightDevice) > 0 || len(b.ThrottleReadBpsDevice) > 0 || len(b.ThrottleWriteBpsDevice) > 0 ||
			len(b.ThrottleReadIOPSDevice) > 0 || len(b.ThrottleWriteIOPSDevice) > 0 || b.LeafWeight != nil {
			ignored = append(ignored, "blockIO per device")
		}
	}
	for name, set := range map[string]bool{"hugepageLimits": len(r.HugepageLimits) > 0, "network": r.Network != nil, "rdma": len(r.Rdma) > 0} {
		if set {
			ignored = append(ignored, name)
		}
	}
	if err := lim.Validate(); err != nil {
		return cgroups.Limits{}, nil, err
	}
	if len(ignored) > 0 {
		sort.Strings(ignored)
		notes = append(notes, fmt.Sprintf("linux.resources: %s ignored (no rootless cgroup v2 equivalent)", strings.Join(ignored, ", ")))
	}
	return lim, notes, nil
}

// positive is a limit's value, 0 for none (runtime-spec's -1 is none too).
func positive(p *int64) int64 {
	if p == nil || *p < 0 {
		return 0
	}
	return *p
}
