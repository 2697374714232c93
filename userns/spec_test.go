package userns

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

func TestValidateHostname(t *testing.T) {
	for _, ok := range []string{"isobox", "a", "web-1", "box.example", strings.Repeat("a", 63), strings.Repeat("a.", 31) + "a"} {
		if err := ValidateHostname(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "with space", "a/b", "-a", "a-", "a..b", strings.Repeat("a", 65), "ñ", "a_b"} {
		if err := ValidateHostname(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestParseTimeOffsets(t *testing.T) {
	got, err := ParseTimeOffsets("monotonic=86400,boottime=-5")
	if err != nil || got != (TimeOffsets{Monotonic: 86400, Boottime: -5}) {
		t.Fatalf("got %+v %v", got, err)
	}
	for _, bad := range []string{"monotonic", "realtime=1", "boottime=1.5", "boottime=1,boottime=2", "boottime=", ","} {
		if _, err := ParseTimeOffsets(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestParseUserSpec(t *testing.T) {
	if u, err := ParseUserSpec("1000:100"); err != nil || u != (UserSpec{"1000", "100"}) {
		t.Fatalf("%+v %v", u, err)
	}
	if u, err := ParseUserSpec("nobody"); err != nil || u != (UserSpec{"nobody", ""}) {
		t.Fatalf("%+v %v", u, err)
	}
	for _, bad := range []string{"", ":1", "1:", "1:2:3", "a b"} {
		if _, err := ParseUserSpec(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, ok := ParseID("4294967295"); ok {
		t.Error("the kernel's 'no id' accepted")
	}
}

func lookup(k string) (string, bool) {
	if k == "FROM_HOST" {
		return "yes", true
	}
	return "", false
}

func TestParseEnvArg(t *testing.T) {
	for in, want := range map[string]string{"A=1": "A=1", "A=": "A=", "A=b=c": "A=b=c", "FROM_HOST": "FROM_HOST=yes"} {
		got, ok, err := ParseEnvArg(in, lookup)
		if err != nil || !ok || got != want {
			t.Errorf("%q: %q %v %v", in, got, ok, err)
		}
	}
	if _, ok, err := ParseEnvArg("UNSET", lookup); ok || err != nil {
		t.Errorf("unset host variable: %v %v", ok, err)
	}
	for _, bad := range []string{"=1", "A B=1", ""} {
		if _, _, err := ParseEnvArg(bad, lookup); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestParseEnvFile(t *testing.T) {
	got, err := ParseEnvFile(strings.NewReader("# c\n\nA=1\n  B=\"q\"\nFROM_HOST\nUNSET\n"), "f", lookup)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"A=1", `B="q"`, "FROM_HOST=yes"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q", got)
	}
	if _, err := ParseEnvFile(strings.NewReader("A=1\nB C=2\n"), "f", lookup); err == nil || !strings.Contains(err.Error(), "f:2") {
		t.Fatalf("bad line not reported with its number: %v", err)
	}
}

func TestBuildEnvIsCleanAndLaterWins(t *testing.T) {
	got := BuildEnv("box", "/root", "xterm", []string{"A=1", "PATH=/bin", "A=2"})
	want := []string{"PATH=/bin", "HOSTNAME=box", "HOME=/root", "TERM=xterm", "A=2"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q", got)
	}
}

func FuzzParseTimeOffsets(f *testing.F) {
	f.Add("monotonic=1,boottime=2")
	f.Fuzz(func(t *testing.T, s string) { ParseTimeOffsets(s) })
}

func FuzzParseEnvFile(f *testing.F) {
	f.Add("A=1\n#x\nB\n")
	f.Fuzz(func(t *testing.T, s string) {
		env, err := ParseEnvFile(strings.NewReader(s), "f", lookup)
		if err != nil {
			return
		}
		for _, kv := range env {
			if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
				t.Fatalf("bad entry %q", kv)
			}
		}
	})
}

func TestMappedFromZero(t *testing.T) {
	dir := t.TempDir()
	for text, want := range map[string]uint32{
		"         0       1004          1\n         1     231072      65536\n": 65536,
		"         0       1004          1\n":                                   0,
		"         1     231072      65536\n         0       1004          1\n": 65536,
		"         0       1004          1\n         5     231072      10\n":    0,
		"": 0,
	} {
		p := dir + "/map"
		os.WriteFile(p, []byte(text), 0o644)
		if got := mappedFromZero(p); got != want {
			t.Errorf("mappedFromZero(%q) = %d, want %d", text, got, want)
		}
	}
}
