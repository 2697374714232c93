package tests

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// account is a user the tests run isobox as.
type account struct {
	name     string
	uid, gid uint32
	home     string
	subStart uint32 // first subordinate uid, 0 when none
	self     bool   // the test process's own user (not root)
	// runtime is the user's $XDG_RUNTIME_DIR for the tests: isobox keeps
	// its container records there, inside the scratch tree.
	runtime string
}

var (
	work    string   // reachable by the test users
	binary  string   // the isobox under test
	rootfs  string   // a BusyBox rootfs built by isobox as tester
	tester  *account // has subordinate ranges (when root runs the tests)
	nosub   *account // has none; nil when the tests are not root
	asRoot  = os.Geteuid() == 0
	goBuild = []string{"build", "-trimpath", "-o"}
)

const (
	testUser  = "isobox-test"
	nosubUser = "isobox-nosub"
)

func TestMain(m *testing.M) {
	code, err := setup(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "tests: set-up failed:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func setup(m *testing.M) (int, error) {
	var err error
	if asRoot {
		if tester, err = ensureUser(testUser, true); err != nil {
			return 0, err
		}
		if nosub, err = ensureUser(nosubUser, false); err != nil {
			return 0, err
		}
	} else if tester, err = currentAccount(); err != nil {
		return 0, err
	}
	work, err = os.MkdirTemp("/tmp", "isobox-tests-")
	if err != nil {
		return 0, err
	}
	defer cleanupWork()
	if err := os.Chmod(work, 0o755); err != nil {
		return 0, err
	}
	for _, a := range []*account{tester, nosub} {
		if a != nil {
			a.runtime = privateDir(a, "run")
		}
	}
	if dir := os.Getenv(guestEnv); dir != "" {
		// In the VM lane's guest, which has no Go: the binaries are there.
		binary = filepath.Join(dir, "isobox")
	} else if err := buildBinaries(); err != nil {
		return 0, err
	}
	// The rootfs is built by the test user, the way a user would.
	home := userDir(tester, "base")
	rootfs = filepath.Join(home, "rootfs")
	if r := runAs(tester, nil, binary, "rootfs", "busybox", rootfs); r.code != 0 {
		return 0, fmt.Errorf("isobox rootfs busybox: %s", r)
	}
	code := m.Run()
	if slurmUp != nil {
		slurmUp.stop()
	}
	return code, nil
}

// guestEnv, set, names the directory of isobox and its helpers: the VM
// lane runs this test binary in its guest (vm_test.go).
const guestEnv = "ISOBOX_TEST_GUEST_BIN"

// buildBinaries builds isobox into work, and its helpers next to it, where
// it looks for them: isobox-gvisor (--net gvisor) and isobox-image (images).
func buildBinaries() error {
	binary = filepath.Join(work, "isobox")
	for _, b := range []struct{ dst, pkg string }{{binary, "../cmd/isobox"},
		{filepath.Join(work, "isobox-gvisor"), "../cmd/isobox-gvisor"}, {filepath.Join(work, "isobox-image"), "../cmd/isobox-image"}} {
		if err := buildStatic(b.dst, b.pkg); err != nil {
			return err
		}
	}
	return nil
}

// buildStatic builds the Go package pkg, without cgo, into dst, executable
// by the test users.
func buildStatic(dst, pkg string) error {
	build := exec.Command("go", append(goBuild, dst, pkg)...)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
	}
	return os.Chmod(dst, 0o755)
}

// cleanupWork removes the scratch tree. Files made inside containers may
// belong to subordinate ids, which only root or `isobox unshare` can remove.
func cleanupWork() {
	if !asRoot {
		exec.Command(binary, "unshare", "rm", "-rf", work).Run()
	}
	os.RemoveAll(work)
}

func currentAccount() (*account, error) {
	u, err := user.Current()
	if err != nil {
		return nil, err
	}
	a := &account{name: u.Username, home: u.HomeDir, self: true}
	a.uid, a.gid = parseID(u.Uid), parseID(u.Gid)
	a.subStart = firstRange("/etc/subuid", a.name, a.uid)
	return a, nil
}

