package tests

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
)

// The VM lane's cases (vm_test.go boots them): each a script the guest runs
// as the test user, and the checks of what it printed.

// defaultSetup delegates $CG as systemd's Delegate=yes does: the
// controllers enabled above it, the directory and the three files chowned.
const defaultSetup = `echo "+cpuset +cpu +io +memory +pids" > /sys/fs/cgroup/cgroup.subtree_control
mkdir -p $CG && chown 1000:1000 $CG $CG/cgroup.procs $CG/cgroup.subtree_control $CG/cgroup.threads`

var vmCases = []vmCase{
	{name: "limits", inCgroup: true, script: `
isobox run --net none --cpus 0.5 --memory 64m --memory-reservation 16m --pids-limit 100 --cpu-shares 1024 $R \
	sh -c 'cat /sys/fs/cgroup/cpu.max /sys/fs/cgroup/memory.max /sys/fs/cgroup/memory.low /sys/fs/cgroup/pids.max /sys/fs/cgroup/cpu.weight; cat /proc/self/cgroup; grep cgroup2 /proc/mounts'
echo "rc=$?"
echo "leaf: $(cat $CG/init/cgroup.procs | wc -l) processes in init; $CG's own: $(cat $CG/cgroup.procs | wc -l)"
echo "subtree: $(cat $CG/cgroup.subtree_control)"
isobox check | grep 'cgroup v2'
isobox run --explain --json --net none --pids-limit 50 $R true | grep -o '"key": *"cgroup"' | wc -l
isobox --log-level debug run --net none --pids-limit 50 $R true 2>&1 | grep -o '\[[a-z]*\] step key=cgroup$'`},
	// The kernel enforces --cpus: a busy loop in a container allowed a
	// fifth of a CPU is throttled (cpu.stat), whatever the machine's speed.
	{name: "cpu-throttle", inCgroup: true, script: `
isobox run --net none --cpus 0.2 $R sh -c 'timeout 3 sh -c "while :; do :; done"; grep -E "^nr_(periods|throttled) " /sys/fs/cgroup/cpu.stat'`},
	// --net gvisor starts the holder, which clones init: the container's
	// cgroup namespace must still be rooted at its own cgroup.
	{name: "holder-path", inCgroup: true, script: `
isobox run --net gvisor --pids-limit 50 $R sh -c 'cat /proc/self/cgroup /sys/fs/cgroup/pids.max; ip -4 addr show | grep -o "inet 10[0-9./]*"'`},
	{name: "time-offset", inCgroup: true, script: `
isobox run --net none --time-offset boottime=86400 $R cat /proc/uptime
echo "rc=$?"`},
	{name: "oom", inCgroup: true, script: `
isobox run --name hog --net none --memory 32m $R dd if=/dev/zero of=/dev/null bs=64M count=1
echo "rc=$?"
isobox ps -a
isobox inspect --format '{{.State.OOMKilled}} {{.State.ExitCode}}' hog`},
	// The bomb runs in a subshell: the command's shell forks once, before
	// the bomb takes the PIDs, and then becomes sleep.
	{name: "forkbomb", inCgroup: true, script: `
isobox run -d --name bomb --net none --pids-limit 32 $R sh -c '(bomb() { bomb | bomb & }; bomb) 2>/dev/null & exec sleep 1000'
cg=$(isobox inspect --format '{{.State.Cgroup}}' bomb)
sleep 5
echo "pids $(cat $cg/pids.current) of $(cat $cg/pids.max)"
echo "max events $(grep max $cg/pids.events)"
echo "status: $(isobox inspect --format '{{.State.Status}}' bomb)"
echo "guest responsive: $(echo yes)"
isobox rm -f bomb
echo "rc=$?"`},
	// init's threads count against the limit too. Once the container's
	// processes hold every PID, init must make no thread: Go aborts a
	// process whose new thread the kernel refuses (threads.go). pidfill
	// takes the PIDs back as soon as they are freed; init's memory trim
	// runs after a second, and an exec is tried under the full limit.
	{name: "pids-full", inCgroup: true, script: `
isobox run -d --name full --net none --pids-limit 32 -v /usr/bin/pidfill:/pidfill:ro $R sh -c '/pidfill & exec sleep 1000' >/dev/null
cg=$(isobox inspect --format '{{.State.Cgroup}}' full)
init=$(isobox inspect --format '{{.State.Pid}}' full)
echo "init's threads at start: $(grep Threads /proc/$init/status | tr -dc 0-9)"
sleep 4
echo "pids $(cat $cg/pids.current) of $(cat $cg/pids.max)"
isobox exec full true
echo "exec rc=$?"
echo "init's threads after: $(grep Threads /proc/$init/status | tr -dc 0-9)"
echo "status: $(isobox inspect --format '{{.State.Status}}' full)"
isobox logs full
isobox rm -f full >/dev/null
echo "rc=$?"
# Through the holder, also in the cgroup, with a published port to use.
isobox run -d --name fullh --net gvisor -p 127.0.0.1:8080:80 --pids-limit 40 -v /usr/bin/pidfill:/pidfill:ro $R sh -c '/pidfill & exec sleep 1000' >/dev/null
init=$(isobox inspect --format '{{.State.Pid}}' fullh)
holder=$(cut -d' ' -f4 /proc/$init/stat)
threads() { echo "$(cat /proc/$holder/comm) $(grep Threads /proc/$holder/status | tr -dc 0-9), init $(grep Threads /proc/$init/status | tr -dc 0-9)"; }
echo "holder's threads at start: $(threads)"
sleep 4
wget -q -T 3 -O /dev/null http://127.0.0.1:8080/ 2>/dev/null
echo "holder's threads after: $(threads)"
echo "holder status: $(isobox inspect --format '{{.State.Status}}' fullh)"
isobox rm -f fullh >/dev/null
echo "rc=$?"
# An OCI bundle run -d: init is adopted, and also blocks reading its channel.
mkdir -p /tmp/full && cd /tmp/full && cp -a $R rootfs && isobox oci spec --rootless
sed -i 's|^\t"linux": {|\t"linux": {"resources": {"pids": {"limit": 32}},|' config.json
sed -i 's|^\t"mounts": \[|\t"mounts": [{"destination": "/pidfill", "type": "bind", "source": "/usr/bin/pidfill", "options": ["rbind", "ro"]},|' config.json
sed -i 's|^\t\t\t"sh"|\t\t\t"sh", "-c", "/pidfill \& exec sleep 1000"|' config.json
isobox oci run -d full </dev/null >/dev/null 2>&1
init=$(isobox oci state full | grep '"pid"' | tr -dc 0-9)
echo "adopted init's threads at start: $(grep Threads /proc/$init/status | tr -dc 0-9)"
sleep 4
echo "adopted init's threads after: $(grep Threads /proc/$init/status | tr -dc 0-9) $(isobox oci state full | grep -o '"status": "[a-z]*"') pids $(cat /sys/fs/cgroup$(cut -d: -f3 /proc/$init/cgroup)/pids.current)"
isobox oci delete -f full
echo "rc=$?"`},
	{name: "no-delegation", inCgroup: false, script: `
isobox run --net none --memory 32m $R true
echo "rc=$?"
isobox run --net none $R echo without limits, as before
echo "rc=$?"`},
	{name: "controller-missing", setup: `echo "+pids" > /sys/fs/cgroup/cgroup.subtree_control; mkdir -p /sys/fs/cgroup/pidsonly
echo "+pids" > /sys/fs/cgroup/pidsonly/cgroup.subtree_control; CG=/sys/fs/cgroup/pidsonly/user
mkdir -p $CG && chown 1000:1000 $CG $CG/cgroup.procs $CG/cgroup.subtree_control $CG/cgroup.threads`, inCgroup: true, script: `
isobox run --net none --memory 32m $R true
echo "rc=$?"
isobox run --net none --pids-limit 40 $R cat /sys/fs/cgroup/pids.max
echo "rc=$?"`},
	{name: "bad-value", inCgroup: true, script: `
isobox run --net none --cpuset-cpus 7 $R true
echo "rc=$?"
test -e $CG/init && echo "the caller's processes were moved" || echo "nothing moved"`},
	{name: "kill-runner", inCgroup: true, script: `
isobox run -d --name k --net none --memory 64m $R sleep 1000
runner=$(isobox inspect --format '{{.State.RunnerPid}}' k)
cg=$(isobox inspect --format '{{.State.Cgroup}}' k)
echo "cgroup made: $(test -d $cg && echo yes)"
kill -9 $runner
while [ "$(isobox inspect --format '{{.State.Status}}' k)" = running ]; do sleep 0.2; done
echo "left by the killed runner: $(test -d $cg && echo yes)"
isobox run --net none $R true
echo "after the next start: $(test -d $cg && echo still there || echo swept)"`},
	// An OCI bundle's linux.resources, as Slurm or podman --runtime pass
	// them, through isobox oci.
	{name: "oci-resources", inCgroup: true, script: `
mkdir -p /tmp/b && cd /tmp/b && cp -a $R rootfs && isobox oci spec --rootless
sed -i 's|^\t"linux": {|\t"linux": {"resources": {"memory": {"limit": 33554432}, "pids": {"limit": 20}},|' config.json
sed -i 's|^\t\t\t"sh"|\t\t\t"cat", "/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/pids.max", "/proc/self/cgroup"|' config.json
isobox oci run c1
echo "rc=$?"
# Detached, init is adopted (not the monitor's child), and moved into the
# container's cgroup by the monitor rather than cloned into it.
sed -i 's|"cat", "/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/pids.max", "/proc/self/cgroup"|"sleep", "1000"|' config.json
isobox oci run -d c2 </dev/null >/dev/null 2>&1
pid=$(isobox oci state c2 | grep '"pid"' | tr -dc 0-9)
cg=$(cut -d: -f3 /proc/$pid/cgroup)
echo "adopted: $(basename $cg | cut -c1-7) memory.max=$(cat /sys/fs/cgroup$cg/memory.max) parent=$(cat /proc/$(cut -d' ' -f4 /proc/$pid/stat)/comm)"
# runc's pause and resume, through the cgroup v2 freezer; exec waits for
# no frozen init; a paused container is deleted with -f.
isobox oci pause c2; echo "pause rc=$? $(isobox oci state c2 | grep -o '"status": "[a-z]*"') $(grep frozen /sys/fs/cgroup$cg/cgroup.events)"
isobox oci exec c2 true; echo "exec rc=$?"
isobox oci resume c2; echo "resume rc=$? $(isobox oci state c2 | grep -o '"status": "[a-z]*"') $(grep frozen /sys/fs/cgroup$cg/cgroup.events)"
# runc's update: flags, and linux.resources on stdin (a controller the
# container was made without, cpu, is enabled for it).
isobox oci update --memory 48m --pids-limit 64 c2; echo "update rc=$? $(cat /sys/fs/cgroup$cg/memory.max) $(cat /sys/fs/cgroup$cg/pids.max)"
echo '{"cpu": {"quota": 20000, "period": 100000}}' | isobox oci update -r - c2; echo "update -r rc=$? $(cat /sys/fs/cgroup$cg/cpu.max)"
isobox oci pause c2
isobox oci delete -f c2
echo "rc=$?"`},
	// Kernel 6.1 (Debian 12's) for what the host suite runs on a newer
	// one: the basics, --overlay, exec, and image layers on both sides of
	// one page of overlay options (lowerdir+ is Linux 6.8+).
	{name: "kernel-6.1", inCgroup: false, script: `
isobox run --net none $R sh -c 'echo "host=$(hostname) uid=$(id -u) pid1=$(cat /proc/1/comm)"'
isobox run --net none --overlay $R sh -c 'echo scratch > /new && rm /bin/true && mkdir -p /etc/d && echo "overlay writes ok"'
if [ ! -e $R/new ] && [ -e $R/bin/true ]; then echo "rootfs untouched"; else echo "the overlay wrote to the rootfs"; fi
isobox run -d --name ex --net none $R sleep 1000 >/dev/null
echo "exec: $(isobox exec ex sh -c 'echo $$ $(hostname)')"
isobox rm -f ex >/dev/null
isobox load -q -i /cases/images.tar 2>&1 | sort
isobox run --rm --net none example.org/forty:1 sh -c 'echo "forty: $(ls /layers | wc -l)"'
isobox run --rm --net none example.org/eighty:1 sh -c 'echo "eighty: $(ls /layers | wc -l)"'
echo "rc=$?"`},
	// isobox's init is a Go program in the container's cgroup: a pids
	// limit too small for its threads is refused before the start (at 8 the
	// runtime died with "fatal error: newosproc"), and the floor works.
	{name: "pids-floor", inCgroup: true, script: `
isobox run --net none --pids-limit 31 $R true
echo "rc=$?"
for i in 1 2 3; do isobox run --net none --pids-limit 32 $R true; echo "rc=$?"; done`},
	{name: "stats", inCgroup: true, script: `
isobox run -d --name s --net none --memory 64m --pids-limit 50 $R sleep 1000
isobox stats --no-stream --json s
isobox stats --no-stream s
isobox ps --format '{{.Name}} {{.Limits}}'
# An image (loaded by the kernel-6.1 case) takes the limits too.
echo "image: $(isobox run --rm --net none --memory 48m example.org/forty:1 cat /sys/fs/cgroup/memory.max)"
# On a terminal (util-linux script gives it one), stats clears the screen
# and refreshes until interrupted; in a pipe, as above, it does neither.
script -qc 'timeout -s INT 4 isobox stats s' /dev/null > /tmp/live
echo "clears: $(grep -c "$(printf '\033\\[H\033\\[2J')" /tmp/live), tables: $(grep -c 'MEM USAGE' /tmp/live)"
isobox rm -f s
echo "rc=$?"`},
}

