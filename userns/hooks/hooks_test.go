package hooks

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunGivesEachHookTheStateArgsAndEnvInOrder(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	list := []Hook{
		{Path: "/bin/sh", Args: []string{"sh", "-c", "cat > " + out + ".1; echo $X >> " + out}, Env: []string{"X=first"}},
		{Path: "/bin/sh", Args: []string{"sh", "-c", "echo second >> " + out}},
	}
	st := State{OCIVersion: "1.0.2", ID: "box", Status: "creating", Pid: 42, Bundle: "/b", Annotations: map[string]string{"a": "b"}}
	if err := Run("prestart", list, st); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(out)
	if string(b) != "first\nsecond\n" {
		t.Errorf("order and env: %q", b)
	}
	var got State
	b, _ = os.ReadFile(out + ".1")
	if err := json.Unmarshal(b, &got); err != nil || got.ID != "box" || got.Pid != 42 || got.Status != "creating" || got.Annotations["a"] != "b" {
		t.Errorf("the state on stdin: %s (%v)", b, err)
	}
}

func TestRunStopsAtAFailureAndNamesIt(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "ran")
	list := []Hook{
		{Path: "/bin/sh", Args: []string{"sh", "-c", "echo no good >&2; exit 3"}},
		{Path: "/bin/sh", Args: []string{"sh", "-c", "touch " + marker}},
	}
	err := Run("createRuntime", list, State{})
	if err == nil || !strings.Contains(err.Error(), "hooks.createRuntime[0] /bin/sh") || !strings.Contains(err.Error(), "no good") {
		t.Errorf("error: %v", err)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the hook after the failed one ran")
	}
}

func TestRunKillsAHookAtItsTimeout(t *testing.T) {
	// Run returns with the deadline's error only once the sleep is gone:
	// killed, since it would have slept 30 s.
	err := Run("poststart", []Hook{{Path: "/bin/sleep", Args: []string{"sleep", "30"}, Timeout: 1}}, State{})
	if err == nil || !strings.Contains(err.Error(), "timed out after 1 s") {
		t.Errorf("error: %v", err)
	}
}

func TestAHookThatIgnoresItsStdinGivesNoSIGPIPE(t *testing.T) {
	// A large state the hook never reads: written to a pipe, its writer
	// would get EPIPE (and, in init, SIGPIPE passed to the command).
	st := State{Annotations: map[string]string{"big": strings.Repeat("x", 1<<20)}}
	if err := Run("startContainer", []Hook{{Path: "/bin/true"}}, st); err != nil {
		t.Error(err)
	}
}
