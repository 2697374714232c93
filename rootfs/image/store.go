package image

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

var (
	// ErrNotStored: no image of that name or ID is in the store.
	ErrNotStored = errors.New("image not known")
	// ErrAmbiguous: an ID prefix names more than one image.
	ErrAmbiguous = errors.New("more than one image matches")
	errBadStore  = errors.New("unsafe image store")
)

// Image is an image's record.
type Image struct {
	// ID is the config's digest, "sha256:HEX".
	ID string `json:"id"`
	// Names are the references it was stored under, "REGISTRY/REPO:TAG";
	// a name is on one image at a time.
	Names []string `json:"names,omitempty"`
	// Digests are "REGISTRY/REPO@sha256:..." of the manifests it came from.
	Digests []string `json:"digests,omitempty"`
	// Aliases are references as they were typed ("alpine") when they
	// resolved to this image, so that isobox finds it by them without
	// resolving names again; like names, each is on one image at a time.
	Aliases []string `json:"aliases,omitempty"`
	// Layers are bottom first.
	Layers   []Layer   `json:"layers"`
	Created  time.Time `json:"created,omitzero"` // from the config
	Stored   time.Time `json:"stored"`
	Platform string    `json:"platform,omitempty"`
}

// Layer is one of an image's layers.
type Layer struct {
	DiffID  string `json:"diffId"`  // digest of the uncompressed tar
	ChainID string `json:"chainId"` // the layer and everything under it
	Digest  string `json:"digest,omitempty"`
	// Size is the compressed size in the registry.
	Size int64 `json:"size,omitempty"`
}