// vmGoTests are the integration tests the guest runs on kernel 6.1: those
// that need nothing but isobox, BusyBox and the test users (no registry,
// Slurm, slirp4netns or pasta).
// Left out: those that build a probe with go, use /bin/ls as a dynamic
// binary, or force the holder with --time-offset, which 6.1 refuses.
const vmGoTests = "^Test(UTSNamespace|PIDNamespace|NetworkNamespaceHasOnly|MountNamespace|UserNamespace|SubordinateIDs|CgroupNamespace|IPCNamespace|EveryNamespace|" +
	"RootfsBusyboxBuilds|RootfsBusyboxRefusesANonEmpty|MissingMountPoints|UnwritableRootfs|SymlinkedMountPoints|KernelFilesAreMasked|SymlinkedEtcFiles|NoNewPrivs|" +
	"MasksCannot|WorkdirCannot|ExitStatus|CommandAsPID1|RunnerSignals|SIGTERM|EnvironmentIsClean|" +
	"UserAndWorkdir|NoDescriptor|RunnerKilled|FullMapping|SingleMapping|WithoutSubordinate|RealRoot|BadInput)"

// printed: each of want is in what the case printed.
func (r vmResult) printed(t *testing.T, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(r.out, w) {
			t.Errorf("want %q in the output", w)
		}
	}
}

