package fetch

import (
	"os"
	"path/filepath"
	"testing"
)

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
