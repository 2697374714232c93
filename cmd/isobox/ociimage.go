package main

import (
	"fmt"
	"log/slog"

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
	run, err := newImageRun(im.store, img)
	if err != nil {
		return err
	}
	cf := run.config
	args := append(append([]string{}, cf.Entrypoint...), cf.Cmd...)
	if len(args) == 0 {
		return fmt.Errorf("the image %s has no Entrypoint or Cmd: edit process.args in config.json", ref)
	}
	var uid, gid uint32
	if u := cf.User; u != "" {
		if uid, gid, _, err = userns.ResolveUserIn(run.fileRoot("etc/passwd"), run.fileRoot("etc/group"), u); err != nil {
			return err
		}
	}
	cwd := cf.WorkingDir
	if cwd == "" {
		cwd = "/"
	}
	spec.Process.Args = args
	spec.Process.Env = userns.MergeEnv([]string{"PATH=" + userns.DefaultPath}, cf.Env...)
	spec.Process.Cwd = cwd
	spec.Process.User = specs.User{UID: uid, GID: gid}
	spec.Root = &specs.Root{Path: "rootfs"}
	spec.Linux.UIDMappings, spec.Linux.GIDMappings = nil, nil
	name := run.name
	if name == "" {
		name = ref
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
	return layerDirs(s, img)
}