// noCgroupsLeft: once the case ended, no isobox-* cgroup is left anywhere.
func (r vmResult) noCgroupsLeft(t *testing.T) {
	t.Helper()
	if len(r.left) != 0 {
		t.Errorf("cgroups left after the case: %v", r.left)
	}
}

func TestVMLimitsAreWrittenBeforeTheContainerRuns(t *testing.T) {
	r := vmCaseResult(t, "limits")
	r.printed(t, "50000 100000\n", "67108864\n", "16777216\n", "100\n", "39\n", "0::/\n", "cgroup2 /sys/fs/cgroup cgroup2 ro,", "rc=0")
	// The caller's cgroup had a process (the user's shell), so enabling
	// controllers for the container meant moving it into the leaf first.
	if !strings.Contains(r.out, "processes in init; ") || strings.Contains(r.out, "0 processes in init") {
		t.Errorf("the caller's processes were not moved into the leaf")
	}
	if !strings.Contains(r.out, "subtree: cpu memory pids") {
		t.Errorf("controllers not enabled for the container")
	}
	// --explain names the parent's step and init's mount, as both log them.
	if !strings.Contains(r.out, "\n2\n[parent] step key=cgroup\n[init] step key=cgroup\n") {
		t.Errorf("--explain and the debug log disagree on the cgroup steps")
	}
	if !regexp.MustCompile(`ok\s+cgroup v2 delegation\s+/sys/fs/cgroup/case-limits is yours; controllers: cpuset cpu io memory`).MatchString(r.out) {
		t.Errorf("isobox check does not report the delegation")
	}
	r.noCgroupsLeft(t)
}