// ensureUser creates (once) an ordinary user, with or without subordinate
// ranges. Debian's useradd gives new users ranges unless told not to.
func ensureUser(name string, withRanges bool) (*account, error) {
	if _, err := user.Lookup(name); err != nil {
		args := []string{"--create-home", "--shell", "/bin/sh"}
		if !withRanges {
			args = append(args, "-K", "SUB_UID_COUNT=0", "-K", "SUB_GID_COUNT=0")
		}
		if out, err := exec.Command("useradd", append(args, name)...).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("useradd %s: %v: %s", name, err, out)
		}
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, err
	}
	a := &account{name: name, uid: parseID(u.Uid), gid: parseID(u.Gid), home: u.HomeDir}
	a.subStart = firstRange("/etc/subuid", name, a.uid)
	if withRanges && (a.subStart == 0 || firstRange("/etc/subgid", name, a.uid) == 0) {
		return nil, fmt.Errorf("user %s has no subordinate ranges: check SUB_UID_MIN in /etc/login.defs", name)
	}
	if !withRanges && a.subStart != 0 {
		return nil, fmt.Errorf("user %s has subordinate ranges; remove them from /etc/subuid and /etc/subgid", name)
	}
	return a, nil
}

func firstRange(file, name string, uid uint32) uint32 {
	b, _ := os.ReadFile(file)
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Split(l, ":")
		if len(f) == 3 && (f[0] == name || f[0] == strconv.Itoa(int(uid))) {
			return parseID(f[1])
		}
	}
	return 0
}

func parseID(s string) uint32 {
	n, _ := strconv.ParseUint(s, 10, 32)
	return uint32(n)
}

// userDir makes a fresh directory under work owned by a.
func userDir(a *account, name string) string {
	d, err := os.MkdirTemp(work, name+"-")
	if err != nil {
		panic(err)
	}
	os.Chmod(d, 0o755)
	if asRoot {
		os.Chown(d, int(a.uid), int(a.gid))
	}
	return d
}

// privateDir makes a fresh directory under work owned by a, mode 0700, as
// a login's $XDG_RUNTIME_DIR is.
func privateDir(a *account, name string) string {
	d := userDir(a, name)
	os.Chmod(d, 0o700)
	return d
}

// result is what a command did.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// command prepares argv to run as a, with a minimal environment of the kind
// a login gives, plus extra.
func command(a *account, extraEnv []string, argv ...string) *exec.Cmd {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = work
	cmd.Env = append([]string{
		"PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
		"HOME=" + a.home, "USER=" + a.name, "LOGNAME=" + a.name,
		"XDG_RUNTIME_DIR=" + a.runtime,
	}, extraEnv...)
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	if !a.self {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: a.uid, Gid: a.gid, Groups: []uint32{}}
	}
	return cmd
}

func runAs(a *account, stdin io.Reader, argv ...string) result {
	return runAsEnv(a, nil, stdin, argv...)
}

// runAsEnv is runAs with extra environment.
func runAsEnv(a *account, env []string, stdin io.Reader, argv ...string) result {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := command(a, env, argv...)
	cmd = withContext(ctx, cmd)
	var out, errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
		if ws := ee.Sys().(syscall.WaitStatus); ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
	} else if err != nil {
		code = -1
		errb.WriteString(err.Error())
	}
	return result{stdout: out.String(), stderr: errb.String(), code: code}
}

// withContext rebuilds cmd under ctx so a hung test is killed, not stuck.
func withContext(ctx context.Context, c *exec.Cmd) *exec.Cmd {
	n := exec.CommandContext(ctx, c.Path, c.Args[1:]...)
	n.Args, n.Dir, n.Env, n.SysProcAttr = c.Args, c.Dir, c.Env, c.SysProcAttr
	return n
}

// isobox runs the binary as the test user.
func isobox(t *testing.T, args ...string) result {
	t.Helper()
	return runAs(tester, nil, append([]string{binary}, args...)...)
}

// isoboxIn runs the binary with stdin.
func isoboxIn(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	return runAs(tester, strings.NewReader(stdin), append([]string{binary}, args...)...)
}

// inContainer runs a shell script in the test rootfs and requires success.
func inContainer(t *testing.T, script string, flags ...string) string {
	t.Helper()
	args := append([]string{"run"}, flags...)
	args = append(args, rootfs, "/bin/sh", "-c", script)
	r := isobox(t, args...)
	if r.code != 0 {
		t.Fatalf("isobox %s: %s", strings.Join(args, " "), r)
	}
	return r.stdout
}

func requireRoot(t *testing.T, why string) {
	t.Helper()
	if !asRoot {
		t.Skip("needs the tests to run as root to " + why)
	}
}

func requireSubIDs(t *testing.T) {
	t.Helper()
	if tester.subStart == 0 {
		t.Skipf("%s has no subordinate ids", tester.name)
	}
}

func requireBinary(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s is not installed (make test installs it)", name)
	}
	return p
}

// fresh copies the test rootfs for a test that changes it.
func fresh(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(userDir(tester, "rootfs"), "r")
	if r := runAs(tester, nil, "cp", "-a", rootfs, dir); r.code != 0 {
		t.Fatalf("copy rootfs: %s", r)
	}
	return dir
}
