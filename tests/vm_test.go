package tests

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The VM lane. This host's cgroups are a v1/v2 hybrid that belong to the
// machine, so the resource limits are proved on a kernel of the tests' own:
// Debian's cloud kernel (6.1, fetched by .ci/setup-host into vmDir, never
// installed) under qemu's software emulation, with an initramfs the tests
// build from this host's files. Its init, as root, delegates a cgroup
// subtree to the test user for each case as systemd does, runs the case as
// that user, and writes what it printed to a second serial port, which the
// tests read. One boot runs every case; the tests below each check theirs.
const vmDir = "/var/cache/isobox-tests/vm"

// vmCase is one script the guest runs as the test user (uid 1000), with
// $R a BusyBox rootfs and $CG the cgroup delegated to it for the case.
type vmCase struct {
	name string
	// setup runs first, as root: by default it makes $CG a child of the
	// root cgroup, with every controller, chowned to the user.
	setup string
	// inCgroup: the user's shell starts inside $CG, as in a systemd user
	// session or `systemd-run --user --scope -p Delegate=yes`; false
	// leaves it in the root cgroup, which is not the user's.
	inCgroup bool
	script   string
}

// vmResult is what a case printed (stdout and stderr together), its exit
// status, and the isobox-* cgroups left anywhere once it ended.
type vmResult struct {
	out  string
	code int
	left []string
}

var (
	vmOnce    sync.Once
	vmResults map[string]vmResult
	vmErr     error
	vmSkip    string
)

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
isobox run --explain --json --net none --pids-limit 7 $R true | grep -o '"key": *"cgroup"' | wc -l
isobox --log-level debug run --net none --pids-limit 7 $R true 2>&1 | grep -o '\[[a-z]*\] step key=cgroup$'`},
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
	// The bomb's own shell may find no PID left either: it ends in an
	// exec, and the numbers are read from outside the container.
	{name: "forkbomb", inCgroup: true, script: `
isobox run -d --name bomb --net none --pids-limit 32 $R sh -c 'bomb() { bomb | bomb & }; bomb 2>/dev/null; exec sleep 1000'
cg=$(isobox inspect --format '{{.State.Cgroup}}' bomb)
sleep 5
echo "pids $(cat $cg/pids.current) of $(cat $cg/pids.max)"
echo "max events $(grep max $cg/pids.events)"
echo "guest responsive: $(echo yes)"
isobox rm -f bomb
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
isobox run --net none --pids-limit 10 $R cat /sys/fs/cgroup/pids.max
echo "rc=$?"`},
	{name: "bad-value", inCgroup: true, script: `
isobox run --net none --cpuset-cpus 7 $R true
echo "rc=$?"`},
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
	{name: "stats", inCgroup: true, script: `