func TestVMCPULimitIsEnforcedByTheKernel(t *testing.T) {
	r := vmCaseResult(t, "cpu-throttle")
	var periods, throttled int
	m := regexp.MustCompile(`nr_periods (\d+)\nnr_throttled (\d+)`).FindStringSubmatch(r.out)
	if m == nil {
		t.Fatal("no cpu.stat counters")
	}
	fmt.Sscan(m[1], &periods)
	fmt.Sscan(m[2], &throttled)
	if periods == 0 || throttled == 0 {
		t.Errorf("a busy loop under --cpus 0.2 ran %d periods, throttled in %d", periods, throttled)
	}
	r.noCgroupsLeft(t)
}

func TestVMCgroupNamespaceIsTheContainersOwnThroughTheHolder(t *testing.T) {
	r := vmCaseResult(t, "holder-path")
	if r.code != 0 || !strings.Contains(r.out, "0::/\n") || !strings.Contains(r.out, "50\n") {
		t.Errorf("want the container's cgroup as / and its pids.max")
	}
	if !strings.Contains(r.out, "inet 10.0.2.100/24") {
		t.Errorf("--net gvisor on kernel 6.1: no address")
	}
}

// Linux 6.1 refuses what --time-offset needs from a Go program; the user
// gets the reason in one line, not a bare EINVAL. A kernel that allows it
// shows the offset.
func TestVMTimeOffsetWorksOrSaysWhyNot(t *testing.T) {
	r := vmCaseResult(t, "time-offset")
	var up float64
	if _, err := fmt.Sscanf(r.out, "%f", &up); err == nil {
		if up < 86400 {
			t.Errorf("uptime %v: the boottime offset is not applied", up)
		}
		return
	}
	if !strings.HasPrefix(r.out, "isobox: --time-offset: this kernel (6.1") || !strings.Contains(r.out, "rc=125") {
		t.Errorf("want one line explaining the kernel's refusal")
	}
}

