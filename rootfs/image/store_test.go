package image

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func TestChainIDsFollowTheImageSpec(t *testing.T) {
	a, b := digest([]byte("a")), digest([]byte("b"))
	got := ChainIDs([]string{a, b})
	if got[0] != a || got[1] != digest([]byte(a+" "+b)) {
		t.Errorf("ChainIDs: %v", got)
	}
}

// fakeLayer puts an unpacked layer in place, as Unpack would.
func fakeLayer(t *testing.T, s *Store, chain string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(s.LayerDir(chain), "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestCommitMovesNamesAndDeleteRetiresOnlyUnusedLayers(t *testing.T) {
	s, err := OpenAt(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	base, other := digest([]byte("base")), digest([]byte("other"))
	fakeLayer(t, s, base)
	fakeLayer(t, s, other)
	cfg1, cfg2 := []byte(`{"one":1}`), []byte(`{"two":2}`)
	one := Image{ID: digest(cfg1), Names: []string{"r/x:1", "r/x:latest"}, Layers: []Layer{{DiffID: base, ChainID: base}}}
	two := Image{ID: digest(cfg2), Names: []string{"r/x:latest"}, Layers: []Layer{{DiffID: base, ChainID: base}, {DiffID: other, ChainID: other}}}
	if err := s.Commit(one, cfg1); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(two, cfg2); err != nil {
		t.Fatal(err)
	}
	got, err := s.Find("r/x:latest", "r/x:latest")
	if err != nil || got.ID != two.ID {
		t.Fatalf("latest is on %v (%v), want the newer image", got.ID, err)
	}
	got, _ = s.Find("r/x:1", "r/x:1")
	if len(got.Names) != 1 || got.Names[0] != "r/x:1" {
		t.Errorf("the tag did not move off the older image: %v", got.Names)
	}
	if _, err := s.Find(Hex(one.ID)[:5]); err != nil {
		t.Errorf("by ID prefix: %v", err)
	}
	if _, err := s.Find("nope", "nope"); !errors.Is(err, ErrNotStored) {
		t.Errorf("unknown: %v", err)
	}
	if err := s.Delete(two.ID); err != nil {
		t.Fatal(err)
	}
	if !s.HasLayer(base) || s.HasLayer(other) {
		t.Errorf("after deleting the second image: base %v, other %v", s.HasLayer(base), s.HasLayer(other))
	}
	garbage, err := s.Garbage()
	if err != nil || len(garbage) != 1 {
		t.Errorf("garbage: %v %v", garbage, err)
	}
}

func TestCommitRefusesAConfigThatIsNotTheID(t *testing.T) {
	s, err := OpenAt(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(Image{ID: digest([]byte("x"))}, []byte("y")); err == nil {
		t.Error("a config of another digest was stored")
	}
}

func TestALockedLayerIsNotRetired(t *testing.T) {
	s, err := OpenAt(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	l := digest([]byte("pulling"))
	fakeLayer(t, s, l)
	unlock, err := s.LockLayers([]string{l})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(); err != nil {
		t.Fatal(err)
	}
	if !s.HasLayer(l) {
		t.Error("a layer a pull holds was retired")
	}
	unlock()
	if err := s.Delete(); err != nil || s.HasLayer(l) {
		t.Errorf("an unused, unlocked layer stays: %v", err)
	}
}

func TestOpenRefusesAStoreOpenToOthers(t *testing.T) {
	root := filepath.Join(t.TempDir(), "store")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenAt(root); !errors.Is(err, errBadStore) {
		t.Errorf("a 0755 store: %v", err)
	}
}
