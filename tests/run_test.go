package tests

import (
	"bufio"
	"sync"

	"fmt"
	"golang.org/x/sys/unix"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestExitStatusFollowsPodman(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flags []string
		args  []string
		code  int
	}{
		{"command's own status", nil, []string{"sh", "-c", "exit 7"}, 7},
		{"success", nil, []string{"true"}, 0},
		{"killed by SIGKILL is 128+9", nil, []string{"sh", "-c", "kill -9 $$"}, 137},
		{"killed by SIGTERM is 128+15", nil, []string{"sh", "-c", "kill -TERM $$"}, 143},
		{"absolute path not found is 127", nil, []string{"/no/such/command"}, 127},
		{"name not in PATH is 127", nil, []string{"no-such-command"}, 127},
		{"not executable is 126", nil, []string{"/etc/passwd"}, 126},
		{"--no-init keeps the status", []string{"--no-init"}, []string{"sh", "-c", "exit 9"}, 9},
		{"--no-init not found is 127", []string{"--no-init"}, []string{"/nope"}, 127},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(append([]string{"run"}, tc.flags...), rootfs)
			r := isobox(t, append(args, tc.args...)...)
			if r.code != tc.code {
				t.Fatalf("exit %d, want %d: %s", r.code, tc.code, r)
			}
			if tc.code >= 126 && tc.code <= 127 && !strings.HasPrefix(r.stderr, "isobox: ") {
				t.Fatalf("no isobox: message: %s", r)
			}
		})
	}
}

// The seed's `exec /bin/sh` as PID 1 shows why isobox has an init: the
// kernel drops signals a namespace's PID 1 has no handler for.
func TestCommandAsPID1IgnoresItsOwnKillButInitDoesNot(t *testing.T) {
	r := isobox(t, "run", "--no-init", rootfs, "sh", "-c", "kill -9 $$; echo survived")
	if r.code != 0 || strings.TrimSpace(r.stdout) != "survived" {
		t.Fatalf("--no-init: %s", r)
	}
	r = isobox(t, "run", rootfs, "sh", "-c", "kill -9 $$; echo survived")
	if r.code != 137 || strings.Contains(r.stdout, "survived") {
		t.Fatalf("with init: %s", r)
	}
}

func TestDefaultCommandIsShellReadingStdin(t *testing.T) {
	r := isoboxIn(t, "echo from-stdin; exit 3\n", "run", rootfs)
	if r.code != 3 || strings.TrimSpace(r.stdout) != "from-stdin" {
		t.Fatalf("%s", r)
	}
}

// startContainer runs isobox in the background and waits for the script to
// print "ready".
func startContainer(t *testing.T, flags []string, script string) (*exec.Cmd, *bufio.Reader) {
	t.Helper()
	args := append(append([]string{binary, "run"}, flags...), rootfs, "/bin/sh", "-c", script)
	cmd := command(tester, nil, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	rd := bufio.NewReader(out)
	if line := readLine(t, rd); strings.TrimSpace(line) != "ready" {
		t.Fatalf("container did not get ready: %q", line)
	}
	return cmd, rd
}

// readLine reads a line, failing the test after a minute instead of
// hanging the suite.
func readLine(t *testing.T, rd *bufio.Reader) string {
	t.Helper()
	got := make(chan string, 1)
	go func() {
		line, _ := rd.ReadString('\n')
		got <- line
	}()
	select {
	case line := <-got:
		return line
	case <-time.After(time.Minute):
		t.Fatal("no line from the container within a minute")
		return ""
	}
}

func waitCode(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(time.Minute):
		t.Fatal("isobox did not exit within a minute")
		return -1
	}
}

func TestRunnerSignalsReachTheContainer(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2} {
		t.Run(sig.String(), func(t *testing.T) {
			name := strings.TrimPrefix(sigName(sig), "SIG")
			script := fmt.Sprintf(`trap 'echo got-%s; exit 3' %s; echo ready; while :; do sleep 1; done`, name, name)
			cmd, rd := startContainer(t, nil, script)
			cmd.Process.Signal(sig)
			line := readLine(t, rd)
			if strings.TrimSpace(line) != "got-"+name {
				t.Fatalf("the container's trap did not run: %q (isobox exit %d)", line, waitCode(t, cmd))
			}
			if code := waitCode(t, cmd); code != 3 {
				t.Fatalf("exit %d, want 3", code)
			}
		})
	}
}

func TestSIGTERMEndsACommandWithoutHandler(t *testing.T) {
	cmd, _ := startContainer(t, nil, "echo ready; exec sleep 1000")
	cmd.Process.Signal(syscall.SIGTERM)
	if code := waitCode(t, cmd); code != 143 {
		t.Fatalf("exit %d, want 143 (sleep killed by SIGTERM)", code)
	}
}

func sigName(s syscall.Signal) string {
	return map[syscall.Signal]string{syscall.SIGINT: "INT", syscall.SIGTERM: "TERM", syscall.SIGHUP: "HUP",
		syscall.SIGQUIT: "QUIT", syscall.SIGUSR1: "USR1", syscall.SIGUSR2: "USR2"}[s]
}