func TestVMMemoryHogIsOOMKilledInsideTheContainer(t *testing.T) {
	r := vmCaseResult(t, "oom")
	r.printed(t, "rc=137", "true 137")
	if !regexp.MustCompile(`(?m)^hog .* Exited \(137\)`).MatchString(r.out) {
		t.Errorf("ps -a does not show hog exited 137")
	}
	r.noCgroupsLeft(t)
}

func TestVMForkBombIsContainedByPidsLimit(t *testing.T) {
	r := vmCaseResult(t, "forkbomb")
	if !regexp.MustCompile(`pids \d+ of 32`).MatchString(r.out) {
		t.Errorf("no pids.current reading of the bomb's cgroup")
	}
	if !strings.Contains(r.out, "max events max ") || strings.Contains(r.out, "max events max 0\n") {
		t.Errorf("pids.events shows no refused fork")
	}
	if !strings.Contains(r.out, "status: running\n") {
		t.Errorf("the bomb ended its own container")
	}
	if !strings.Contains(r.out, "guest responsive: yes") || !strings.Contains(r.out, "rc=0") {
		t.Errorf("the guest did not go on after the bomb, or rm -f failed")
	}
	r.noCgroupsLeft(t)
}

func TestVMInitOutlivesAPidsLimitItsCommandHoldsReached(t *testing.T) {
	r := vmCaseResult(t, "pids-full")
	r.printed(t, "pids 32 of 32", "status: running", "rc=0")
	start := regexp.MustCompile(`init's threads at start: (\d+)\n`).FindStringSubmatch(r.out)
	if start == nil || !strings.Contains(r.out, "init's threads after: "+start[1]+"\n") {
		t.Errorf("init made a thread once the PIDs were taken: Go aborts when the kernel refuses one")
	}
	if !regexp.MustCompile(`(?m)^isobox: true: fork: resource temporarily unavailable: the container's pids limit, or your user's process limit \(ulimit -u\), is reached\nexec rc=126$`).MatchString(r.out) {
		t.Errorf("an exec under the full limit must be refused in one isobox: line")
	}
	holder := regexp.MustCompile(`holder's threads at start: (isobox:holder \d+, init \d+)\n`).FindStringSubmatch(r.out)
	if holder == nil || !strings.Contains(r.out, "holder's threads after: "+holder[1]+"\n") || !strings.Contains(r.out, "holder status: running\n") {
		t.Errorf("through the holder, the holder or init made a thread once the PIDs were taken, or the container ended")
	}
	adopted := regexp.MustCompile(`adopted init's threads at start: (\d+)\n`).FindStringSubmatch(r.out)
	if adopted == nil || !strings.Contains(r.out, "adopted init's threads after: "+adopted[1]+` "status": "running" pids 32`+"\n") {
		t.Errorf("an adopted init (oci run -d) made a thread once the PIDs were taken, or the container ended")
	}
	if !regexp.MustCompile(`(?m)^pidfill: limit reached after \d+$`).MatchString(r.out) {
		t.Errorf("pidfill never reached the limit")
	}
	r.noCgroupsLeft(t)
}

