package userns

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestExecErrorSaysWhatEachFailureMeans(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code int
		want string
	}{
		{unix.ENOENT, ExitNotFound, "tool: no such file or directory"},
		{unix.EACCES, ExitCannotExec, "tool: permission denied"},
		{unix.EAGAIN, ExitCannotExec, "tool: fork: resource temporarily unavailable: the container's pids limit, or your user's process limit (ulimit -u), is reached"},
	} {
		code, err := execError("tool", tc.err)
		if code != tc.code || err.Error() != tc.want {
			t.Errorf("%v: got %d %q, want %d %q", tc.err, code, err, tc.code, tc.want)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: more than one line", tc.err)
		}
	}
}
