package userns

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/isobox/isobox/userns/state"
)

// A detached container (run -d) is run by a monitor: this same binary
// re-executed as stageMonitor in a session of its own, with no terminal,
// which does what the runner does in the foreground (holds the record's
// lock, the holder and the network helpers, and waits) and copies the
// container's output into the record's log. The command that started it
// returns once the monitor says the container's command runs, or with the
// monitor's error, so a detached start fails the same way a foreground one
// does.

// monitorConfig is sent to the monitor on its fd 3.
type monitorConfig struct {
	Options  Options `json:"options"`
	Dir      string  `json:"dir"` // the record's directory
	LogLevel string  `json:"logLevel"`
}

// monitorStatus is the monitor's one report, on its fd 4.
type monitorStatus struct {
	Code  int    `json:"code"`
	Error string `json:"error,omitempty"`
}

// Descriptors of the monitor stage.
const (
	fdMonitorConfig = 3
	fdMonitorStatus = 4
	fdMonitorLock   = 5
	fdMonitorStdio  = 6 // to 8, with Options.PassStdio
)

// LogCap bounds a detached container's log: when container.log reaches it,
// it becomes container.log.1 (replacing the one before) and a new one is
// started, so a record keeps between one and two caps of the latest output.
const LogCap = 1 << 20

// Detach starts the container under a monitor and returns once its command
// runs. The record c is handed over: the monitor holds its lock from then.
func Detach(o Options, c *state.Container, logLevel string) error {
	cfgR, cfgW, err := os.Pipe()
	if err != nil {
		return setupError(err)
	}
	defer cfgR.Close()
	defer cfgW.Close()
	statusR, statusW, err := os.Pipe()
	if err != nil {
		return setupError(err)
	}
	defer statusR.Close()
	defer statusW.Close()
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		return setupError(err)
	}
	defer devNull.Close()
	cmd := &exec.Cmd{
		Path:       selfExe,
		Args:       []string{stageMonitor},
		Env:        os.Environ(), // PATH, for newuidmap and the network helpers
		Stdin:      devNull,
		Stdout:     devNull,
		Stderr:     devNull,
		ExtraFiles: []*os.File{cfgR, statusW, c.LockFile()},
		// A session of its own: the caller's terminal closing (SIGHUP) or
		// its job control does not reach the container.
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	if o.PassStdio {
		cmd.ExtraFiles = append(cmd.ExtraFiles, os.Stdin, os.Stdout, os.Stderr)
	}
	cmd.ExtraFiles = append(cmd.ExtraFiles, o.ExtraFiles...) // after those
	o.Preserved = len(o.ExtraFiles)
	if err := cmd.Start(); err != nil {
		c.Remove()
		return setupError(fmt.Errorf("start the detached monitor: %w", err))
	}
	cfgR.Close()
	statusW.Close()
	// The pipe holds far more than a config; the monitor reads it at once.
	err = json.NewEncoder(cfgW).Encode(monitorConfig{Options: o, Dir: c.Dir, LogLevel: logLevel})
	cfgW.Close()
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		c.Remove()
		return setupError(fmt.Errorf("configure the detached monitor: %w", err))
	}
	var st monitorStatus
	if err := json.NewDecoder(statusR).Decode(&st); err != nil {
		// The monitor died without a word; it cannot have cleaned up.
		cmd.Wait()
		c.Remove()
		return setupError(errors.New("the detached monitor exited before the container started"))
	}
	// The monitor outlives this process and is reparented; it is not
	// waited for here.
	cmd.Process.Release()
	if st.Code != 0 || st.Error != "" {
		return &Error{Code: st.Code, Err: errors.New(st.Error)}
	}
	return nil
}

