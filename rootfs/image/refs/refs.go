// Package refs says what an image reference means, as podman does: a short
// name through registries.conf's unqualified-search-registries (docker.io
// when there are none), a registry's mirrors and insecure flag, and the name
// the store keeps ("docker.io/library/alpine:latest"). References are
// parsed by go-containerregistry's name package. It reads files and
// decides; it fetches nothing.
package refs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/google/go-containerregistry/pkg/name"
)

// ErrBadReference: the text is no image reference.
var ErrBadReference = errors.New("invalid image reference")

// Registries is what isobox reads of containers-registries.conf(5), v2.
type Registries struct {
	UnqualifiedSearch []string   `toml:"unqualified-search-registries"`
	Registry          []Registry `toml:"registry"`
}

// Registry is one [[registry]] table.
type Registry struct {
	Prefix   string   `toml:"prefix"`
	Location string   `toml:"location"`
	Insecure bool     `toml:"insecure"`
	Blocked  bool     `toml:"blocked"`
	Mirrors  []Mirror `toml:"mirror"`
}

// Mirror is one [[registry.mirror]].
type Mirror struct {
	Location string `toml:"location"`
	Insecure bool   `toml:"insecure"`
}

// ParseRegistries reads registries.conf.
func ParseRegistries(r io.Reader) (*Registries, error) {
	var c Registries
	if _, err := toml.NewDecoder(r).Decode(&c); err != nil {
		return nil, err
	}
	for i := range c.Registry {
		reg := &c.Registry[i]
		if reg.Prefix == "" {
			reg.Prefix = reg.Location
		}
		if reg.Prefix == "" {
			return nil, fmt.Errorf("[[registry]] %d: neither prefix nor location", i+1)
		}
	}
	return &c, nil
}

// LoadRegistries reads the caller's registries.conf as podman does:
// ~/.config/containers/registries.conf ($XDG_CONFIG_HOME) when it exists,
// else /etc/containers/registries.conf; none at all is Docker's default
// (docker.io for short names).
func LoadRegistries() (*Registries, error) {
	var files []string
	if cfg, err := os.UserConfigDir(); err == nil {
		files = append(files, filepath.Join(cfg, "containers", "registries.conf"))
	}
	files = append(files, "/etc/containers/registries.conf")
	for _, f := range files {
		fh, err := os.Open(f)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		c, err := ParseRegistries(fh)
		fh.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		return c, nil
	}
	return &Registries{}, nil
}

// Candidate is one name a reference may mean, and where to fetch it from.
type Candidate struct {
	// Name is what the store keeps: "docker.io/library/alpine:latest".
	Name string
	// Sources are tried in order: the registry's mirrors, then itself.
	Sources []Source
}

// Source is a place to fetch a candidate from.
type Source struct {
	Ref      name.Reference
	Insecure bool // plain HTTP or an unverified certificate allowed
}

// Registry is the host (and port) of the source.
func (s Source) Registry() string { return s.Ref.Context().RegistryStr() }

// qualified reports whether a reference names its registry: its first
// component has a dot or a port, or is localhost (Docker's rule).
func qualified(ref string) bool {
	first, _, found := strings.Cut(ref, "/")
	return found && (strings.ContainsAny(first, ".:") || first == "localhost")
}

// Resolve lists what ref may mean, in the order to try: a qualified
// reference means itself; a short name one candidate for each of the
// unqualified-search-registries (docker.io when there are none).
func (c *Registries) Resolve(ref string, tlsVerify bool) ([]Candidate, error) {
	if ref == "" || strings.TrimSpace(ref) != ref {
		return nil, fmt.Errorf("%q: %w", ref, ErrBadReference)
	}
	full := []string{ref}
	if !qualified(ref) {
		search := c.UnqualifiedSearch
		if len(search) == 0 {
			search = []string{"docker.io"}
		}
		full = full[:0]
		for _, r := range search {
			full = append(full, r+"/"+ref)
		}
	}
	var out []Candidate
	for _, f := range full {
		parsed, err := name.ParseReference(f, name.WithDefaultRegistry(""))
		if err != nil {
			return nil, fmt.Errorf("%q: %w: %v", ref, ErrBadReference, err)
		}
		cand := Candidate{Name: StoreName(parsed)}
		srcs, err := c.sources(parsed, cand.Name, tlsVerify)
		if err != nil {
			return nil, err
		}
		cand.Sources = srcs
		out = append(out, cand)
	}
	return out, nil
}

// sources applies the [[registry]] whose prefix matches storeName the
// longest: its mirrors first, then its location (prefix rewritten).
func (c *Registries) sources(ref name.Reference, storeName string, tlsVerify bool) ([]Source, error) {
	var match *Registry
	for i := range c.Registry {
		r := &c.Registry[i]
		p := NormalizeHost(r.Prefix)
		if storeName == p || strings.HasPrefix(storeName, p+"/") || strings.HasPrefix(storeName, p+":") || strings.HasPrefix(storeName, p+"@") {
			if match == nil || len(p) > len(NormalizeHost(match.Prefix)) {
				match = r
			}
		}
	}
	if match == nil {
		return []Source{{Ref: ref, Insecure: !tlsVerify}}, nil
	}
	if match.Blocked {
		return nil, fmt.Errorf("%s: blocked by registries.conf ([[registry]] prefix %q)", storeName, match.Prefix)
	}
	rest := strings.TrimPrefix(storeName, NormalizeHost(match.Prefix))
	var out []Source
	add := func(location string, insecure bool) error {
		if location == "" {
			return nil
		}
		opts := []name.Option{name.WithDefaultRegistry("")}
		if insecure || !tlsVerify {
			opts = append(opts, name.Insecure)
		}
		r, err := name.ParseReference(location+rest, opts...)
		if err != nil {
			return fmt.Errorf("registries.conf: %s%s: %w", location, rest, err)
		}
		out = append(out, Source{Ref: r, Insecure: insecure || !tlsVerify})
		return nil
	}
	for _, m := range match.Mirrors {
		if err := add(m.Location, m.Insecure); err != nil {
			return nil, err
		}
	}
	loc := match.Location
	if loc == "" {
		loc = match.Prefix
	}
	if err := add(loc, match.Insecure); err != nil {
		return nil, err
	}
	return out, nil
}

// StoreName spells a reference as podman lists it: docker.io, not
// index.docker.io.
func StoreName(r name.Reference) string {
	repo := NormalizeHost(r.Context().RegistryStr()) + "/" + r.Context().RepositoryStr()
	switch t := r.(type) {
	case name.Tag:
		return repo + ":" + t.TagStr()
	case name.Digest:
		return repo + "@" + t.DigestStr()
	}
	return r.Name()
}

func NormalizeHost(h string) string {
	if h == name.DefaultRegistry || h == "registry-1.docker.io" {
		return "docker.io"
	}
	return h
}
