package userns

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/isobox/isobox/userns/cgroups"
	"github.com/isobox/isobox/userns/state"
)

// ErrNoCgroup: the container runs in the caller's cgroup, with no numbers
// of its own (no delegated cgroup v2 when it started). It wraps
// cgroups.ErrNotDelegated, whose hint is the fix.
var ErrNoCgroup = fmt.Errorf("no cgroup of its own: it was started without a delegated cgroup v2 (%w)", cgroups.ErrNotDelegated)

// Usage is one sample of a running container: its cgroup's counters and
// its network namespace's, at When.
type Usage struct {
	cgroups.Stats
	NetRx, NetTx uint64 // bytes on every interface but lo
	When         time.Time
}

// Sample reads a running container's usage.
func Sample(i state.Info) (Usage, error) {
	if i.Cgroup == "" {
		return Usage{}, fmt.Errorf("container %s: %w", i.Name, ErrNoCgroup)
	}
	s, err := cgroups.Read(i.Cgroup)
	if err != nil {
		return Usage{}, fmt.Errorf("container %s: %w", i.Name, err)
	}
	u := Usage{Stats: s, When: time.Now()}
	// PID 1's view of /proc/net is its network namespace's.
	u.NetRx, u.NetTx, _ = netDev("/proc/" + strconv.Itoa(i.PID) + "/net/dev")
	return u, nil
}

// netDev sums /proc/net/dev's receive and transmit bytes, without lo.
func netDev(path string) (rx, tx uint64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || strings.TrimSpace(name) == "lo" {
			continue
		}
		f := strings.Fields(rest) // rx bytes is the 1st field, tx bytes the 9th
		if len(f) < 9 {
			continue
		}
		r, _ := strconv.ParseUint(f[0], 10, 64)
		t, _ := strconv.ParseUint(f[8], 10, 64)
		rx, tx = rx+r, tx+t
	}
	return rx, tx, sc.Err()
}