// ShortID is the 12 hex digits `images` shows.
func (i Image) ShortID() string {
	h := Hex(i.ID)
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// Hex drops the "sha256:" of a digest.
func Hex(digest string) string {
	_, h, ok := strings.Cut(digest, ":")
	if !ok {
		return digest
	}
	return h
}

// ChainIDs computes the chain IDs of layers from their DiffIDs, bottom
// first: the first is its DiffID, each next one sha256("PARENT DIFFID"), as
// the OCI image spec defines.
func ChainIDs(diffIDs []string) []string {
	out := make([]string, len(diffIDs))
	for i, d := range diffIDs {
		if i == 0 {
			out[i] = d
			continue
		}
		sum := sha256.Sum256([]byte(out[i-1] + " " + d))
		out[i] = "sha256:" + hex.EncodeToString(sum[:])
	}
	return out
}

// Store is an open image store.
type Store struct{ root string }

// DefaultRoot is $XDG_DATA_HOME/isobox, or ~/.local/share/isobox.
func DefaultRoot() (string, error) {
	if x := os.Getenv("XDG_DATA_HOME"); filepath.IsAbs(x) {
		return filepath.Join(x, "isobox"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil || !filepath.IsAbs(home) {
		return "", errors.New("image store: neither XDG_DATA_HOME nor HOME is set to an absolute path")
	}
	return filepath.Join(home, ".local", "share", "isobox"), nil
}

// Open opens the caller's store, creating it (0700) if needed.
func Open() (*Store, error) {
	root, err := DefaultRoot()
	if err != nil {
		return nil, err
	}
	return OpenAt(root)
}

// OpenAt opens the store at root, creating it (0700) if needed; a store
// that is not the caller's, or open to others, is refused.
func OpenAt(root string) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(root), 0o700); err != nil {
		return nil, fmt.Errorf("image store: %w", err)
	}
	if err := os.Mkdir(root, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("image store: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(root, &st); err != nil {
		return nil, fmt.Errorf("image store: %w", &os.PathError{Op: "lstat", Path: root, Err: err})
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFDIR:
		return nil, fmt.Errorf("%w %s: not a directory", errBadStore, root)
	case int(st.Uid) != os.Getuid():
		return nil, fmt.Errorf("%w %s: owned by uid %d, not by you (uid %d); set XDG_DATA_HOME", errBadStore, root, st.Uid, os.Getuid())
	case st.Mode&0o077 != 0:
		return nil, fmt.Errorf("%w %s: mode %#o lets other users in; chmod 700 it", errBadStore, root, st.Mode&0o777)
	}
	for _, d := range []string{"images", "blobs/sha256", "layers", "locks"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			return nil, fmt.Errorf("image store: %w", err)
		}
	}
	return &Store{root: root}, nil
}

// OpenExisting opens a store that must already exist (one a bundle
// names): nothing is created.
func OpenExisting(root string) (*Store, error) {
	st, err := os.Lstat(filepath.Join(root, "images"))
	if err != nil || !st.IsDir() {
		return nil, fmt.Errorf("%w %s: no image store there", errBadStore, root)
	}
	return OpenAt(root)
}

// Root is the store's directory.
func (s *Store) Root() string { return s.root }

// LayerDir is where a layer is unpacked.
func (s *Store) LayerDir(chainID string) string {
	return filepath.Join(s.root, "layers", Hex(chainID))
}

// HasLayer reports whether a layer is unpacked and in place.
func (s *Store) HasLayer(chainID string) bool {
	st, err := os.Lstat(s.LayerDir(chainID))
	return err == nil && st.IsDir()
}

// BlobPath is where a blob of that digest is kept.
func (s *Store) BlobPath(digest string) string {
	return filepath.Join(s.root, "blobs", "sha256", Hex(digest))
}

// TempLayerDir makes layers/.tmp-CHAIN-RANDOM for a layer being unpacked,
// after removing what a killed pull left of the same layer: the caller
// holds the layer's lock. Renamed onto LayerDir once whole, it stays in
// the same directory, so the rename needs no write access to the layer's
// own root (which may belong to a subordinate id).
func (s *Store) TempLayerDir(chainID string) (string, error) {
	layers := filepath.Join(s.root, "layers")
	stale, _ := filepath.Glob(filepath.Join(layers, ".tmp-"+Hex(chainID)+"-*"))
	for _, d := range stale {
		if err := os.RemoveAll(d); err != nil {
			return "", err
		}
	}
	d := filepath.Join(layers, ".tmp-"+Hex(chainID)+"-"+randHex())
	return d, os.Mkdir(d, 0o755)
}

// ValidDigest reports whether d is "sha256:" and 64 hex digits.
func ValidDigest(d string) bool {
	h, ok := strings.CutPrefix(d, "sha256:")
	return ok && len(h) == 64 && isHex(h)
}

// TempFile makes a file for a blob being fetched, removed by the caller.
func (s *Store) TempFile(pattern string) (*os.File, error) {
	return os.CreateTemp(filepath.Join(s.root, "blobs"), ".tmp-"+pattern+"-")
}

// Images lists the stored images, newest first.
func (s *Store) Images() ([]Image, error) {
	entries, err := os.ReadDir(filepath.Join(s.root, "images"))
	if err != nil {
		return nil, fmt.Errorf("image store: %w", err)
	}
	var out []Image
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		img, err := s.read(strings.TrimSuffix(e.Name(), ".json"))
		if err != nil {
			return nil, err
		}
		out = append(out, img)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Stored.After(out[j].Stored) })
	return out, nil
}

func (s *Store) recordPath(hexID string) string {
	return filepath.Join(s.root, "images", hexID+".json")
}

func (s *Store) read(hexID string) (Image, error) {
	var img Image
	b, err := os.ReadFile(s.recordPath(hexID))
	if err != nil {
		return img, fmt.Errorf("image store: %w", err)
	}
	if err := json.Unmarshal(b, &img); err != nil {
		return img, fmt.Errorf("image store: %s: %w", s.recordPath(hexID), err)
	}
	return img, nil
}

