package idmap

import (
	"errors"
	"fmt"
	"strconv"
)

// Mode is the user's choice of mapping: --map auto|full|single.
type Mode string

const (
	ModeAuto   Mode = "auto"   // full when it can be had, else single with a warning
	ModeFull   Mode = "full"   // subordinate ranges through newuidmap/newgidmap, or fail
	ModeSingle Mode = "single" // container root only, setgroups denied
)

// maxExtents is the kernel's limit on lines in uid_map/gid_map (Linux 4.15+).
const maxExtents = 340

var (
	// ErrHelperMissing means newuidmap or newgidmap is not installed.
	ErrHelperMissing = errors.New("newuidmap/newgidmap not found")
	// ErrRootWithoutRange means isobox runs as real root and root has no
	// subordinate range: mapping container root to host root is refused.
	ErrRootWithoutRange = errors.New("running as root without a subordinate range for root")
)

// Mapping is one line of uid_map or gid_map.
type Mapping struct {
	ContainerID uint32
	HostID      uint32
	Size        uint32
}

// Caller is what Decide needs to know about the user and the host.
type Caller struct {
	UID, GID         uint32
	SubUIDs, SubGIDs []Range
	// HaveHelpers says newuidmap and newgidmap were found.
	HaveHelpers bool
	// Nested: the caller is in a user namespace other than the initial one
	// (rootlesskit, `podman unshare`, `unshare -r`), where uid 0 is not
	// the host's root: it maps itself as any user does.
	Nested bool
}

// Plan is the decided mapping.
type Plan struct {
	UIDs, GIDs []Mapping
	// Full is true when more than one id is mapped; then setgroups stays
	// allowed and the maps are written by newuidmap/newgidmap (or by root).
	Full bool
	// Fallback is set when ModeAuto could not have the full mapping; it says
	// why, for the one warning line the CLI prints.
	Fallback error
}

// Decide chooses the mapping for mode. It is pure.
func Decide(mode Mode, c Caller) (Plan, error) {
	if c.UID == 0 && !c.Nested {
		return decideRoot(mode, c)
	}
	var why error
	switch {
	case len(c.SubUIDs) == 0:
		why = fmt.Errorf("%w for uid %d in /etc/subuid", ErrNoSubIDRange, c.UID)
	case len(c.SubGIDs) == 0:
		why = fmt.Errorf("%w for uid %d in /etc/subgid", ErrNoSubIDRange, c.UID)
	case !c.HaveHelpers:
		why = ErrHelperMissing
	}
	switch mode {
	case ModeSingle:
		return single(c.UID, c.GID), nil
	case ModeFull:
		if why != nil {
			return Plan{}, why
		}
	case ModeAuto, "":
		if why != nil {
			p := single(c.UID, c.GID)
			p.Fallback = why
			return p, nil
		}
	default:
		return Plan{}, fmt.Errorf("unknown mapping mode %q", mode)
	}
	return Plan{
		UIDs: append([]Mapping{{0, c.UID, 1}}, stack(1, c.SubUIDs)...),
		GIDs: append([]Mapping{{0, c.GID, 1}}, stack(1, c.SubGIDs)...),
		Full: true,
	}, nil
}

// decideRoot never maps container root to host root: every container id,
// root included, comes from root's own subordinate range.
func decideRoot(mode Mode, c Caller) (Plan, error) {
	if len(c.SubUIDs) == 0 || len(c.SubGIDs) == 0 {
		return Plan{}, ErrRootWithoutRange
	}
	switch mode {
	case ModeSingle:
		return Plan{
			UIDs: []Mapping{{0, c.SubUIDs[0].Start, 1}},
			GIDs: []Mapping{{0, c.SubGIDs[0].Start, 1}},
		}, nil
	case ModeAuto, ModeFull, "":
		return Plan{UIDs: stack(0, c.SubUIDs), GIDs: stack(0, c.SubGIDs), Full: true}, nil
	}
	return Plan{}, fmt.Errorf("unknown mapping mode %q", mode)
}

func single(uid, gid uint32) Plan {
	return Plan{UIDs: []Mapping{{0, uid, 1}}, GIDs: []Mapping{{0, gid, 1}}}
}

