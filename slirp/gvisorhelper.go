package slirp

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
)

// ErrGvisorHelperMissing means isobox-gvisor, which --net gvisor runs, is
// neither next to isobox nor on PATH.
var ErrGvisorHelperMissing = errors.New("isobox-gvisor, the helper of --net gvisor, is not installed")

// GvisorHelper finds isobox-gvisor: next to the running isobox first, as
// `make build` puts it, then on PATH.
func GvisorHelper() (string, error) {
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "isobox-gvisor")
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p, nil
		}
	}
	if p, err := exec.LookPath("isobox-gvisor"); err == nil {
		return p, nil
	}
	return "", ErrGvisorHelperMissing
}

// gvisorMessage is what the helper's parent side prints: RootlessKit's
// ParentInitNetworkDriverCompleted, the fields isobox uses.
type gvisorMessage struct {
	Dev                 string
	IP                  string
	Netmask             int
	Gateway             string
	DNS                 []string
	MTU                 int
	NetworkDriverOpaque map[string]string
}

// runGvisorHelper runs the helper's parent side for the life of r, on the
// calling thread, which the caller keeps locked: the helper's parent-death
// signal is tied to it. It reports on started once the network is up.
func (r *Running) runGvisorHelper(o Options, started chan<- error) {
	helper, err := GvisorHelper()
	if err != nil {
		started <- err
		return
	}
	allow := "deny"
	if o.AllowHostLoopback {
		allow = "allow"
	}
	cmd := exec.Command(helper, "parent", strconv.Itoa(o.HolderPID), o.StateDir, o.NetNS, allow)
	cmd.Stderr = o.Log
	stdin, err := cmd.StdinPipe()
	if err != nil {
		started <- err
		return
	}
	line, err := startHelper(cmd)
	if err != nil {
		started <- err
		return
	}
	var msg gvisorMessage
	if err := json.Unmarshal(line, &msg); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		started <- fmt.Errorf("gvisor: %s did not start the network (see --log-level debug)", helper)
		return
	}
	r.Network = Network{Dev: msg.Dev, IP: msg.IP, Netmask: msg.Netmask, Gateway: msg.Gateway, DNS: msg.DNS, MTU: msg.MTU}
	r.ChildOpaque = msg.NetworkDriverOpaque
	r.Helper = helper
	r.pids = []int{cmd.Process.Pid}
	started <- nil
	<-r.stop
	stdin.Close() // the helper stops its stack and exits
	r.stopped <- cmd.Wait()
}

// StartNetChild starts the helper's child side: it opens the tap in the
// network namespace at netnsPath and pumps frames to the runner's stack. It
// runs in the holder, and the helper dies with the holder: it is started
// from a goroutine that keeps its thread locked (Pdeathsig) for as long as
// the helper runs.
func StartNetChild(helper string, n *Network, opaque map[string]string, netnsPath string) error {
	msg, err := json.Marshal(gvisorMessage{Dev: n.Dev, IP: n.IP, Netmask: n.Netmask, Gateway: n.Gateway,
		DNS: n.DNS, MTU: n.MTU, NetworkDriverOpaque: opaque})
	if err != nil {
		return err
	}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // the helper's Pdeathsig: see above
		defer runtime.UnlockOSThread()
		var stderr bytes.Buffer
		cmd := exec.Command(helper, "child", netnsPath)
		cmd.Stdin = bytes.NewReader(append(msg, '\n'))
		cmd.Stderr = &stderr
		line, err := startHelper(cmd)
		if err != nil {
			started <- err
			return
		}
		if strings.TrimSpace(string(line)) != "ready" {
			cmd.Process.Kill()
			cmd.Wait()
			started <- fmt.Errorf("gvisor child side: %s", strings.TrimSpace(stderr.String()))
			return
		}
		started <- nil
		cmd.Wait()
	}()
	return <-started
}

// startHelper starts cmd with SIGKILL as its parent-death signal (the
// caller holds its thread locked) and returns the first line it prints.
// A helper that fails before printing it is reaped here.
func startHelper(cmd *exec.Cmd) ([]byte, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	line, err := bufio.NewReader(stdout).ReadBytes('\n')
	if err != nil && len(line) == 0 {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("%s %s exited before starting", cmd.Path, cmd.Args[1])
	}
	return line, nil
}