// Find returns the image stored under one of names (in order), or whose
// ID is, or starts with, key (at least 3 hex digits, "sha256:" optional).
func (s *Store) Find(key string, names ...string) (Image, error) {
	imgs, err := s.Images()
	if err != nil {
		return Image{}, err
	}
	for _, n := range names {
		for _, img := range imgs {
			for _, have := range append(append(append([]string{}, img.Names...), img.Digests...), img.Aliases...) {
				if have == n {
					return img, nil
				}
			}
		}
	}
	h := Hex(key)
	if len(h) >= 3 && isHex(h) {
		var found []Image
		for _, img := range imgs {
			if strings.HasPrefix(Hex(img.ID), h) {
				found = append(found, img)
			}
		}
		switch len(found) {
		case 1:
			return found[0], nil
		case 0:
		default:
			return Image{}, fmt.Errorf("%q: %w", key, ErrAmbiguous)
		}
	}
	return Image{}, fmt.Errorf("%s: %w", key, ErrNotStored)
}

func isHex(s string) bool {
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Config is an image's config, as the registry served it.
func (s *Store) Config(img Image) ([]byte, error) {
	b, err := os.ReadFile(s.BlobPath(img.ID))
	if err != nil {
		return nil, fmt.Errorf("image store: config of %s: %w", img.ShortID(), err)
	}
	return b, nil
}

// Commit publishes an image once all its layers are in place: its config
// blob, then its record. Names and digests it carries are taken from any
// other image that had them (as a tag moves in a registry). The caller
// holds the locks of img's layers.
func (s *Store) Commit(img Image, config []byte) error {
	sum := sha256.Sum256(config)
	if got := "sha256:" + hex.EncodeToString(sum[:]); got != img.ID {
		return fmt.Errorf("config: digest %s, expected %s", got, img.ID)
	}
	for _, l := range img.Layers {
		if !s.HasLayer(l.ChainID) {
			return fmt.Errorf("layer %s is not in the store", l.DiffID)
		}
	}
	unlock, err := s.lockStore()
	if err != nil {
		return err
	}
	defer unlock()
	if err := writeAtomic(s.BlobPath(img.ID), config); err != nil {
		return err
	}
	imgs, err := s.Images()
	if err != nil {
		return err
	}
	for _, other := range imgs {
		if other.ID == img.ID {
			// Pulled again, or under another name: keep what it had.
			img.Names = union(other.Names, img.Names)
			img.Digests = union(other.Digests, img.Digests)
			img.Aliases = union(other.Aliases, img.Aliases)
			continue
		}
		names, digests, aliases := without(other.Names, img.Names), without(other.Digests, img.Digests), without(other.Aliases, img.Aliases)
		if len(names) != len(other.Names) || len(digests) != len(other.Digests) || len(aliases) != len(other.Aliases) {
			other.Names, other.Digests, other.Aliases = names, digests, aliases
			if err := s.write(other); err != nil {
				return err
			}
		}
	}
	return s.write(img)
}

// write replaces an image's record.
func (s *Store) write(img Image) error {
	b, err := json.MarshalIndent(img, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(s.recordPath(Hex(img.ID)), b)
}

// Untag removes names from an image.
func (s *Store) Untag(img Image, names ...string) error {
	unlock, err := s.lockStore()
	if err != nil {
		return err
	}
	defer unlock()
	img.Names = without(img.Names, names)
	img.Aliases = without(img.Aliases, names)
	return s.write(img)
}

// Delete removes images' records and returns the layers no image left
// uses, renamed out of sight (layers/.gone-*) and to be removed as root of
// the user namespace (RemoveGone), since their files belong to
// subordinate ids. Layers a pull holds are kept.
func (s *Store) Delete(ids ...string) error {
	unlock, err := s.lockStore()
	if err != nil {
		return err
	}
	defer unlock()
	for _, id := range ids {
		if err := os.Remove(s.recordPath(Hex(id))); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("image store: %w", err)
		}
		os.Remove(s.BlobPath(id))
	}
	return s.retireUnused()
}

// retireUnused renames every layer that no image names to layers/.gone-*;
// the caller holds the store's lock.
func (s *Store) retireUnused() error {
	imgs, err := s.Images()
	if err != nil {
		return err
	}
	used := map[string]bool{}
	for _, img := range imgs {
		for _, l := range img.Layers {
			used[Hex(l.ChainID)] = true
		}
	}
	entries, err := os.ReadDir(filepath.Join(s.root, "layers"))
	if err != nil {
		return fmt.Errorf("image store: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || used[name] {
			continue
		}
		lock, ok, err := s.tryLockLayer(name)
		if err != nil {
			return err
		}
		if !ok {
			continue // a pull is about to name it
		}
		gone := filepath.Join(s.root, "layers", ".gone-"+name+"-"+randHex())
		err = os.Rename(filepath.Join(s.root, "layers", name), gone)
		lock.Close()
		if err != nil {
			return fmt.Errorf("image store: retire layer %s: %w", name, err)
		}
	}
	return nil
}

// Garbage lists what is to be removed as root of the user namespace:
// retired layers, and layers a killed pull left half-unpacked (their lock
// is free).
func (s *Store) Garbage() ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(s.root, "layers"))
	if err != nil {
		return nil, fmt.Errorf("image store: %w", err)
	}
	var out []string
	for _, e := range entries {
		name := e.Name()
		switch {
		case strings.HasPrefix(name, ".gone-"):
			out = append(out, filepath.Join(s.root, "layers", name))
		case strings.HasPrefix(name, ".tmp-"):
			chain, _, _ := strings.Cut(strings.TrimPrefix(name, ".tmp-"), "-")
			lock, ok, err := s.tryLockLayer(chain)
			if err != nil {
				return nil, err
			}
			if ok {
				lock.Close()
				out = append(out, filepath.Join(s.root, "layers", name))
			}
		}
	}
	// Blobs a killed fetch left: the caller's own files.
	blobs, _ := filepath.Glob(filepath.Join(s.root, "blobs", ".tmp-*"))
	for _, b := range blobs {
		if st, err := os.Stat(b); err == nil && time.Since(st.ModTime()) > time.Hour {
			os.Remove(b)
		}
	}
	return out, nil
}

