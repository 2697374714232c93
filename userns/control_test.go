package userns

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/isobox/isobox/userns/state"
)

func TestParseSignal(t *testing.T) {
	for in, want := range map[string]unix.Signal{
		"KILL": unix.SIGKILL, "SIGTERM": unix.SIGTERM, "term": unix.SIGTERM, "usr1": unix.SIGUSR1, "9": unix.SIGKILL, "15": unix.SIGTERM,
	} {
		if got, err := ParseSignal(in); err != nil || got != want {
			t.Errorf("ParseSignal(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "0", "-1", "65", "NOPE", "SIG", "9x"} {
		if _, err := ParseSignal(bad); err == nil {
			t.Errorf("ParseSignal(%q) accepted", bad)
		}
	}
}

func TestCappedLogKeepsTheLatestOutputWithinTwoCaps(t *testing.T) {
	dir := t.TempDir()
	l := newCappedLog(dir, 100)
	var all []byte
	for i := 0; i < 37; i++ {
		chunk := bytes.Repeat([]byte{byte('a' + i%26)}, 7+i)
		all = append(all, chunk...)
		if n, err := l.Write(chunk); err != nil || n != len(chunk) {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	l.Close()
	old, _ := os.ReadFile(filepath.Join(dir, state.OldLogFile))
	cur, _ := os.ReadFile(filepath.Join(dir, state.LogFile))
	if len(old) != 100 || len(cur) > 100 || len(cur) == 0 {
		t.Fatalf("old %d bytes, current %d", len(old), len(cur))
	}
	kept := append(old, cur...)
	if !bytes.HasSuffix(all, kept) {
		t.Fatalf("the files are not the latest output")
	}
	var buf bytes.Buffer
	if err := CopyLog(&buf, state.Info{Dir: dir}, false); err != nil || !bytes.Equal(buf.Bytes(), kept) {
		t.Fatalf("CopyLog = %q, %v", buf.String(), err)
	}
}