func TestVMLimitsWithoutDelegationAreRefusedInOneLine(t *testing.T) {
	r := vmCaseResult(t, "no-delegation")
	lines := strings.Split(strings.TrimSpace(r.out), "\n")
	if len(lines) < 4 || !strings.HasPrefix(lines[0], "isobox: ") || !strings.Contains(lines[0], "not delegated") ||
		!strings.HasPrefix(lines[1], "isobox: hint: run isobox under `systemd-run --user --scope -p Delegate=yes`") || lines[2] != "rc=125" {
		t.Errorf("want one isobox: line naming the delegation, its hint, then rc=125")
	}
	if !strings.Contains(r.out, "without limits, as before\nrc=0") {
		t.Errorf("a start without limits must work as before")
	}
	r.noCgroupsLeft(t)
}

func TestVMMissingControllerIsNamed(t *testing.T) {
	r := vmCaseResult(t, "controller-missing")
	if !strings.Contains(r.out, "the memory controller is not delegated") || !strings.Contains(r.out, "rc=125") {
		t.Errorf("want the memory controller named, and 125")
	}
	if !strings.Contains(r.out, "40\nrc=0") {
		t.Errorf("the pids limit, whose controller is there, must work")
	}
}

func TestVMValueTheKernelRefusesLeavesNothing(t *testing.T) {
	r := vmCaseResult(t, "bad-value")
	if !strings.HasPrefix(r.out, "isobox: --cpuset-cpus \"7\": 7 is not in /sys/fs/cgroup/case-bad-value/cpuset.cpus.effective (0-1)\nrc=125\nnothing moved\n") {
		t.Errorf("want one line naming the CPU and the cpuset, rc=125, and the caller's cgroup untouched")
	}
	r.noCgroupsLeft(t)
}

func TestVMCgroupOfAKilledRunnerIsSweptByTheNextStart(t *testing.T) {
	r := vmCaseResult(t, "kill-runner")
	r.printed(t, "cgroup made: yes", "after the next start: swept")
	r.noCgroupsLeft(t)
}

