package userns

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// NewLogger returns isobox's logger: one line per record on w, as
// "isobox: LEVEL: message key=value", quiet below level. A debug line also
// says when it was written and which stage wrote it ("isobox: debug:
// +12.3ms [parent] ..."), so that --log-level debug shows where start-up
// time goes; a warning meant for the user does neither.
func NewLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelWarn
	}
	return slog.New(&lineHandler{w: w, level: l, mu: &sync.Mutex{}, start: time.Now()})
}

type lineHandler struct {
	w     io.Writer
	level slog.Level
	attrs []slog.Attr
	mu    *sync.Mutex
	start time.Time // debug lines say how long after it they were written
}

func (h *lineHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

func (h *lineHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	level := strings.ToLower(r.Level.String())
	if r.Level == slog.LevelWarn {
		level = "warning"
	}
	fmt.Fprintf(&b, "isobox: %s: ", level)
	var rest []slog.Attr
	stage := ""
	add := func(a slog.Attr) bool {
		if a.Key == "stage" {
			stage = a.Value.String() // the innermost stage names the line
		} else {
			rest = append(rest, a)
		}
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	if r.Level < slog.LevelInfo {
		fmt.Fprintf(&b, "+%.1fms ", float64(r.Time.Sub(h.start).Microseconds())/1000)
		if stage != "" {
			fmt.Fprintf(&b, "[%s] ", stage)
		}
	}
	b.WriteString(r.Message)
	for _, a := range rest {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
	}
	b.WriteByte('\n')
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := io.WriteString(h.w, b.String())
	return err
}

func (h *lineHandler) WithAttrs(as []slog.Attr) slog.Handler {
	n := *h
	n.attrs = append(append([]slog.Attr{}, h.attrs...), as...)
	return &n
}

func (h *lineHandler) WithGroup(string) slog.Handler { return h }
