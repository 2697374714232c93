package userns

import (
	"os"
	"strconv"
	"strings"

	"github.com/isobox/isobox/idmap"
)

// PlanMapping reads the caller's subordinate ranges and decides the mapping.
func PlanMapping(mode idmap.Mode) (idmap.Plan, error) {
	c, err := CurrentCaller()
	if err != nil {
		return idmap.Plan{}, err
	}
	return idmap.Decide(mode, c)
}

// CurrentCaller describes the calling user for idmap.Decide.
func CurrentCaller() (idmap.Caller, error) {
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	name := userName(uid)
	subu, err := idmap.LoadRanges("/etc/subuid", name, uid)
	if err != nil {
		return idmap.Caller{}, err
	}
	subg, err := idmap.LoadRanges("/etc/subgid", name, uid)
	if err != nil {
		return idmap.Caller{}, err
	}
	return idmap.Caller{UID: uid, GID: gid, SubUIDs: subu, SubGIDs: subg, HaveHelpers: idmap.HaveHelpers(), Nested: idmap.Nested()}, nil
}

// userName looks the uid up in /etc/passwd: newuidmap matches subordinate
// ranges by name as well as by number. os/user is avoided because with cgo
// it may consult NSS modules that are not there in a static build.
func userName(uid uint32) string {
	b, err := os.ReadFile("/etc/passwd")
	if err != nil {
		return ""
	}
	want := strconv.FormatUint(uint64(uid), 10)
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, ":")
		if len(f) > 2 && f[2] == want {
			return f[0]
		}
	}
	return ""
}
