package userns

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/isobox/isobox/userns/state"
)

// CopyLog writes a detached container's log to w: the previous part, then
// the current one. With follow it goes on as the container writes, across
// rotations, until the container's runner is gone.
func CopyLog(w io.Writer, i state.Info, follow bool) error {
	cur := filepath.Join(i.Dir, state.LogFile)
	if old, err := os.Open(filepath.Join(i.Dir, state.OldLogFile)); err == nil {
		_, err = io.Copy(w, old)
		old.Close()
		if err != nil {
			return err
		}
	}
	f, err := openLog(cur)
	if err != nil {
		return err
	}
	defer func() { f.Close() }()
	for {
		if _, err := io.Copy(w, f); err != nil {
			return err
		}
		if !follow {
			return nil
		}
		// The monitor rotated the log: finish the part still open, then
		// the one rotated after it if the open one is no longer the
		// previous part (two rotations between looks), then go on with
		// the new one. More rotations than that between two looks lose
		// what the cap already dropped.
		if rotated(f, cur) {
			if _, err := io.Copy(w, f); err != nil {
				return err
			}
			old := filepath.Join(i.Dir, state.OldLogFile)
			if rotated(f, old) {
				if between, err := os.Open(old); err == nil {
					_, err = io.Copy(w, between)
					between.Close()
					if err != nil {
						return err
					}
				}
			}
			f.Close()
			if f, err = openLog(cur); err != nil {
				return err
			}
			continue
		}
		if !state.Locked(i.Dir) {
			_, err := io.Copy(w, f)
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// openLog opens the log, or an empty stand-in while the container has
// written nothing yet.
func openLog(p string) (*os.File, error) {
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return os.Open(os.DevNull)
	}
	return f, err
}

// rotated reports whether the name p now names another file than f (a
// name that names nothing counts as not rotated).
func rotated(f *os.File, p string) bool {
	var a, b unix.Stat_t
	if unix.Fstat(int(f.Fd()), &a) != nil || unix.Stat(p, &b) != nil {
		return false
	}
	return a.Ino != b.Ino || a.Dev != b.Dev
}
