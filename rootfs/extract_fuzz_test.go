package rootfs

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzExtractLayerStaysInside feeds Extract layers of two entries with
// names, link targets and types of the fuzzer's choosing (whiteouts and
// opaque markers included): whatever it accepts or refuses, nothing may
// appear outside the directory it unpacks into.
func FuzzExtractLayerStaysInside(f *testing.F) {
	for _, seed := range []struct {
		n1, l1 string
		t1     byte
		n2, l2 string
		t2     byte
	}{
		{"link", "/", tar.TypeSymlink, "link/escape", "", tar.TypeReg},
		{"../escape", "", tar.TypeReg, "a", "", tar.TypeReg},
		{"d/.wh..wh..opq", "", tar.TypeReg, "d/.wh...", "", tar.TypeReg},
		{".wh..", "", tar.TypeReg, "x/../../y", "", tar.TypeDir},
		{"hard", "../../etc/passwd", tar.TypeLink, "l", "..", tar.TypeSymlink},
		{"a/b", "", tar.TypeDir, "a/.wh.b", "", tar.TypeReg},
	} {
		f.Add(seed.n1, seed.l1, seed.t1, seed.n2, seed.l2, seed.t2)
	}
	f.Fuzz(func(t *testing.T, n1, l1 string, t1 byte, n2, l2 string, t2 byte) {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		for _, e := range []struct {
			name, link string
			typ        byte
		}{{n1, l1, t1}, {n2, l2, t2}} {
			switch e.typ {
			case tar.TypeReg, tar.TypeDir, tar.TypeSymlink, tar.TypeLink, tar.TypeFifo:
			default:
				e.typ = tar.TypeReg
			}
			h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: 0o755}
			if e.typ == tar.TypeReg {
				h.Size = 1
			}
			if tw.WriteHeader(h) != nil {
				return
			}
			if e.typ == tar.TypeReg {
				tw.Write([]byte("x"))
			}
		}
		if tw.Close() != nil {
			return
		}
		parent := t.TempDir()
		dir := filepath.Join(parent, "layer")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		Extract(&b, ExtractOptions{Dir: dir, Layer: true})
		entries, err := os.ReadDir(parent)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 1 || entries[0].Name() != "layer" {
			t.Fatalf("entries %q %q wrote outside the layer: %v", n1, n2, entries)
		}
	})
}
