package main

import (
	"bytes"
	"fmt"
	"log/slog"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/isobox/isobox/rootfs/image"
	"github.com/isobox/isobox/userns"
	"github.com/isobox/isobox/userns/bundle"
)

// imageSpec makes spec a bundle of a stored image: the image's defaults as
// the process, the image named in annotations, root.path an empty
// rootfs/ on which `oci run` stacks the image's layers. The mapping is
// left to isobox (the caller's subordinate ranges, as the layers'
// owners were unpacked with), not runc's one id.
func imageSpec(spec *specs.Spec, g *Globals, log *slog.Logger, ref string) error {
	im, err := openImages(log)
	if err != nil {
		return err
	}
	img, _, err := im.find(g, ref)
	if err != nil {
		return err
	}
	raw, err := im.store.Config(img)
	if err != nil {
		return err
	}
	cf, err := v1.ParseConfigFile(bytes.NewReader(raw))
	if err != nil {
		return fmt.Errorf("config of %s: %w", img.ShortID(), err)
	}
	run := &imageRun{img: img, config: cf.Config}
	for i := len(img.Layers) - 1; i >= 0; i-- {
		d := im.store.LayerDir(img.Layers[i].ChainID)
		if run.top == "" {
			run.top = d
		} else {
			run.lower = append(run.lower, d)
		}
	}
	args := append(append([]string{}, cf.Config.Entrypoint...), cf.Config.Cmd...)
	if len(args) == 0 {
		return fmt.Errorf("the image %s has no Entrypoint or Cmd: edit process.args in config.json", ref)
	}
	var uid, gid uint32
	if u := cf.Config.User; u != "" {
		if uid, gid, _, err = userns.ResolveUserIn(run.fileRoot("etc/passwd"), run.fileRoot("etc/group"), u); err != nil {
			return err
		}
	}
	cwd := cf.Config.WorkingDir
	if cwd == "" {
		cwd = "/"
	}
	spec.Process.Args = args
	spec.Process.Env = userns.MergeEnv([]string{"PATH=" + userns.DefaultPath}, cf.Config.Env...)
	spec.Process.Cwd = cwd
	spec.Process.User = specs.User{UID: uid, GID: gid}
	spec.Root = &specs.Root{Path: "rootfs"}
	spec.Linux.UIDMappings, spec.Linux.GIDMappings = nil, nil
	name := ref
	if len(img.Names) > 0 {
		name = img.Names[0]
	}
	spec.Annotations = map[string]string{
		bundle.AnnotationImage: img.ID, bundle.AnnotationImageStore: im.store.Root(), bundle.AnnotationImageName: name,
	}
	return nil
}

// imageLayers are a stored image's layer directories, topmost first.
func imageLayers(store, id string) ([]string, error) {
	s, err := image.OpenExisting(store)
	if err != nil {
		return nil, err
	}
	img, err := s.Find(id)
	if err != nil {
		return nil, fmt.Errorf("the bundle's image: %w", err)
	}
	var out []string
	for i := len(img.Layers) - 1; i >= 0; i-- {
		if !s.HasLayer(img.Layers[i].ChainID) {
			return nil, fmt.Errorf("the bundle's image %s: layer %s is missing from the store: pull it again", img.ShortID(), img.Layers[i].DiffID)
		}
		out = append(out, s.LayerDir(img.Layers[i].ChainID))
	}
	return out, nil
}
