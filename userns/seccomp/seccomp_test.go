package seccomp

import (
	"encoding/json"
	"os"
	"os/exec"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

var podmanCaps = []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID", "CAP_SYS_CHROOT"}

func TestDefaultCompilesAndDependsOnCapabilities(t *testing.T) {
	plain, err := Default(podmanCaps)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := Default(append(podmanCaps, "CAP_SYS_ADMIN"))
	if err != nil {
		t.Fatal(err)
	}
	if len(plain) < 100 || len(plain) >= 4096 || len(admin) == len(plain) {
		t.Fatalf("default program: %d instructions, %d with CAP_SYS_ADMIN", len(plain), len(admin))
	}
}

func TestLoadRefusesWhatItCannotCompile(t *testing.T) {
	for name, profile := range map[string]string{
		"not json":       `{`,
		"empty":          `{}`,
		"unknown action": `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["getcwd"],"action":"SCMP_ACT_NOTIFY"}]}`,
		"bad errno":      `{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":70000,"syscalls":[{"names":["getcwd"],"action":"SCMP_ACT_ALLOW"}]}`,
		"bad operator":   `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["getcwd"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":1,"op":"SCMP_CMP_NOPE"}]}]}`,
		"bad index":      `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["getcwd"],"action":"SCMP_ACT_ERRNO","args":[{"index":6,"value":1,"op":"SCMP_CMP_EQ"}]}]}`,
	} {
		if _, err := Load([]byte(profile), podmanCaps); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := Load([]byte(`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdirat","mkdir","no_such_call"],"action":"SCMP_ACT_ERRNO","errnoRet":13}]}`), podmanCaps); err != nil {
		t.Errorf("a profile in Docker's format: %v", err)
	}
}

// The filter is installed in a child (this test binary again), since it
// cannot be taken off.
func TestInstalledDefaultBlocksWhatDockerBlocks(t *testing.T) {
	if os.Getenv("SECCOMP_TEST_CHILD") == "1" {
		runtime.LockOSThread()
		p, err := Load([]byte(os.Getenv("SECCOMP_TEST_PROFILE")), podmanCaps)
		if os.Getenv("SECCOMP_TEST_PROFILE") == "" {
			p, err = Default(podmanCaps)
		}
		if err != nil {
			t.Fatal(err)
		}
		unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
		if err := Install(p); err != nil {
			t.Fatal(err)
		}
		_, err = unix.AddKey("user", "seccomp-test", []byte("x"), unix.KEY_SPEC_PROCESS_KEYRING)
		t.Logf("add_key: %v", err)
		t.Logf("unshare: %v", unix.Unshare(unix.CLONE_NEWUSER))
		_, err = unix.Getcwd(make([]byte, 256))
		t.Logf("getcwd: %v", err)
		return
	}
	run := func(profile string) string {
		cmd := exec.Command(os.Args[0], "-test.run=^TestInstalledDefaultBlocksWhatDockerBlocks$", "-test.v")
		cmd.Env = append(os.Environ(), "SECCOMP_TEST_CHILD=1", "SECCOMP_TEST_PROFILE="+profile)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("child: %v\n%s", err, out)
		}
		return string(out)
	}
	out := run("")
	for _, want := range []string{"add_key: operation not permitted", "unshare: operation not permitted", "getcwd: <nil>"} {
		if !strings.Contains(out, want) {
			t.Errorf("default profile: want %q in:\n%s", want, out)
		}
	}
	out = run(`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["getcwd"],"action":"SCMP_ACT_ERRNO","errnoRet":13}]}`)
	if !strings.Contains(out, "getcwd: permission denied") || strings.Contains(out, "add_key: operation not permitted") {
		t.Errorf("custom profile:\n%s", out)
	}
}

// FuzzLoad: any profile text is compiled or refused, never a panic, and a
// compiled program fits the kernel's limit.
func FuzzLoad(f *testing.F) {
	f.Add(`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO","errnoRet":13}]}`)
	f.Add(`{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read","write"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":2,"op":"SCMP_CMP_LE"}]}]}`)
	f.Add(`{"defaultAction":"SCMP_ACT_ERRNO","archMap":[{"architecture":"SCMP_ARCH_X86_64","subArchitectures":["SCMP_ARCH_X86"]}],"syscalls":[{"names":["clone"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":2114060288,"valueTwo":0,"op":"SCMP_CMP_MASKED_EQ"}],"includes":{"caps":["CAP_SYS_ADMIN"]}}]}`)
	f.Add(`{"defaultAction":"SCMP_ACT_KILL_PROCESS","syscalls":[]}`)
	f.Fuzz(func(t *testing.T, profile string) {
		p, err := Load([]byte(profile), podmanCaps)
		if err == nil && len(p) > 4096 {
			t.Fatalf("%d instructions: over BPF_MAXINSNS", len(p))
		}
	})
}

func TestProgramSurvivesJSON(t *testing.T) {
	p, err := Default(podmanCaps)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var q Program
	if err := json.Unmarshal(b, &q); err != nil || !reflect.DeepEqual(p, q) {
		t.Fatalf("round trip: %v", err)
	}
	if err := json.Unmarshal([]byte(`"AAEC"`), &q); err == nil {
		t.Fatal("accepted a partial instruction")
	}
}