isobox run -d --name s --net none --memory 64m --pids-limit 50 $R sleep 1000
isobox stats --no-stream --json s
isobox stats --no-stream s
isobox ps --format '{{.Name}} {{.Limits}}'
isobox rm -f s
echo "rc=$?"`},
}

// bootVM builds the initramfs, boots it once, and parses the cases' output.
func bootVM(t *testing.T) (map[string]vmResult, string, error) {
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		return nil, "qemu-system-x86_64 is not installed (make test installs it)", nil
	}
	kernel := filepath.Join(vmDir, "vmlinuz")
	if _, err := os.Stat(kernel); err != nil {
		return nil, "no VM kernel in " + vmDir + " (make test's set-up fetches it)", nil
	}
	dir, err := os.MkdirTemp(work, "vm-")
	if err != nil {
		return nil, "", err
	}
	// This very test binary, static, for the guest's run of the suite.
	testBinary := filepath.Join(dir, "isobox.test")
	build := exec.Command("go", "test", "-c", "-o", testBinary, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return nil, "", fmt.Errorf("go test -c: %v\n%s", err, out)
	}
	initrd := filepath.Join(dir, "initrd.gz")
	if err := buildInitramfs(initrd, vmImages(t), testBinary); err != nil {
		return nil, "", fmt.Errorf("initramfs: %w", err)
	}
	results := filepath.Join(dir, "results")
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	// KVM hangs nested on these machines: software emulation, two vCPUs.
	cmd := exec.CommandContext(ctx, qemu, "-accel", "tcg,thread=multi", "-smp", "2", "-m", "512",
		"-nographic", "-no-reboot", "-nodefaults", "-serial", "file:"+filepath.Join(dir, "console"),
		"-serial", "file:"+results, "-kernel", kernel, "-initrd", initrd,
		"-append", "console=ttyS0 panic=-1 loglevel=4 edd=off")
	out, err := cmd.CombinedOutput()
	if err != nil {
		console, _ := os.ReadFile(filepath.Join(dir, "console"))
		partial, _ := os.ReadFile(results)
		return nil, "", fmt.Errorf("qemu: %v\n%s\nresults so far:\n%s\nconsole:\n%s", err, out, tail(string(partial), 4000), tail(string(console), 3000))
	}
	b, err := os.ReadFile(results)
	if err != nil {
		return nil, "", err
	}
	res, err := parseVMResults(string(b))
	if err != nil {
		console, _ := os.ReadFile(filepath.Join(dir, "console"))
		return nil, "", fmt.Errorf("%v\nresults:\n%s\nconsole:\n%s", err, b, tail(string(console), 3000))
	}
	return res, "", nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

var vmMarker = regexp.MustCompile(`^=== (BEGIN|END|LEFT) (\S+)(?: (.*))?$`)

// parseVMResults reads the guest's "=== BEGIN name", output, "=== END name
// rc=N" and "=== LEFT name paths..." lines; every case must have ended.
func parseVMResults(s string) (map[string]vmResult, error) {
	res := map[string]vmResult{}
	var cur string
	var out strings.Builder
	sc := bufio.NewScanner(strings.NewReader(strings.ReplaceAll(s, "\r", "")))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		m := vmMarker.FindStringSubmatch(sc.Text())
		switch {
		case m == nil:
			if cur != "" {
				out.WriteString(sc.Text() + "\n")
			}
		case m[1] == "BEGIN":
			cur = m[2]
			out.Reset()
		case m[1] == "END":
			var code int
			fmt.Sscanf(m[3], "rc=%d", &code)
			res[m[2]] = vmResult{out: out.String(), code: code}
			cur = ""
		case m[1] == "LEFT":
			r := res[m[2]]
			r.left = strings.Fields(m[3])
			res[m[2]] = r
		}
	}
	for _, c := range vmCases {
		if _, ok := res[c.name]; !ok {
			return nil, fmt.Errorf("the guest did not finish case %s", c.name)
		}
	}
	return res, nil
}

// noCgroupsLeft: once the case ended, no isobox-* cgroup is left anywhere.
func (r vmResult) noCgroupsLeft(t *testing.T) {
	t.Helper()
	if len(r.left) != 0 {
		t.Errorf("cgroups left after the case: %v", r.left)
	}
}

// vmImages is a docker save archive of two images on the test rootfs,
// with 40 and 80 small layers: their overlay options fit in one page, and
// do not.
func vmImages(t *testing.T) []byte {
	t.Helper()
	imgs := map[name.Reference]v1.Image{}
	for _, n := range []int{40, 80} {
		var layers []v1.Layer
		for i := range n - 1 {
			layers = append(layers, static.NewLayer(layerTar(t, regular(fmt.Sprintf("layers/%02d", i), fmt.Sprintln(i))), types.OCIUncompressedLayer))
		}
		tag, err := name.NewTag(fmt.Sprintf("example.org/%s:1", map[int]string{40: "forty", 80: "eighty"}[n]))
		if err != nil {
			t.Fatal(err)
		}
		imgs[tag] = busyboxImage(t, nil, layers...)
	}
	var b bytes.Buffer
	if err := tarball.MultiRefWrite(imgs, &b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// vmCaseResult boots the VM once for the whole run, and gives one case.
func vmCaseResult(t *testing.T, name string) vmResult {
	t.Helper()
	vmOnce.Do(func() { vmResults, vmSkip, vmErr = bootVM(t) })
	if vmErr != nil {
		t.Fatal(vmErr)
	}
	if vmSkip != "" {
		t.Skip(vmSkip)
	}
	r := vmResults[name]
	t.Logf("guest case %s (exit %d):\n%s", name, r.code, r.out)
	return r
}

// guestInit is the initramfs's /init. pivot_root cannot leave the initramfs
// (the kernel refuses to move its rootfs), so it first copies itself to a
// tmpfs and switches root there; stage two runs the cases.
const guestInit = `#!/bin/busybox sh
/bin/busybox mkdir -p /proc /new
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t tmpfs -o size=300m,mode=0755 root /new
for d in bin usr lib lib64 etc home root cases modules stage2; do /bin/busybox cp -a /$d /new/; done
/bin/busybox mkdir -p /new/proc /new/sys /new/dev /new/tmp /new/run
/bin/busybox umount /proc
exec /bin/busybox switch_root /new /stage2
`

const guestStage2 = `#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm && mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 tmp /tmp
mount -t cgroup2 cgroup2 /sys/fs/cgroup
# A task stuck in the kernel for 20 s is reported on the console (ttyS0).
echo 20 > /proc/sys/kernel/hung_task_timeout_secs
insmod /modules/tun.ko; insmod /modules/overlay.ko
ip link set lo up
chmod 0666 /dev/net/tun 2>/dev/null
mkdir -p /run/user/1000 && chown 1000:1000 /run/user/1000 && chmod 0700 /run/user/1000
exec 3>/dev/ttyS1
cat >/bin/asuser <<'EOS'
#!/bin/sh
# asuser [--into CGROUP] COMMAND...: COMMAND as the test user, started in
# CGROUP (this shell moves itself there first: $$ is its own PID).
if [ "$1" = --into ]; then echo $$ > "$2/cgroup.procs" || exit 1; shift 2; fi
exec /usr/bin/setpriv --reuid 1000 --regid 1000 --clear-groups env -i HOME=/home/isobox-test USER=isobox-test LOGNAME=isobox-test \
	PATH=/usr/local/bin:/usr/bin:/bin XDG_RUNTIME_DIR=/run/user/1000 R=/home/isobox-test/rootfs CG="$CG" "$@"
