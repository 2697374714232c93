package state

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
)

// BootID identifies this boot of the machine: a PID recorded in another
// boot names nothing. Read once per process (ps checks every record).
var BootID = sync.OnceValue(func() string {
	b, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	return strings.TrimSpace(string(b))
})

// ProcStart is a process's start time in clock ticks after boot, field 22
// of /proc/PID/stat. With the PID and the boot id it names one process.
func ProcStart(pid int) (uint64, error) {
	start, _, err := procStat(pid)
	return start, err
}

// procStat is a process's start time and its state letter (field 3).
func procStat(pid int) (start uint64, state string, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, "", err
	}
	// The command name, field 2, is in parentheses and may hold anything,
	// spaces and parentheses included: count fields after the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, "", fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state), so field 22 is f[19].
	if len(f) < 20 {
		return 0, "", fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	return start, f[0], err
}

// pidIsOurs reports whether pid is still the process recorded with start
// time start in boot bootID, and not a zombie: an init adopted by the
// caller's subreaper (oci create) has exited once it is one, reaped or
// not.
func pidIsOurs(pid int, start uint64, bootID string) bool {
	if bootID != "" && bootID != BootID() {
		return false
	}
	got, st, err := procStat(pid)
	return err == nil && got == start && st != "Z"
}

// Alive reports whether the record's PID 1 is still the same process.
func (i Info) Alive() bool { return i.PID > 0 && pidIsOurs(i.PID, i.PIDStart, i.BootID) }
