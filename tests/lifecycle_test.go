package tests

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// leftovers lists the processes a killed runner could leave: the test
// user's (when the tests run as root, nothing else of that user runs), or
// any isobox stage or marked command.
func leftovers(markers ...string) []string {
	var out []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		cl := strings.ReplaceAll(string(cmdline), "\x00", " ")
		fi, err := os.Stat(filepath.Join("/proc", e.Name()))
		if err != nil {
			continue
		}
		st := fi.Sys().(*syscall.Stat_t)
		mine := asRoot && (st.Uid == tester.uid || (tester.subStart != 0 && st.Uid >= tester.subStart && st.Uid < tester.subStart+65536))
		marked := strings.Contains(cl, "isobox:")
		for _, m := range markers {
			marked = marked || strings.Contains(cl, m)
		}
		if mine || marked {
			if !strings.Contains(cl, "go test") && !strings.HasSuffix(strings.Fields(cl + " x")[0], ".test") {
				out = append(out, e.Name()+" "+cl)
			}
		}
	}
	return out
}

// waitNoLeftovers polls until nothing is left; it fails after a generous
// minute, which bounds a failure, not the speed of a success.
func waitNoLeftovers(t *testing.T, markers ...string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		left := leftovers(markers...)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("left behind:\n%s", strings.Join(left, "\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestRunnerKilledWhileRunningLeavesNothing(t *testing.T) {
	for _, flags := range [][]string{nil, {"--no-init"}, {"-u", "1000"}} {
		if len(flags) == 2 && tester.subStart == 0 {
			continue
		}
		mounts := hostMounts(t)
		cmd, _ := startContainer(t, flags, "echo ready; exec sleep 987654")
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		waitNoLeftovers(t, "sleep 987654")
		if hostMounts(t) != mounts {
			t.Fatalf("%v: the host's mounts changed", flags)
		}
	}
}

// Kill the runner at many moments of start-up: before the user namespace
// exists, while the maps are written, while init mounts, as the command
// starts. Nothing may survive any of them.
func TestRunnerKilledDuringStartUpLeavesNothing(t *testing.T) {
	mounts := hostMounts(t)
	for i := 0; i < 30; i++ {
		cmd := command(tester, nil, binary, "run", rootfs, "sleep", "987655")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(i) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
	}
	waitNoLeftovers(t, "sleep 987655")
	if hostMounts(t) != mounts {
		t.Fatal("the host's mounts changed")
	}
}

func TestSIGTERMDuringStartUpAbortsCleanly(t *testing.T) {
	for i := 0; i < 10; i++ {
		cmd := command(tester, nil, binary, "run", rootfs, "sleep", "987656")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(i*2) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(time.Minute):
			cmd.Process.Kill()
			t.Fatal("isobox ignored SIGTERM during start-up")
		}
	}
	waitNoLeftovers(t, "sleep 987656")
}
