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
	// The helper that holds a pids limit reached (testdata/pidfill).
	pidfill := filepath.Join(dir, "pidfill")
	if err := buildStatic(pidfill, "./testdata/pidfill"); err != nil {
		return nil, "", err
	}
	initrd := filepath.Join(dir, "initrd.gz")
	if err := buildInitramfs(initrd, vmImages(t), testBinary, pidfill); err != nil {
		return nil, "", fmt.Errorf("initramfs: %w", err)
	}
	// A boot that stops making progress (seen twice in about forty here:
	// not even the guest's own timeouts fired, its kernel log silent) is
	// tried once more; its output is logged, so it is never hidden.
	for attempt := 1; ; attempt++ {
		res, hung, err := bootOnce(qemu, kernel, initrd, filepath.Join(dir, fmt.Sprint(attempt)))
		if hung && attempt == 1 {
			t.Logf("the VM made no progress; booting it once more. First boot: %v", err)
			continue
		}
		return res, "", err
	}
}

// bootOnce boots the guest with its serial ports in dir; hung says qemu
// was stopped at the deadline.
func bootOnce(qemu, kernel, initrd, dir string) (res map[string]vmResult, hung bool, err error) {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, false, err
	}
	results, console := filepath.Join(dir, "results"), filepath.Join(dir, "console")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// KVM hangs nested on these machines: software emulation, two vCPUs.
	cmd := exec.CommandContext(ctx, qemu, "-accel", "tcg,thread=multi", "-smp", "2", "-m", "512",
		"-nographic", "-no-reboot", "-nodefaults", "-serial", "file:"+console,
		"-serial", "file:"+results, "-kernel", kernel, "-initrd", initrd,
		"-append", "console=ttyS0 panic=-1 loglevel=4 edd=off")
	out, err := cmd.CombinedOutput()
	c, _ := os.ReadFile(console)
	b, _ := os.ReadFile(results)
	if err != nil {
		return nil, ctx.Err() != nil, fmt.Errorf("qemu: %v\n%s\nresults so far:\n%s\nconsole:\n%s", err, out, tail(string(b), 4000), tail(string(c), 3000))
	}
	if res, err = parseVMResults(string(b)); err != nil {
		return nil, false, fmt.Errorf("%v\nresults:\n%s\nconsole:\n%s", err, b, tail(string(c), 3000))
	}
	return res, false, nil
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

// buildInitramfs writes the guest: BusyBox (static), the isobox under test
// (static) and its two helpers, newuidmap and newgidmap (setuid root),
// setpriv and ip with the libraries ldd names, a test user with subordinate ranges, the kernel's two modules,
// and the cases.
func buildInitramfs(dst string, images []byte, testBinary, pidfill string) error {
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
	// pgrep (procps) for the integration tests' leftover checks,
	// slirp4netns, the default network, and script, a terminal for stats.
	for _, tool := range []string{"newuidmap", "newgidmap", "setpriv", "ip", "nsenter", "pgrep", "slirp4netns", "script"} {
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
	w.hostFile("usr/bin/pidfill", pidfill, 0o755, 0)
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