// stack lays the host ranges one after the other from container id next,
// stopping at the kernel's extent limit and before the id space overflows.
func stack(next uint32, ranges []Range) []Mapping {
	var out []Mapping
	for _, r := range ranges {
		if len(out) == maxExtents-1 || uint64(next)+uint64(r.Count) > 0xffffffff {
			break
		}
		out = append(out, Mapping{ContainerID: next, HostID: r.Start, Size: r.Count})
		next += r.Count
	}
	return out
}

// Args returns the arguments for newuidmap/newgidmap: PID then triplets.
func Args(pid int, m []Mapping) []string {
	args := []string{strconv.Itoa(pid)}
	for _, e := range m {
		args = append(args,
			strconv.FormatUint(uint64(e.ContainerID), 10),
			strconv.FormatUint(uint64(e.HostID), 10),
			strconv.FormatUint(uint64(e.Size), 10))
	}
	return args
}

// MapText returns m in the format of /proc/PID/uid_map.
func MapText(m []Mapping) string {
	s := ""
	for _, e := range m {
		s += fmt.Sprintf("%d %d %d\n", e.ContainerID, e.HostID, e.Size)
	}
	return s
}

// Contains reports whether container id is mapped by m.
func Contains(m []Mapping, id uint32) bool {
	_, ok := HostOf(m, id)
	return ok
}

// Size is the number of ids m maps.
func Size(m []Mapping) uint64 {
	var n uint64
	for _, e := range m {
		n += uint64(e.Size)
	}
	return n
}

// Explicit is the plan for maps the caller gave itself (an OCI bundle's
// linux.uidMappings and gidMappings), checked against what this caller may
// map: its own uid and gid, and its subordinate ranges (root: only its
// ranges, never host root). One line of one id onto the caller's own ids is
// written directly; anything more needs newuidmap and newgidmap.
func Explicit(uids, gids []Mapping, c Caller) (Plan, error) {
	if len(uids) == 0 || len(gids) == 0 {
		return Plan{}, errors.New("uid and gid mappings go together: give both or neither")
	}
	if OwnIDs(uids, gids, c.UID, c.GID) || c.Nested && oneEach(uids, gids, c.UID, c.GID) {
		return Plan{UIDs: uids, GIDs: gids}, nil
	}
	if err := within("uid", uids, c.UID, c.Nested, c.SubUIDs); err != nil {
		return Plan{}, err
	}
	if err := within("gid", gids, c.GID, c.Nested, c.SubGIDs); err != nil {
		return Plan{}, err
	}
	if c.UID != 0 && !c.HaveHelpers {
		return Plan{}, ErrHelperMissing
	}
	return Plan{UIDs: uids, GIDs: gids, Full: true}, nil
}

// within checks that every host id of m is own (unless own is the host's
// root: nested says it is not) or in one of ranges.
func within(kind string, m []Mapping, own uint32, nested bool, ranges []Range) error {
	if len(m) > maxExtents {
		return fmt.Errorf("%s mappings: %d lines, the kernel takes at most %d", kind, len(m), maxExtents)
	}
	for _, e := range m {
		first, last := uint64(e.HostID), uint64(e.HostID)+uint64(e.Size)-1
		switch {
		case e.Size == 0:
			return fmt.Errorf("%s mapping %d %d %d: size 0", kind, e.ContainerID, e.HostID, e.Size)
		case first == last && e.HostID == own && (own != 0 || nested):
			continue
		}
		ok := false
		for _, r := range ranges {
			if first >= uint64(r.Start) && last < uint64(r.Start)+uint64(r.Count) {
				ok = true
				break
			}
		}
		if !ok {
			return fmt.Errorf("%s mapping %d %d %d: host %ss %d-%d are neither yours (%d) nor in your subordinate ranges (/etc/sub%s)",
				kind, e.ContainerID, e.HostID, e.Size, kind, first, last, own, kind)
		}
	}
	return nil
}

// OwnIDs reports whether the maps are one id each onto the caller's own
// uid and gid (not root's), what an unprivileged process may write itself:
// nothing else of the caller needs to be known.
func OwnIDs(uids, gids []Mapping, uid, gid uint32) bool {
	return oneEach(uids, gids, uid, gid) && uid != 0
}

// oneEach: the maps are one id each, onto uid and gid.
func oneEach(uids, gids []Mapping, uid, gid uint32) bool {
	return len(uids) == 1 && len(gids) == 1 && uids[0].Size == 1 && gids[0].Size == 1 &&
		uids[0].HostID == uid && gids[0].HostID == gid
}
