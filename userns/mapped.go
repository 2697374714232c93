package userns

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/term"

	"github.com/isobox/isobox/idmap"
	"github.com/isobox/isobox/rootfs"
)

// Some work on a rootfs needs root of a user namespace with the
// container's mapping: unpacking an archive whose files belong to uid
// 0..65535 (they land on the caller and its subordinate ids), or removing
// a tree owned by subordinate ids, which the caller cannot delete. Those
// are isobox's own tasks, run in-process by stageMapped once the maps are
// written, instead of exec'ing a host command as `isobox unshare` does.
var mappedTasks = map[string]func(args []string) error{
	"import": importTask,
	"remove": removeTask,
}

// RegisterMappedTask adds a task that only another binary of isobox's
// links (isobox-image's "unpack", whose decoders would cost every isobox
// process their package initialization). Call it from main, before
// MaybeRunStage: the stage is that binary re-executed.
func RegisterMappedTask(name string, task func(args []string) error) {
	mappedTasks[name] = task
}

// MappedTaskOptions is a task to run as root of a mapped user namespace.
type MappedTaskOptions struct {
	Task   string
	Args   []string
	Stdin  *os.File // nil for the caller's
	Map    idmap.Mode
	Logger *slog.Logger
}

// RunMappedTask runs the task in a new user namespace with the mapping
// `run` would use, and returns when it is done.
func RunMappedTask(o MappedTaskOptions) error {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	plan, err := PlanMapping(o.Map)
	if err != nil {
		return setupError(err)
	}
	if plan.Fallback != nil {
		log.Warn("mapping only root to the caller: "+plan.Fallback.Error(), "stage", "parent")
	}
	stdio := stdStreams()
	if o.Stdin != nil {
		stdio[0] = o.Stdin
	}
	// The caller's environment: PATH, for xz and zstd.
	h, err := startHolder(stageMapped, os.Environ(), stdio, callers)
	if err != nil {
		return setupError(err)
	}
	defer h.kill()
	if _, _, err := h.ch.expect(MsgReady); err != nil {
		return setupError(err)
	}
	if err := idmap.Apply(h.cmd.Process.Pid, plan); err != nil {
		return setupError(fmt.Errorf("write id maps: %w", err))
	}
	if err := h.ch.send(Message{Kind: MsgMapsWritten, Holder: &HolderConfig{Task: o.Task, TaskArgs: o.Args}}); err != nil {
		return setupError(err)
	}
	if _, _, err := h.ch.expect(); !errors.Is(err, errHungUp) {
		return stageError(err)
	}
	h.wait()
	if ws := h.cmd.ProcessState.Sys().(syscall.WaitStatus); ws.Signaled() || ws.ExitStatus() != 0 {
		return setupError(fmt.Errorf("%s: %v", o.Task, h.cmd.ProcessState))
	}
	return nil
}

// mappedMain is stageMapped.
func mappedMain() error {
	ch, m, err := awaitMaps()
	if err != nil {
		return err
	}
	if m.Holder == nil {
		return errors.New("protocol: maps-written without a task")
	}
	task, ok := mappedTasks[m.Holder.Task]
	if !ok {
		return ch.fail(ExitSetup, fmt.Errorf("protocol: unknown task %q", m.Holder.Task))
	}
	if err := task(m.Holder.TaskArgs); err != nil {
		return ch.fail(ExitSetup, err)
	}
	return nil
}

// importTask unpacks stdin into args[0]. An archive refused halfway
// (an unsafe entry, a read error) leaves the directory empty again.
func importTask(args []string) error {
	if len(args) != 1 {
		return errors.New("protocol: import takes one directory")
	}
	dir := args[0]
	p := newProgress(os.Stderr)
	st, err := rootfs.Extract(os.Stdin, rootfs.ExtractOptions{Dir: dir, Owners: true, Progress: p.update})
	p.done()
	if err != nil {
		if cerr := emptyDir(dir); cerr != nil {
			return fmt.Errorf("%w (and cleaning up: %v)", err, cerr)
		}
		return err
	}
	// Marked here, as root of the namespace: the archive's own "./" may
	// have given the directory a subordinate owner.
	if err := rootfs.Mark(dir, "import"); err != nil {
		return fmt.Errorf("mark %s: %w", dir, err)
	}
	var notes []string
	if st.Devices > 0 {
		notes = append(notes, fmt.Sprintf("%d device nodes left out (a user namespace cannot create them; the container gets /dev from isobox)", st.Devices))
	}
	if st.Xattrs > 0 {
		notes = append(notes, fmt.Sprintf("%d extended attributes the kernel refused here", st.Xattrs))
	}
	if st.Unmapped > 0 {
		notes = append(notes, fmt.Sprintf("%d entries owned by ids outside the mapping, left to you", st.Unmapped))
	}
	for _, n := range notes {
		fmt.Fprintf(os.Stderr, "isobox: warning: %s\n", n)
	}
	return nil
}

// emptyDir removes everything inside dir.
func emptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(dir + "/" + e.Name()); err != nil {
			return err
		}
	}
	return nil
}

func removeTask(args []string) error {
	for _, d := range args {
		if err := os.RemoveAll(d); err != nil {
			return err
		}
	}
	return nil
}

// progress shows how much of an archive was read, on a terminal only, and
// only for archives that take more than a moment.
type progress struct {
	w       *os.File
	tty     bool
	start   time.Time
	mu      sync.Mutex
	last    time.Time
	n       int64
	printed bool
}

func newProgress(w *os.File) *progress {
	return &progress{w: w, tty: term.IsTerminal(int(w.Fd())), start: time.Now()}
}

func (p *progress) update(n int64) {
	if !p.tty {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n = n
	now := time.Now()
	if now.Sub(p.start) < time.Second || now.Sub(p.last) < 200*time.Millisecond {
		return
	}
	p.last = now
	p.print(now)
}

func (p *progress) print(now time.Time) {
	secs := now.Sub(p.start).Seconds()
	fmt.Fprintf(p.w, "\risobox: import: %.1f MiB read, %.1f MiB/s   ", float64(p.n)/(1<<20), float64(p.n)/(1<<20)/secs)
	p.printed = true
}

func (p *progress) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.printed {
		p.print(time.Now())
		fmt.Fprintln(p.w)
	}
}
