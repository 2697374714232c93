package fetch

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/isobox/isobox/rootfs/image"
	"github.com/isobox/isobox/rootfs/image/refs"
	"golang.org/x/sys/unix"
)

// AuthFile is where `isobox login` writes, podman's file: $REGISTRY_AUTH_FILE;
// else $XDG_RUNTIME_DIR/containers/auth.json when XDG_RUNTIME_DIR is the
// caller's own directory; else ~/.config/containers/auth.json (after
// `su -`, in a Slurm job, or under sudo, where XDG_RUNTIME_DIR is unset or
// another user's).
func AuthFile() (string, error) {
	if f := os.Getenv("REGISTRY_AUTH_FILE"); f != "" {
		return filepath.Abs(f)
	}
	if x := os.Getenv("XDG_RUNTIME_DIR"); filepath.IsAbs(x) && ownDir(x) {
		return filepath.Join(x, "containers", "auth.json"), nil
	}
	cfg, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("auth file: %w", err)
	}
	return filepath.Join(cfg, "containers", "auth.json"), nil
}

// authFiles are the podman files pulls read, in order.
func authFiles() []string {
	var out []string
	if f := os.Getenv("REGISTRY_AUTH_FILE"); f != "" {
		out = append(out, f)
	}
	if x := os.Getenv("XDG_RUNTIME_DIR"); filepath.IsAbs(x) && ownDir(x) {
		out = append(out, filepath.Join(x, "containers", "auth.json"))
	}
	if cfg, err := os.UserConfigDir(); err == nil {
		out = append(out, filepath.Join(cfg, "containers", "auth.json"))
	}
	return out
}

func ownDir(p string) bool {
	var st unix.Stat_t
	return unix.Stat(p, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR && int(st.Uid) == os.Getuid()
}

// authJSON is the shape podman and Docker share.
type authJSON struct {
	Auths map[string]authEntry `json:"auths"`
	// Everything else in the file (credHelpers, ...) is kept as it is.
	rest map[string]json.RawMessage
}

type authEntry struct {
	Auth string `json:"auth,omitempty"`
}

func readAuthFile(p string) (*authJSON, error) {
	a := &authJSON{Auths: map[string]authEntry{}, rest: map[string]json.RawMessage{}}
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return a, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &a.rest); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if raw, ok := a.rest["auths"]; ok {
		if err := json.Unmarshal(raw, &a.Auths); err != nil {
			return nil, fmt.Errorf("%s: auths: %w", p, err)
		}
		if a.Auths == nil {
			a.Auths = map[string]authEntry{}
		}
	}
	return a, nil
}

func (a *authJSON) write(p string) error {
	auths, err := json.Marshal(a.Auths)
	if err != nil {
		return err
	}
	a.rest["auths"] = auths
	b, err := json.MarshalIndent(a.rest, "", "\t")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	return image.WriteFileAtomic(p, append(b, '\n'), 0o600)
}

// authKeys are the keys a registry's entry may have: podman writes the
// host, Docker "https://index.docker.io/v1/" for Docker Hub.
func authKeys(registry string) []string {
	r := refs.NormalizeHost(registry)
	keys := []string{r, "https://" + r, "http://" + r}
	if r == "docker.io" {
		keys = append(keys, "index.docker.io", authn.DefaultAuthKey, "registry-1.docker.io")
	}
	return keys
}

// podmanKeychain reads podman's auth files.
type podmanKeychain struct{}

func (podmanKeychain) Resolve(res authn.Resource) (authn.Authenticator, error) {
	for _, f := range authFiles() {
		a, err := readAuthFile(f)
		if err != nil {
			return nil, err
		}
		for _, k := range authKeys(res.RegistryStr()) {
			if e, ok := a.Auths[k]; ok && e.Auth != "" {
				return authn.FromConfig(authn.AuthConfig{Auth: e.Auth}), nil
			}
		}
	}
	return authn.Anonymous, nil
}

// Keychain is what pulls authenticate with: podman's files, then Docker's
// ~/.docker/config.json with its credential helpers.
func Keychain() authn.Keychain {
	return authn.NewMultiKeychain(podmanKeychain{}, authn.DefaultKeychain)
}

// saveLogin stores user:password for registry in the auth file.
func saveLogin(registry, user, password string) (string, error) {
	p, err := AuthFile()
	if err != nil {
		return "", err
	}
	a, err := readAuthFile(p)
	if err != nil {
		return "", err
	}
	a.Auths[refs.NormalizeHost(registry)] = authEntry{Auth: base64.StdEncoding.EncodeToString([]byte(user + ":" + password))}
	return p, a.write(p)
}

// Logout removes registry's credentials from the auth file; it reports
// whether there were any.
func Logout(registry string) (bool, error) {
	p, err := AuthFile()
	if err != nil {
		return false, err
	}
	a, err := readAuthFile(p)
	if err != nil {
		return false, err
	}
	found := false
	for _, k := range authKeys(strings.TrimSuffix(registry, "/")) {
		if _, ok := a.Auths[k]; ok {
			delete(a.Auths, k)
			found = true
		}
	}
	if !found {
		return false, nil
	}
	return true, a.write(p)
}