func TestEnvironmentIsCleanButForTERM(t *testing.T) {
	envFile := userDir(tester, "env") + "/vars"
	os.WriteFile(envFile, []byte("# comment\nFROM_FILE=f\nOVERRIDDEN=file\nFROM_HOST\n"), 0o644)
	os.Chmod(envFile, 0o644)
	cmd := command(tester, []string{"SECRET=leak", "TERM=xterm-test", "FROM_HOST=h"},
		binary, "run", "--env-file", envFile, "-e", "A=1", "-e", "OVERRIDDEN=flag", "-e", "FROM_HOST", "-e", "UNSET_ON_HOST",
		rootfs, "/bin/sh", "-c", "env | sort")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v", err)
	}
	got := strings.Fields(string(out))
	want := []string{"A=1", "FROM_FILE=f", "FROM_HOST=h", "HOME=/root", "HOSTNAME=isobox", "OVERRIDDEN=flag",
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "PWD=/", "SHLVL=1", "TERM=xterm-test"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("environment:\n got %q\nwant %q", got, want)
	}
}

func TestUserAndWorkdir(t *testing.T) {
	requireSubIDs(t)
	if got := inContainer(t, "id; pwd; echo $HOME", "-u", "1000:1000", "-w", "/tmp"); got != "uid=1000 gid=1000\n/tmp\n/\n" {
		t.Fatalf("-u 1000:1000 -w /tmp: %q", got)
	}
	if got := inContainer(t, "id; echo $HOME", "-u", "nobody"); got != "uid=65534(nobody) gid=65534(nogroup)\n/nonexistent\n" {
		t.Fatalf("-u nobody: %q", got)
	}
	if got := inContainer(t, "id -u; id -g", "-u", "1000"); got != "1000\n0\n" {
		t.Fatalf("-u 1000 (not in passwd): %q, want gid 0 as Docker", got)
	}
	if got := inContainer(t, "grep '^Groups:' /proc/self/status", "-u", "1000:1000"); strings.TrimSpace(got) != "Groups:" {
		t.Fatalf("supplementary groups carried in: %q", got)
	}
	if got := inContainer(t, "pwd", "--no-init", "-w", "/etc"); got != "/etc\n" {
		t.Fatalf("--no-init -w /etc: %q", got)
	}
}

func TestNoDescriptorReachesTheContainer(t *testing.T) {
	// The caller leaves a descriptor open without close-on-exec, as a
	// careless parent (or os/exec's ExtraFiles) does.
	leak, err := os.Open("/etc/hostname")
	if err != nil {
		leak, _ = os.Open("/etc/passwd")
	}
	defer leak.Close()
	// PID 1, isobox's init, may hold more, but none that names a file or
	// directory of the host: the listening socket `isobox exec` connects
	// to, and the Go runtime's epoll and eventfd. All capabilities, so
	// that the shell may read PID 1's links.
	for _, tc := range []struct {
		mode []string
		init string // what PID 1 may hold beyond 0 1 2
	}{{nil, "anon_inode socket"}, {[]string{"--no-init"}, ""}} {
		args := append([]string{binary, "run", "--cap-add", "ALL"}, tc.mode...)
		cmd := command(tester, nil, append(args, rootfs, "/bin/sh", "-c", "ls /proc/$$/fd; echo --; ls -l /proc/1/fd; true")...)
		cmd.ExtraFiles = []*os.File{leak}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		// "lrwx------ 1 root root 64 Nov 28 12:00 0 -> /dev/null": keep
		// the descriptor, and the kind of anything but 0, 1 and 2.
		var shell, init []string
		seen := false
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			f := strings.Fields(l)
			switch {
			case len(f) == 1 && f[0] == "--":
				seen = true
			case len(f) == 1 && !seen:
				shell = append(shell, f[0])
			case len(f) > 3 && f[len(f)-2] == "->":
				fd, target := f[len(f)-3], f[len(f)-1]
				if fd != "0" && fd != "1" && fd != "2" {
					kind, _, _ := strings.Cut(target, ":")
					if !strings.Contains(" "+tc.init+" ", " "+kind+" ") {
						init = append(init, fd+"->"+target)
					}
				}
			}
		}
		if strings.Join(shell, " ") != "0 1 2" || len(init) != 0 {
			t.Fatalf("%v: shell holds %v (want 0 1 2), PID 1 also holds %v:\n%s", tc.mode, shell, init, out)
		}
	}
}