EOS
chmod 0755 /bin/asuser
cd /home/isobox-test
asuser isobox rootfs busybox /home/isobox-test/rootfs >&3 2>&1 || echo "rootfs failed" >&3
for c in /cases/*.sh; do
	base=/cases/$(basename $c .sh)
	name=${base#/cases/*-}
	CG=/sys/fs/cgroup/case-$name
	. $base.setup
	echo "=== BEGIN $name" >&3
	into=""
	[ -e $base.incgroup ] && into="--into $CG"
	CG=$CG asuser $into timeout -s KILL 90 sh $c >&3 2>&1
	echo "=== END $name rc=$? uptime=$(cut -d' ' -f1 /proc/uptime)" >&3
	echo "=== LEFT $name $(find /sys/fs/cgroup -name 'isobox-*' -type d | tr '\n' ' ')" >&3
	asuser timeout -s KILL 30 isobox rm -f -a >/dev/null 2>&1
done
# The host suite's own tests, on this kernel, as root drops to the users.
echo "=== BEGIN gotests" >&3
( cd /tmp && ISOBOX_TEST_GUEST_BIN=/usr/bin HOME=/root timeout -s KILL 300 /usr/bin/isobox.test -test.count=1 -test.v -test.run "$(cat /cases/gotests.run)" ) >&3 2>&1
echo "=== END gotests rc=$? uptime=$(cut -d' ' -f1 /proc/uptime)" >&3
sync
poweroff -f
`

// vmGoTests are the integration tests the guest runs on kernel 6.1: those
// that need nothing but isobox, BusyBox and the test users (no registry,
// Slurm, slirp4netns or pasta).
// Left out: those that build a probe with go, use /bin/ls as a dynamic
// binary, or force the holder with --time-offset, which 6.1 refuses.
const vmGoTests = "^Test(UTSNamespace|PIDNamespace|NetworkNamespaceHasOnly|MountNamespace|UserNamespace|SubordinateIDs|CgroupNamespace|IPCNamespace|EveryNamespace|" +
	"RootfsBusyboxBuilds|RootfsBusyboxRefusesANonEmpty|MissingMountPoints|UnwritableRootfs|SymlinkedMountPoints|KernelFilesAreMasked|SymlinkedEtcFiles|NoNewPrivs|" +
	"MasksCannot|WorkdirCannot|ExitStatus|CommandAsPID1|RunnerSignals|SIGTERM|EnvironmentIsClean|" +
	"UserAndWorkdir|NoDescriptor|RunnerKilled|FullMapping|SingleMapping|WithoutSubordinate|RealRoot|BadInput)"

// buildInitramfs writes the guest: BusyBox (static), the isobox under test
// (static) and its two helpers, newuidmap and newgidmap (setuid root),
// setpriv and ip with the libraries ldd names, a test user with subordinate ranges, the kernel's two modules,
// and the cases.
func buildInitramfs(dst string, images []byte, testBinary string) error {
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer f.Close()
	gz := gzip.NewWriter(f)
	w := &cpioWriter{w: gz, dirs: map[string]bool{}}
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		return err
	}
	w.file("init", 0o755, 0, []byte(guestInit))
	w.file("stage2", 0o755, 0, []byte(guestStage2))
	w.hostFile("bin/busybox", busybox, 0o755, 0)
	w.hostFile("usr/bin/isobox", binary, 0o755, 0)
	for _, helper := range []string{"isobox-gvisor", "isobox-image"} {
		w.hostFile("usr/bin/"+helper, filepath.Join(filepath.Dir(binary), helper), 0o755, 0)
	}
	libs := map[string]bool{}
	// util-linux's setpriv drops the guest's root to the test user
	// (BusyBox's has no --reuid); RootlessKit's drivers need iproute2's
	// ip (BusyBox's has no tuntap) run by util-linux's nsenter (BusyBox's runs
	// its own ip applet).
	// pgrep (procps) for the integration tests' leftover checks, and
	// slirp4netns, the default network.
	for _, tool := range []string{"newuidmap", "newgidmap", "setpriv", "ip", "nsenter", "pgrep", "slirp4netns"} {
		p, err := exec.LookPath(tool)
		if err != nil {
			return err
		}
		mode := uint32(0o755)
		if strings.HasPrefix(tool, "new") {
			mode = 0o4755
		}
		w.hostFile("usr/bin/"+tool, p, mode, 0)
		out, err := exec.Command("ldd", p).Output()
		if err != nil {
			return fmt.Errorf("ldd %s: %w", p, err)
		}
		for _, l := range regexp.MustCompile(`(/\S+) \(0x`).FindAllStringSubmatch(string(out), -1) {
			libs[l[1]] = true
		}
	}
	var sorted []string
	for l := range libs {
		sorted = append(sorted, l)
	}
	sort.Strings(sorted)
	for _, l := range sorted {
		w.hostFile(strings.TrimPrefix(l, "/"), l, 0o755, 0)
	}
	w.file("etc/passwd", 0o644, 0, []byte("root:x:0:0:root:/root:/bin/sh\nisobox-test:x:1000:1000::/home/isobox-test:/bin/sh\n"+
		"isobox-nosub:x:1001:1001::/home/isobox-nosub:/bin/sh\n"))
	w.file("etc/group", 0o644, 0, []byte("root:x:0:\nisobox-test:x:1000:\nisobox-nosub:x:1001:\n"))
	w.dir("root", 0o700, 0)
	w.dir("home/isobox-nosub", 0o755, 1001)
	w.hostFile("usr/bin/isobox.test", testBinary, 0o755, 0)
	w.file("cases/gotests.run", 0o644, 0, []byte(vmGoTests))
	w.file("etc/subuid", 0o644, 0, []byte("isobox-test:100000:65536\n"))
	w.file("etc/subgid", 0o644, 0, []byte("isobox-test:100000:65536\n"))
	w.dir("home/isobox-test", 0o755, 1000)
	w.file("cases/images.tar", 0o644, 0, images)
	for _, m := range []string{"overlay.ko", "tun.ko"} {
		w.hostFile("modules/"+m, filepath.Join(vmDir, m), 0o644, 0)
	}
	for i, c := range vmCases {
		base := fmt.Sprintf("cases/%02d-%s", i, c.name)
		// The guest names a case by its file; the results by c.name.
		w.file(base+".sh", 0o755, 0, []byte(c.script+"\n"))
		setup := c.setup
		if setup == "" {
			setup = defaultSetup
		}
		w.file(base+".setup", 0o644, 0, []byte(setup+"\n"))
		if c.inCgroup {
			w.file(base+".incgroup", 0o644, 0, nil)
		}
	}
	if w.err != nil {
		return w.err
	}
	if err := w.close(); err != nil {
		return err
	}
	return gz.Close()
}

// cpioWriter writes the kernel's initramfs format, cpio "newc", with the
// owners and modes given rather than the files' own (a setuid-root helper
// however the tests run).
type cpioWriter struct {
	w    io.Writer
	ino  int
	dirs map[string]bool
	err  error
}

func (c *cpioWriter) header(name string, mode uint32, uid int, size int) {
	c.ino++
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, uid, uid, 1, 0, size, 0, 0, 0, 0, len(name)+1, 0)
	c.write([]byte(hdr + name + "\x00"))
	c.pad(len(hdr) + len(name) + 1)
}

func (c *cpioWriter) write(b []byte) {
	if c.err == nil {
		_, c.err = c.w.Write(b)
	}
}

func (c *cpioWriter) pad(n int) {
	if n%4 != 0 {
		c.write(make([]byte, 4-n%4))
	}
}

// dir writes name and its missing parents.
func (c *cpioWriter) dir(name string, perm uint32, uid int) {
	if name == "." || c.dirs[name] {
		return
	}
	c.dir(filepath.Dir(name), 0o755, 0)
	c.dirs[name] = true
	c.header(name, 0o040000|perm, uid, 0)
}

func (c *cpioWriter) file(name string, perm uint32, uid int, data []byte) {
	c.dir(filepath.Dir(name), 0o755, 0)
	c.header(name, 0o100000|perm, uid, len(data))
	c.write(data)
	c.pad(len(data))
}

func (c *cpioWriter) hostFile(name, src string, perm uint32, uid int) {
	data, err := os.ReadFile(src)
	if err != nil && c.err == nil {
		c.err = err
	}
	c.file(name, perm, uid, data)
}

func (c *cpioWriter) close() error {
	c.header("TRAILER!!!", 0, 0, 0)
	return c.err
}

// The cases' checks.

func TestVMLimitsAreWrittenBeforeTheContainerRuns(t *testing.T) {
	r := vmCaseResult(t, "limits")
	for _, want := range []string{"50000 100000\n", "67108864\n", "16777216\n", "100\n", "39\n", "0::/\n", "cgroup2 /sys/fs/cgroup cgroup2 ro,", "rc=0"} {
		if !strings.Contains(r.out, want) {
			t.Errorf("want %q in the output", want)
		}
	}
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
	for _, want := range []string{"rc=137", "true 137"} {
		if !strings.Contains(r.out, want) {
			t.Errorf("want %q in the output", want)
		}
	}
	if !regexp.MustCompile(`(?m)^hog .* Exited \(137\)`).MatchString(r.out) {
		t.Errorf("ps -a does not show hog exited 137")
	}
	r.noCgroupsLeft(t)
}

func TestVMForkBombIsContainedByPidsLimit(t *testing.T) {
	r := vmCaseResult(t, "forkbomb")
	m := regexp.MustCompile(`pids (\d+) of 32`).FindStringSubmatch(r.out)
	if m == nil {
		t.Fatalf("no pids.current reading of the bomb's cgroup")
	}
	if !strings.Contains(r.out, "max events max ") || strings.Contains(r.out, "max events max 0\n") {
		t.Errorf("pids.events shows no refused fork")
	}
	if !strings.Contains(r.out, "guest responsive: yes") || !strings.Contains(r.out, "rc=0") {
		t.Errorf("the guest did not go on after the bomb, or rm -f failed")
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
	if !strings.Contains(r.out, "10\nrc=0") {
		t.Errorf("the pids limit, whose controller is there, must work")
	}
}

func TestVMValueTheKernelRefusesLeavesNothing(t *testing.T) {
	r := vmCaseResult(t, "bad-value")
	if !strings.Contains(r.out, "cpuset.cpus") || !strings.Contains(r.out, "rc=125") || strings.Count(strings.TrimSpace(r.out), "\n") != 1 {
		t.Errorf("want one line naming cpuset.cpus, then rc=125")
	}
	r.noCgroupsLeft(t)
}

func TestVMCgroupOfAKilledRunnerIsSweptByTheNextStart(t *testing.T) {
	r := vmCaseResult(t, "kill-runner")
	for _, want := range []string{"cgroup made: yes", "after the next start: swept"} {
		if !strings.Contains(r.out, want) {
			t.Errorf("want %q", want)
		}
	}
	r.noCgroupsLeft(t)
}

func TestVMOCIBundleResourcesAreApplied(t *testing.T) {
	r := vmCaseResult(t, "oci-resources")
	if !strings.Contains(r.out, "33554432\n20\n0::/\nrc=0") {
		t.Errorf("want the bundle's memory and pids limits in the container's cgroup")
	}
	r.noCgroupsLeft(t)
}

func TestVMStatsReportTheCgroupsNumbers(t *testing.T) {
	r := vmCaseResult(t, "stats")
	for _, want := range []string{`"memoryLimit": 67108864`, `"pidsLimit": 50`, "MEM USAGE / LIMIT", "s memory=64m pids=50\n"} {
		if !strings.Contains(r.out, want) {
			t.Errorf("want %q", want)
		}
	}
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
	for _, want := range []string{"host=isobox uid=0 pid1=isobox:init\n", "overlay writes ok\nrootfs untouched\n",
		"exec: ", "forty: 39\n", "eighty: 79\nrc=0"} {
		if !strings.Contains(r.out, want) {
			t.Errorf("want %q", want)
		}
	}
}
