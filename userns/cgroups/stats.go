package cgroups

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Stats is one sample of a container cgroup's usage. A counter whose
// controller is not enabled there reads as zero.
type Stats struct {
	CPUUsec       uint64 `json:"cpuUsec"`       // cpu.stat usage_usec
	MemoryCurrent uint64 `json:"memoryCurrent"` // memory.current
	MemoryMax     uint64 `json:"memoryMax"`     // memory.max; 0 is no limit
	PidsCurrent   uint64 `json:"pidsCurrent"`   // pids.current
	PidsMax       uint64 `json:"pidsMax"`       // pids.max; 0 is no limit
	IORead        uint64 `json:"ioReadBytes"`   // io.stat rbytes, every device
	IOWrite       uint64 `json:"ioWriteBytes"`  // io.stat wbytes
	OOMKills      uint64 `json:"oomKills"`      // memory.events oom_kill
}

// Read samples the cgroup at path.
func Read(path string) (Stats, error) {
	var s Stats
	cpu, err := keyValues(filepath.Join(path, "cpu.stat"))
	if err != nil {
		return s, err // cpu.stat is always there: the cgroup is gone
	}
	s.CPUUsec = cpu["usage_usec"]
	if v, err := readUint(filepath.Join(path, "memory.current")); err == nil {
		s.MemoryCurrent = v
		s.MemoryMax, _ = readUint(filepath.Join(path, "memory.max"))
		ev, _ := keyValues(filepath.Join(path, "memory.events"))
		s.OOMKills = ev["oom_kill"]
	}
	if v, err := readUint(filepath.Join(path, "pids.current")); err == nil {
		s.PidsCurrent = v
		s.PidsMax, _ = readUint(filepath.Join(path, "pids.max"))
	}
	if f, err := os.Open(filepath.Join(path, "io.stat")); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text()) // "MAJ:MIN rbytes=N wbytes=N ..."
			if len(fields) < 2 {
				continue
			}
			for _, kv := range fields[1:] {
				k, v, _ := strings.Cut(kv, "=")
				n, _ := strconv.ParseUint(v, 10, 64)
				switch k {
				case "rbytes":
					s.IORead += n
				case "wbytes":
					s.IOWrite += n
				}
			}
		}
		f.Close()
	}
	return s, nil
}

// OOMKilled reports whether the kernel's OOM killer killed a process in the
// cgroup (memory.events' oom_kill), read before the cgroup is removed.
func (c *Cgroup) OOMKilled() bool {
	ev, err := keyValues(filepath.Join(c.Path, "memory.events"))
	return err == nil && ev["oom_kill"] > 0
}

// readUint reads a one-number file; "max" reads as 0.
func readUint(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	t := strings.TrimSpace(string(b))
	if t == "max" {
		return 0, nil
	}
	return strconv.ParseUint(t, 10, 64)
}

// keyValues reads a flat keyed file ("key value" lines: cpu.stat,
// memory.events, cgroup.events).
func keyValues(path string) (map[string]uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m := map[string]uint64{}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, " ")
		if ok {
			m[k], _ = strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		}
	}
	return m, nil
}
