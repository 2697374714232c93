package fetch

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/isobox/isobox/rootfs"
	"github.com/isobox/isobox/rootfs/image/refs"
)

// ErrArchive: not an archive isobox can load.
var ErrArchive = errors.New("not a docker save archive or an OCI layout")

// Load stores every image of a `docker save` archive (Docker 25+'s too,
// which holds an OCI layout beside its manifest.json), an OCI layout
// directory, or a tar of one (compressed or not), and returns their records.
func Load(ctx context.Context, src string, o Options) ([]string, error) {
	st, err := os.Stat(src)
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return o.loadLayout(ctx, src)
	}
	tarPath, cleanup, err := o.plainTar(src)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	members, err := tarMembers(tarPath)
	if err != nil {
		return nil, err
	}
	switch {
	case members["manifest.json"]:
		return o.loadDockerSave(ctx, tarPath)
	case members["index.json"] && members["oci-layout"]:
		dir, err := os.MkdirTemp(filepath.Join(o.Store.Root(), "blobs"), ".tmp-layout-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		f, err := os.Open(tarPath)
		if err != nil {
			return nil, err
		}
		_, err = rootfs.Extract(f, rootfs.ExtractOptions{Dir: dir})
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", src, err)
		}
		return o.loadLayout(ctx, dir)
	}
	return nil, fmt.Errorf("%s: %w (no manifest.json, nor index.json and oci-layout)", src, ErrArchive)
}

// plainTar is src, or a decompressed copy of it in the store's scratch
// space: go-containerregistry opens a docker save archive once per layer.
func (o Options) plainTar(src string) (string, func(), error) {
	if isPlain(src) {
		return src, func() {}, nil
	}
	f, err := os.Open(src)
	if err != nil {
		return "", nil, err
	}
	defer f.Close()
	r, err := rootfs.Decompress(f)
	if err != nil {
		return "", nil, fmt.Errorf("%s: %w", src, err)
	}
	defer r.Close()
	tmp, err := o.Store.TempFile("load")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { os.Remove(tmp.Name()) }
	_, err = io.Copy(tmp, r)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		cleanup()
		return "", nil, fmt.Errorf("%s: %w", src, err)
	}
	return tmp.Name(), cleanup, nil
}

// isPlain reports whether the file starts with none of the compressions'
// magic numbers.
func isPlain(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	b := make([]byte, 6)
	n, _ := io.ReadFull(f, b)
	b = b[:n]
	for _, magic := range [][]byte{{0x1f, 0x8b}, []byte("BZh"), {0xfd, '7', 'z', 'X', 'Z', 0}, {0x28, 0xb5, 0x2f, 0xfd}} {
		if len(b) >= len(magic) && string(b[:len(magic)]) == string(magic) {
			return false
		}
	}
	return true
}

// tarMembers lists the top-level names of a tar.
func tarMembers(p string) (map[string]bool, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]bool{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w: %v", p, ErrArchive, err)
		}
		out[path.Clean(h.Name)] = true
	}
}

func (o Options) loadDockerSave(ctx context.Context, p string) ([]string, error) {
	opener := func() (io.ReadCloser, error) { return os.Open(p) }
	m, err := tarball.LoadManifest(opener)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	var ids []string
	for _, d := range m {
		var tag *name.Tag
		var names []string
		for _, t := range d.RepoTags {
			parsed, err := name.NewTag(t)
			if err != nil {
				return nil, fmt.Errorf("%s: tag %q: %w", p, t, err)
			}
			names = append(names, refs.StoreName(parsed))
			if tag == nil {
				tag = &parsed
			}
		}
		img, err := tarball.Image(opener, tag)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		rec, err := o.store(ctx, img, names, nil, nil, "", false)
		if err != nil {
			return nil, err
		}
		ids = append(ids, rec.ID)
	}
	return ids, nil
}

// refNameAnnotations name an OCI layout's images: the standard one holds a
// tag or a full reference; containerd's (Docker 25+) a full reference.
var refNameAnnotations = []string{"io.containerd.image.name", "org.opencontainers.image.ref.name"}

func (o Options) loadLayout(ctx context.Context, dir string) ([]string, error) {
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %v", dir, ErrArchive, err)
	}
	plat, err := platform(o.Platform)
	if err != nil {
		return nil, err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	var ids []string
	for _, desc := range im.Manifests {
		var img v1.Image
		switch {
		case desc.MediaType.IsImage():
			if img, err = idx.Image(desc.Digest); err != nil {
				return nil, fmt.Errorf("%s: %w", dir, err)
			}
		case desc.MediaType.IsIndex():
			child, err := idx.ImageIndex(desc.Digest)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", dir, err)
			}
			cm, err := child.IndexManifest()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", dir, err)
			}
			for _, c := range cm.Manifests {
				if c.Platform != nil && c.Platform.Satisfies(plat) && c.MediaType.IsImage() {
					if img, err = child.Image(c.Digest); err != nil {
						return nil, fmt.Errorf("%s: %w", dir, err)
					}
					break
				}
			}
			if img == nil {
				continue
			}
		default:
			continue
		}
		var names []string
		for _, a := range refNameAnnotations {
			if n := desc.Annotations[a]; n != "" {
				// A bare tag ("latest") names nothing the store can list.
				if t, err := name.NewTag(n); err == nil && strings.ContainsAny(n, "/:") {
					names = append(names, refs.StoreName(t))
					break
				}
			}
		}
		rec, err := o.store(ctx, img, names, nil, nil, "", true)
		if err != nil {
			return nil, err
		}
		ids = append(ids, rec.ID)
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("%s: %w (no image for %s in it)", dir, ErrPlatform, plat)
	}
	return ids, nil
}
