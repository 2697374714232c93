package main

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/isobox/isobox/rootfs/image"
)

// imageRun is an image found (or pulled) for `isobox run IMAGE`.
type imageRun struct {
	img    image.Image
	name   string // as the user will see it in ps
	config v1.Config
	// top is the topmost layer's directory, the container's rootfs, and
	// lower the others, topmost first: overlayfs's lowerdir order.
	top   string
	lower []string
}

// resolveImage finds ref in the store, pulling it as --pull says.
func (r *RunCmd) resolveImage(g *Globals, log *slog.Logger) (*imageRun, error) {
	im, err := openImages(log)
	if err != nil {
		return nil, err
	}
	// The fast path: a name, alias or ID the store knows. Otherwise
	// isobox-image resolves the name (registries.conf), takes a stored
	// image of a name it may mean, and pulls when --pull says so.
	img, err := im.store.Find(r.image, r.image)
	if r.Pull == "always" || errors.Is(err, image.ErrNotStored) {
		flags := []string{"--policy", r.Pull, "--tls-verify=" + strconv.FormatBool(r.TLSVerify)}
		if r.Platform != "" {
			flags = append(flags, "--platform", r.Platform)
		}
		id, err := pullWithHelper(g, flags, r.image)
		if err != nil {
			return nil, err
		}
		if img, err = im.store.Find(id); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, err
	}
	run, err := newImageRun(im.store, img)
	if err != nil {
		return nil, err
	}
	if run.name == "" {
		run.name = r.image
	}
	return run, nil
}

// newImageRun reads a stored image's config and finds its layers.
func newImageRun(s *image.Store, img image.Image) (*imageRun, error) {
	raw, err := s.Config(img)
	if err != nil {
		return nil, err
	}
	cf, err := v1.ParseConfigFile(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("config of %s: %w", img.ShortID(), err)
	}
	layers, err := layerDirs(s, img)
	if err != nil {
		return nil, err
	}
	run := &imageRun{img: img, config: cf.Config, top: layers[0], lower: layers[1:]}
	if len(img.Names) > 0 {
		run.name = img.Names[0]
	}
	return run, nil
}

// layerDirs are a stored image's layer directories, topmost first
// (overlayfs's lowerdir order); a layer missing from the store is an error.
func layerDirs(s *image.Store, img image.Image) ([]string, error) {
	var out []string
	for i := len(img.Layers) - 1; i >= 0; i-- {
		if !s.HasLayer(img.Layers[i].ChainID) {
			return nil, fmt.Errorf("image %s: layer %s is missing from the store: pull it again", img.ShortID(), img.Layers[i].DiffID)
		}
		out = append(out, s.LayerDir(img.Layers[i].ChainID))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("image %s has no layers", img.ShortID())
	}
	return out, nil
}

// layers are the image's directories, topmost first.
func (ir *imageRun) layers() []string { return append([]string{ir.top}, ir.lower...) }

// fileRoot is the layer whose rel (etc/passwd) the container sees: the
// topmost that has it, unless a layer above deleted it (a whiteout), in
// which case the top layer, where it is missing.
func (ir *imageRun) fileRoot(rel string) string {
	for _, l := range ir.layers() {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(l, rel), &st); err != nil {
			continue
		}
		if st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0 {
			break // overlayfs's whiteout
		}
		return l
	}
	return ir.top
}