// monitorMain is the detached monitor (see above).
func monitorMain() error {
	// The caller's working directory would stay busy (unmountable) for the
	// container's life; everything the monitor uses is an absolute path.
	os.Chdir("/")
	status := os.NewFile(fdMonitorStatus, "status")
	report := func(st monitorStatus) {
		if status != nil {
			json.NewEncoder(status).Encode(st)
			status.Close()
			status = nil
		}
	}
	var mc monitorConfig
	cfg := os.NewFile(fdMonitorConfig, "config")
	err := json.NewDecoder(cfg).Decode(&mc)
	cfg.Close()
	if err != nil {
		report(monitorStatus{Code: ExitSetup, Error: "monitor: read config: " + err.Error()})
		return &reported{ExitSetup}
	}
	c, err := state.Adopt(mc.Dir, os.NewFile(fdMonitorLock, "lock"))
	if err != nil {
		report(monitorStatus{Code: ExitSetup, Error: "monitor: " + err.Error()})
		return &reported{ExitSetup}
	}
	logw := newCappedLog(mc.Dir, LogCap)
	defer logw.Close()
	c.Update(func(r *state.Record) { r.RunnerPID = os.Getpid() })

	o := mc.Options
	o.Logger = NewLogger(logw, mc.LogLevel)
	o.Record = c
	stdio, release, err := monitorStdio(o.PassStdio, logw)
	if err != nil {
		c.Remove()
		report(monitorStatus{Code: ExitSetup, Error: "monitor: " + err.Error()})
		return &reported{ExitSetup}
	}
	o.Stdio = stdio
	base := fdMonitorStdio
	if o.PassStdio {
		base += 3
	}
	for i := range o.Preserved {
		o.ExtraFiles = append(o.ExtraFiles, os.NewFile(uintptr(base+i), "preserved"))
	}
	o.OnStarted = func() { report(monitorStatus{}) }
	o.OnCreated = func() { report(monitorStatus{}) } // oci create returns once created
	code, err := Run(o)
	if err != nil {
		code = ExitSetup
		var ec interface{ ExitCode() int }
		if errors.As(err, &ec) {
			code = ec.ExitCode()
		}
		if status != nil {
			report(monitorStatus{Code: code, Error: err.Error()})
		} else {
			fmt.Fprintf(logw, "isobox: %v\n", err)
		}
	}
	release()
	// The container's status, for whoever reaps the monitor: the
	// subreaper it was reparented to (containerd's shim), say.
	return &reported{code}
}

// monitorStdio are the container's standard streams under the monitor:
// those of the command that started it (passed), or /dev/null and a pipe
// the monitor copies into the log, since a file given to the container
// directly could not be capped. release ends the copy once the container
// is gone.
func monitorStdio(passed bool, logw io.Writer) (stdio [3]*os.File, release func(), err error) {
	if passed {
		for i := range stdio {
			stdio[i] = os.NewFile(uintptr(fdMonitorStdio+i), "stdio")
		}
		return stdio, func() {}, nil
	}
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		return stdio, nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		devNull.Close()
		return stdio, nil, err
	}
	copied := make(chan struct{})
	go func() {
		io.Copy(logw, outR)
		close(copied)
	}()
	return [3]*os.File{devNull, outW, outW}, func() {
		// Every process that had the pipe is gone with the container; a
		// straggler holding it does not keep the monitor, and the lock,
		// alive.
		outW.Close()
		select {
		case <-copied:
		case <-time.After(2 * time.Second):
		}
	}, nil
}

// cappedLog appends to the record's log, rotating it at the cap. Writes
// after the record was removed (--rm) go to the unlinked file: harmless.
type cappedLog struct {
	mu        sync.Mutex
	dir       string
	cap, size int64
	f         *os.File
}

func newCappedLog(dir string, cap int64) *cappedLog {
	return &cappedLog{dir: dir, cap: cap}
}

func (l *cappedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for len(p) > 0 {
		if l.f == nil || l.size >= l.cap {
			if err := l.rotate(); err != nil {
				return n, err
			}
		}
		chunk := p
		if room := l.cap - l.size; int64(len(chunk)) > room {
			chunk = chunk[:room]
		}
		w, err := l.f.Write(chunk)
		n += w
		l.size += int64(w)
		if err != nil {
			return n, err
		}
		p = p[w:]
	}
	return n, nil
}

func (l *cappedLog) rotate() error {
	cur := filepath.Join(l.dir, state.LogFile)
	if l.f != nil {
		l.f.Close()
		l.f = nil
		os.Rename(cur, filepath.Join(l.dir, state.OldLogFile))
	}
	f, err := os.OpenFile(cur, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	l.f, l.size = f, st.Size()
	return nil
}

func (l *cappedLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	return l.f.Close()
}
