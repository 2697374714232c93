package idmap

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// ParseMap reads the text of a /proc/PID/uid_map or gid_map: one
// "inside outside count" line per extent.
func ParseMap(text string) ([]Mapping, error) {
	var m []Mapping
	for _, l := range strings.Split(text, "\n") {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		if len(f) != 3 {
			return nil, fmt.Errorf("map line %q: want 3 fields", l)
		}
		var n [3]uint32
		for i, s := range f {
			v, err := strconv.ParseUint(s, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("map line %q: %w", l, err)
			}
			n[i] = uint32(v)
		}
		m = append(m, Mapping{ContainerID: n[0], HostID: n[1], Size: n[2]})
	}
	return m, nil
}

// Read is the mapping of the user namespace process pid is in, as seen
// from this process's: its maps, and Full when setgroups(2) is allowed
// there.
func Read(pid int) (Plan, error) {
	dir := "/proc/" + strconv.Itoa(pid) + "/"
	var p Plan
	for _, f := range []struct {
		name string
		m    *[]Mapping
	}{{"uid_map", &p.UIDs}, {"gid_map", &p.GIDs}} {
		b, err := os.ReadFile(dir + f.name)
		if err != nil {
			return Plan{}, err
		}
		if *f.m, err = ParseMap(string(b)); err != nil {
			return Plan{}, fmt.Errorf("%s%s: %w", dir, f.name, err)
		}
	}
	b, err := os.ReadFile(dir + "setgroups")
	if err != nil {
		return Plan{}, err
	}
	p.Full = strings.TrimSpace(string(b)) == "allow"
	return p, nil
}

// HostOf is the id that container id maps to in m, and whether it is
// mapped.
func HostOf(m []Mapping, id uint32) (uint32, bool) {
	for _, e := range m {
		if id >= e.ContainerID && uint64(id) < uint64(e.ContainerID)+uint64(e.Size) {
			return e.HostID + (id - e.ContainerID), true
		}
	}
	return 0, false
}

// Nested reports whether this process is in a user namespace other than
// the initial one, whose uid_map is the identity of every id.
func Nested() bool {
	b, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		return false
	}
	m, err := ParseMap(string(b))
	return err == nil && !(len(m) == 1 && m[0] == Mapping{ContainerID: 0, HostID: 0, Size: 4294967295})
}
