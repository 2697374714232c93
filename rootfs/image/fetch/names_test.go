package fetch

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const conf = `
unqualified-search-registries = ["mirror.example:5000", "docker.io"]

[[registry]]
prefix = "docker.io"
location = "docker.io"
[[registry.mirror]]
location = "127.0.0.1:5000/hub"
insecure = true

[[registry]]
location = "old.example"
blocked = true
`

func TestResolveShortNamesMirrorsAndBlocked(t *testing.T) {
	c, err := ParseRegistries(strings.NewReader(conf))
	if err != nil {
		t.Fatal(err)
	}
	cands, err := c.Resolve("alpine", true)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, cand := range cands {
		names = append(names, cand.Name)
	}
	if want := []string{"mirror.example:5000/alpine:latest", "docker.io/library/alpine:latest"}; !reflect.DeepEqual(names, want) {
		t.Errorf("short name: %v, want %v", names, want)
	}
	hub := cands[1].Sources
	if len(hub) != 2 || hub[0].Ref.String() != "127.0.0.1:5000/hub/library/alpine:latest" || !hub[0].Insecure || hub[1].Insecure {
		t.Errorf("docker.io's sources: %+v", hub)
	}
	if _, err := c.Resolve("old.example/x", true); err == nil || !strings.Contains(err.Error(), "blocked") {
		t.Errorf("blocked registry: %v", err)
	}
	for _, bad := range []string{"", "UPPER/case", "a b", "x@sha256:12"} {
		if _, err := c.Resolve(bad, true); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
}

func TestResolveWithoutConfigMeansDockerHub(t *testing.T) {
	cands, err := (&Registries{}).Resolve("library/busybox:1.36", true)
	if err != nil || len(cands) != 1 || cands[0].Name != "docker.io/library/busybox:1.36" {
		t.Errorf("%+v %v", cands, err)
	}
	cands, err = (&Registries{}).Resolve("127.0.0.1:5000/x/y@sha256:"+strings.Repeat("a", 64), true)
	if err != nil || cands[0].Name != "127.0.0.1:5000/x/y@sha256:"+strings.Repeat("a", 64) {
		t.Errorf("%+v %v", cands, err)
	}
}

func TestAuthFileIsNeverAnotherUsersRuntimeDir(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", "")
	t.Setenv("REGISTRY_AUTH_FILE", "")
	// Another user's runtime directory, as after `su -`: root's (/) for
	// an ordinary user, nobody's for root.
	theirs := "/"
	if os.Getuid() == 0 {
		theirs = t.TempDir()
		if err := os.Chown(theirs, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("XDG_RUNTIME_DIR", theirs)
	p, err := AuthFile()
	if err != nil || p != filepath.Join(home, ".config/containers/auth.json") {
		t.Errorf("with XDG_RUNTIME_DIR=%s (not ours): %q %v", theirs, p, err)
	}
	rt := t.TempDir()
	t.Setenv("XDG_RUNTIME_DIR", rt)
	if p, _ := AuthFile(); p != filepath.Join(rt, "containers/auth.json") {
		t.Errorf("with our own XDG_RUNTIME_DIR: %q", p)
	}
	if _, err := saveLogin("127.0.0.1:5000", "u", "p"); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(rt, "containers/auth.json"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("auth file: %v %v", st, err)
	}
	auth, err := podmanKeychain{}.Resolve(regResource("127.0.0.1:5000"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := auth.Authorization()
	if cfg.Auth != "dTpw" {
		t.Errorf("keychain read %+v", cfg)
	}
	if found, err := Logout("127.0.0.1:5000"); !found || err != nil {
		t.Errorf("logout: %v %v", found, err)
	}
}

type regResource string

func (r regResource) String() string      { return string(r) }
func (r regResource) RegistryStr() string { return string(r) }
