package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/isobox/isobox/userns"
	"github.com/isobox/isobox/userns/state"
)

// StatsCmd is `isobox stats`, podman's: a live table on a terminal, one
// sample in a pipe or with --no-stream.
type StatsCmd struct {
	NoStream bool     `name:"no-stream" help:"Print one sample and exit (the default when the output is not a terminal)."`
	JSON     bool     `name:"json" help:"Print a JSON array of samples (one, unless streaming on a terminal)."`
	Interval int      `short:"i" default:"1" placeholder:"SECONDS" help:"Seconds between samples when streaming."`
	Names    []string `predictor:"containers" arg:"" optional:"" placeholder:"NAME" help:"Containers (default every running one)."`
}

// statsEntry is one container's sample as --json prints it; a limit of 0
// is none.
type statsEntry struct {
	Name          string  `json:"name"`
	CPUPercent    float64 `json:"cpuPercent"`
	CPUSeconds    float64 `json:"cpuSeconds"`
	MemoryUsage   uint64  `json:"memoryUsage"`
	MemoryLimit   uint64  `json:"memoryLimit"`
	MemoryPercent float64 `json:"memoryPercent"`
	Pids          uint64  `json:"pids"`
	PidsLimit     uint64  `json:"pidsLimit"`
	BlockRead     uint64  `json:"blockRead"`
	BlockWrite    uint64  `json:"blockWrite"`
	NetRx         uint64  `json:"netRx"`
	NetTx         uint64  `json:"netTx"`
	OOMKills      uint64  `json:"oomKills"`
}

func (c *StatsCmd) Validate() error {
	if c.Interval < 1 {
		return errors.New("--interval: at least 1 second")
	}
	return nil
}

func (c *StatsCmd) Run() error {
	infos, err := c.containers()
	if err != nil {
		return err
	}
	if len(c.Names) == 0 {
		// Every running one with numbers of its own, found once.
		running := len(infos)
		if infos = withCgroup(infos); running > 0 && len(infos) == 0 {
			return fmt.Errorf("stats: none of your %d running containers has numbers: %w", running, userns.ErrNoCgroup)
		}
	}
	st, _ := os.Stdout.Stat()
	stream := !c.NoStream && st != nil && st.Mode()&os.ModeCharDevice != 0
	prev := map[string]userns.Usage{}
	sample := func() ([]statsEntry, error) {
		var out []statsEntry
		for _, i := range infos {
			u, err := userns.Sample(i)
			if err != nil {
				if len(c.Names) > 0 {
					return nil, err
				}
				continue // it exited while listed by default
			}
			out = append(out, entryOf(i, u, prev[i.Name]))
			prev[i.Name] = u
		}
		return out, nil
	}
	if !stream {
		out, err := sample()
		if err != nil {
			return err
		}
		return c.print(out, false)
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	tick := time.NewTicker(time.Duration(c.Interval) * time.Second)
	defer tick.Stop()
	for {
		out, err := sample()
		if err != nil {
			return err
		}
		if err := c.print(out, true); err != nil {
			return err
		}
		select {
		case <-stop:
			return nil
		case <-tick.C:
		}
	}
}

// withCgroup keeps the containers that have a cgroup of their own.
func withCgroup(infos []state.Info) []state.Info {
	var out []state.Info
	for _, i := range infos {
		if i.Cgroup != "" {
			out = append(out, i)
		}
	}
	return out
}

// containers are the named ones, which must be running, or every running
// one.
func (c *StatsCmd) containers() ([]state.Info, error) {
	if len(c.Names) == 0 {
		list, err := listAll()
		var running []state.Info
		for _, i := range list {
			if i.Running && i.PID > 0 {
				running = append(running, i)
			}
		}
		return running, err
	}
	var out []state.Info
	for _, n := range c.Names {
		_, i, err := lookup(n)
		if err != nil {
			return nil, err
		}
		if !i.Running || i.PID == 0 {
			return nil, fmt.Errorf("%q: %w", n, state.ErrNotRunning)
		}
		out = append(out, i)
	}
	return out, nil
}

// entryOf turns a sample into numbers: CPU % over the last interval, or
// over the container's life for the first sample (as podman's first): its
// cgroup was made when the record was.
func entryOf(i state.Info, u, prev userns.Usage) statsEntry {
	e := statsEntry{Name: i.Name, CPUSeconds: float64(u.CPUUsec) / 1e6, MemoryUsage: u.MemoryCurrent,
		MemoryLimit: u.MemoryMax, Pids: u.PidsCurrent, PidsLimit: u.PidsMax, BlockRead: u.IORead,
		BlockWrite: u.IOWrite, NetRx: u.NetRx, NetTx: u.NetTx, OOMKills: u.OOMKills}
	used, since := u.CPUUsec, i.Created
	if !prev.When.IsZero() {
		used, since = u.CPUUsec-prev.CPUUsec, prev.When
	}
	if d := u.When.Sub(since).Microseconds(); d > 0 {
		e.CPUPercent = round2(100 * float64(used) / float64(d))
	}
	limit := u.MemoryMax
	if limit == 0 {
		limit = hostMemory() // podman's percentage of an unlimited container
	}
	if limit > 0 {
		e.MemoryPercent = round2(100 * float64(u.MemoryCurrent) / float64(limit))
	}
	return e
}

func round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }

// hostMemory is MemTotal from /proc/meminfo, in bytes.
func hostMemory() uint64 {
	b, _ := os.ReadFile("/proc/meminfo")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func (c *StatsCmd) print(out []statsEntry, live bool) error {
	if out == nil {
		out = []statsEntry{}
	}
	if c.JSON {
		return printJSON(out)
	}
	if live {
		fmt.Print("\033[H\033[2J") // podman's refresh: home, clear
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tCPU %\tMEM USAGE / LIMIT\tMEM %\tNET IO\tBLOCK IO\tPIDS")
	for _, e := range out {
		limit, pids := "-", strconv.FormatUint(e.Pids, 10)
		if e.MemoryLimit > 0 {
			limit = humanSize(int64(e.MemoryLimit))
		}
		if e.PidsLimit > 0 {
			pids += " / " + strconv.FormatUint(e.PidsLimit, 10)
		}
		fmt.Fprintf(w, "%s\t%.2f%%\t%s / %s\t%.2f%%\t%s / %s\t%s / %s\t%s\n", e.Name, e.CPUPercent,
			humanSize(int64(e.MemoryUsage)), limit, e.MemoryPercent, humanSize(int64(e.NetRx)), humanSize(int64(e.NetTx)),
			humanSize(int64(e.BlockRead)), humanSize(int64(e.BlockWrite)), pids)
	}
	return w.Flush()
}