func TestVMPidsLimitBelowInitsNeedsIsRefusedAndTheFloorStarts(t *testing.T) {
	r := vmCaseResult(t, "pids-floor")
	if !strings.HasPrefix(r.out, "isobox: run: pids limit 31: at least 32: ") || strings.Contains(r.out, "fatal error") ||
		!strings.HasSuffix(r.out, "rc=125\nrc=0\nrc=0\nrc=0\n") {
		t.Errorf("want one line refusing 31, then three starts at 32")
	}
	r.noCgroupsLeft(t)
}

func TestVMOCIBundleResourcesAreApplied(t *testing.T) {
	r := vmCaseResult(t, "oci-resources")
	// pids.limit 20 is raised to isobox's floor, with a note.
	if !strings.Contains(r.out, "33554432\n32\n0::/\n") || !strings.Contains(r.out, "rc=0") {
		t.Errorf("want the bundle's memory and pids limits in the container's cgroup")
	}
	if m := regexp.MustCompile(`adopted: (\S+) memory.max=(\d+) parent=(\S+)`).FindStringSubmatch(r.out); m == nil ||
		m[1] != "isobox-" || m[2] != "33554432" || m[3] == "isobox:monitor" || !strings.HasSuffix(r.out, "rc=0\n") {
		t.Errorf("want a detached init in the container's cgroup, adopted away from its monitor: %v", m)
	}
	r.printed(t, `pause rc=0 "status": "paused" frozen 1`+"\n", "exec rc=1\n", `resume rc=0 "status": "running" frozen 0`+"\n",
		"update rc=0 50331648 64\n", "update -r rc=0 20000 100000\n")
	r.noCgroupsLeft(t)
}

func TestVMStatsReportTheCgroupsNumbers(t *testing.T) {
	r := vmCaseResult(t, "stats")
	// Not how many screens: that depends on the guest's speed.
	if m := regexp.MustCompile(`clears: (\d+), tables: (\d+)`).FindStringSubmatch(r.out); m == nil || m[1] == "0" || m[2] == "0" {
		t.Errorf("stats on a terminal is not the live table: %v", m)
	}
	if strings.Count(r.out, "\x1b[2J") > 0 {
		t.Errorf("stats in a pipe cleared the screen")
	}
	r.printed(t, `"memoryLimit": 67108864`, `"pidsLimit": 50`, "MEM USAGE / LIMIT", "s memory=64m pids=50\n", "image: 50331648\n")
	if !strings.Contains(r.out, "rc=0") {
		t.Errorf("rm -f failed")
	}
	r.noCgroupsLeft(t)
}

// The suite's own tests that need only isobox, BusyBox and the users pass
// on kernel 6.1 too (vmGoTests).
func TestVMIntegrationTestsPassOnKernel61(t *testing.T) {
	vmCaseResult(t, "kernel-6.1") // boots, or skips
	r, ok := vmResults["gotests"]
	if !ok {
		t.Fatal("the guest did not finish the suite's tests")
	}
	passed := regexp.MustCompile(`(?m)^--- PASS: (Test\w+)`).FindAllStringSubmatch(r.out, -1)
	failed := regexp.MustCompile(`(?m)^--- FAIL: (Test\S+)`).FindAllStringSubmatch(r.out, -1)
	t.Logf("%d passed on 6.1", len(passed))
	if r.code != 0 || len(failed) > 0 || len(passed) < 30 {
		t.Errorf("exit %d, %d passed, failed: %v\n%s", r.code, len(passed), failed, tail(r.out, 30000))
	}
}

func TestVMKernel61RunsTheBasicsOverlaysExecAndManyLayers(t *testing.T) {
	r := vmCaseResult(t, "kernel-6.1")
	r.printed(t, "host=isobox uid=0 pid1=isobox:init\n", "overlay writes ok\nrootfs untouched\n",
		"exec: ", "forty: 39\n", "eighty: 79\nrc=0")
}