// LockLayers takes the locks of the given layers, in sorted order so that
// two pulls never wait on each other in a circle.
func (s *Store) LockLayers(chainIDs []string) (unlock func(), err error) {
	ids := append([]string{}, chainIDs...)
	sort.Strings(ids)
	var held []*os.File
	unlock = func() {
		for _, f := range held {
			f.Close()
		}
	}
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		f, err := s.openLock(filepath.Join("locks", Hex(id)))
		if err != nil {
			unlock()
			return nil, err
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
			f.Close()
			unlock()
			return nil, &os.PathError{Op: "flock", Path: f.Name(), Err: err}
		}
		held = append(held, f)
	}
	return unlock, nil
}

func (s *Store) tryLockLayer(hexChain string) (*os.File, bool, error) {
	f, err := s.openLock(filepath.Join("locks", hexChain))
	if err != nil {
		return nil, false, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, false, nil
		}
		return nil, false, &os.PathError{Op: "flock", Path: f.Name(), Err: err}
	}
	return f, true, nil
}

// lockStore serializes changes to the records.
func (s *Store) lockStore() (func(), error) {
	f, err := s.openLock("lock")
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, &os.PathError{Op: "flock", Path: f.Name(), Err: err}
	}
	return func() { f.Close() }, nil
}

func (s *Store) openLock(rel string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(s.root, rel), os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("image store: %w", err)
	}
	return f, nil
}

// writeAtomic is WriteFileAtomic for the store's own files.
func writeAtomic(path string, b []byte) error {
	if err := WriteFileAtomic(path, b, 0o600); err != nil {
		return fmt.Errorf("image store: %w", err)
	}
	return nil
}

// WriteFileAtomic writes a file of mode perm through a temporary one in
// its directory and a rename, so a reader sees the old content or the
// new, never a part.
func WriteFileAtomic(path string, b []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-")
	if err != nil {
		return err
	}
	err = f.Chmod(perm)
	if err == nil {
		_, err = f.Write(b)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

func randHex() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func union(a, b []string) []string {
	out := append([]string{}, a...)
	for _, x := range b {
		if !contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

func without(a, drop []string) []string {
	var out []string
	for _, x := range a {
		if !contains(drop, x) {
			out = append(out, x)
		}
	}
	return out
}

func contains(list []string, x string) bool {
	for _, y := range list {
		if y == x {
			return true
		}
	}
	return false
}