func TestContainerHasNoControllingTerminalWithoutTTY(t *testing.T) {
	// Run isobox on a terminal it controls; without -t the container is in
	// a session of its own, so TIOCSTI into that terminal is impossible
	// (CVE-2017-5226): /dev/tty has no terminal behind it.
	pty := openTestPTY(t)
	cmd := command(tester, nil, binary, "run", rootfs, "/bin/sh", "-c", "cat /proc/self/stat; echo x > /dev/tty && echo HAS-TTY; true")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = pty.slave, pty.slave, pty.slave
	cmd.SysProcAttr.Setsid, cmd.SysProcAttr.Setctty = true, true
	out := runOnPTY(t, cmd, pty)
	if strings.Contains(out, "HAS-TTY") {
		t.Fatalf("the container could open its controlling terminal:\n%s", out)
	}
	// Field 7 of /proc/self/stat is tty_nr: 0 means no controlling terminal.
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 7 && strings.HasPrefix(f[1], "(cat)") {
			if f[6] != "0" {
				t.Fatalf("the container has a controlling terminal (tty_nr %s)", f[6])
			}
			return
		}
	}
	t.Fatalf("no stat line in:\n%s", out)
}

func TestTTYGivesAContainerTerminalAndRestoresTheCallers(t *testing.T) {
	pty := openTestPTY(t)
	pty.setSize(t, 33, 111)
	before := pty.termios(t)
	cmd := command(tester, []string{"TERM=xterm"}, binary, "run", "-t", rootfs, "/bin/sh", "-c", "tty; stty size; echo $TERM")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = pty.slave, pty.slave, pty.slave
	cmd.SysProcAttr.Setsid, cmd.SysProcAttr.Setctty = true, true
	var after unix.Termios
	out := runOnPTY(t, cmd, pty, func() { after = pty.termios(t) })
	if !strings.Contains(out, "/dev/pts/0") || !strings.Contains(out, "33 111") || !strings.Contains(out, "xterm") {
		t.Fatalf("-t: want /dev/pts/0 from the container's devpts, size 33 111, TERM:\n%q", out)
	}
	if after != before {
		t.Fatalf("the caller's terminal was not restored:\nbefore %+v\nafter  %+v", before, after)
	}
}

func TestTTYWithNoInit(t *testing.T) {
	pty := openTestPTY(t)
	cmd := command(tester, nil, binary, "run", "-t", "--no-init", rootfs, "/bin/sh", "-c", "tty; echo pid=$$")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = pty.slave, pty.slave, pty.slave
	cmd.SysProcAttr.Setsid, cmd.SysProcAttr.Setctty = true, true
	out := runOnPTY(t, cmd, pty)
	if !strings.Contains(out, "/dev/pts/0") || !strings.Contains(out, "pid=1") {
		t.Fatalf("-t --no-init: %q", out)
	}
}

// capSets reads the Cap* lines of /proc/self/status inside.
func capSets(t *testing.T, flags ...string) map[string]string {
	t.Helper()
	out := inContainer(t, "grep ^Cap /proc/self/status", flags...)
	m := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(l); len(f) == 2 {
			m[strings.TrimSuffix(f[0], ":")] = f[1]
		}
	}
	return m
}

// The holder raises ambient capabilities to keep them over its own exec;
// none of that may reach the container. Issue 6 narrows root's set further.
func TestNoCapabilitiesAreCarriedIntoTheContainer(t *testing.T) {
	requireSubIDs(t)
	const none = "0000000000000000"
	user := capSets(t, "-u", "1000")
	for _, set := range []string{"CapInh", "CapPrm", "CapEff", "CapAmb"} {
		if user[set] != none {
			t.Errorf("-u 1000: %s = %s, want none", set, user[set])
		}
	}
	root := capSets(t)
	if root["CapInh"] != none || root["CapAmb"] != none {
		t.Errorf("container root carries inheritable %s / ambient %s, want none", root["CapInh"], root["CapAmb"])
	}
}

func TestTTYFollowsTheCallersWindowSize(t *testing.T) {
	pty := openTestPTY(t)
	pty.setSize(t, 20, 70)
	// The script prints its size first and again after every line it reads.
	cmd := command(tester, nil, binary, "run", "-t", rootfs, "/bin/sh", "-c", "stty size; while read x; do [ $x = end ] && exit 0; stty size; done")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = pty.slave, pty.slave, pty.slave
	cmd.SysProcAttr.Setsid, cmd.SysProcAttr.Setctty = true, true
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var mu sync.Mutex
	var out strings.Builder
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := pty.master.Read(buf)
			mu.Lock()
			out.Write(buf[:n])
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	seen := func(s string) bool { mu.Lock(); defer mu.Unlock(); return strings.Contains(out.String(), s) }
	waitFor := func(s string, poke func()) {
		for deadline := time.Now().Add(time.Minute); !seen(s); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				mu.Lock()
				defer mu.Unlock()
				t.Fatalf("no %q on the terminal within a minute:\n%q", s, out.String())
			}
			poke()
		}
	}
	waitFor("20 70", func() {})
	// Resize as a terminal emulator does: new size, then SIGWINCH.
	pty.setSize(t, 40, 100)
	cmd.Process.Signal(syscall.SIGWINCH)
	waitFor("40 100", func() { pty.master.Write([]byte("x\n")) })
	pty.master.Write([]byte("end\n"))
	if code := waitCode(t, cmd); code != 0 {
		t.Fatalf("exit %d", code)
	}
}
