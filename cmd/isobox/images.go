package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/isobox/isobox/rootfs/image"
	"github.com/isobox/isobox/userns"
	"github.com/isobox/isobox/userns/state"
)

// The image commands: podman's names and flags. They work on the caller's
// image store (rootfs/image) and bring images in with rootfs/image/fetch;
// the layers are unpacked by userns in a user namespace with run's mapping.

// images is what every image command opens.
type images struct {
	store *image.Store
	log   *slog.Logger
}

func openImages(log *slog.Logger) (*images, error) {
	s, err := image.Open()
	if err != nil {
		return nil, err
	}
	return &images{store: s, log: log}, nil
}

// find looks ref up in the store: by a name, digest or alias (a
// reference as it was pulled), or by ID; then, asking isobox-image, by the
// names a short name may mean through registries.conf. It returns the name
// that matched, "" for an ID.
func (im *images) find(g *Globals, ref string) (image.Image, string, error) {
	img, err := im.store.Find(ref, ref)
	if err == nil {
		return img, matchedName(img, []string{ref}), nil
	}
	if !errors.Is(err, image.ErrNotStored) {
		return img, "", err
	}
	names, herr := namesWithHelper(g, ref)
	if herr != nil {
		return img, "", herr
	}
	if found, ferr := im.store.Find(ref, names...); ferr == nil {
		return found, matchedName(found, names), nil
	}
	return img, "", err
}

// matchedName is the first of candidates that img is known by.
func matchedName(img image.Image, candidates []string) string {
	for _, c := range candidates {
		for _, n := range append(append([]string{}, img.Names...), img.Aliases...) {
			if n == c {
				return n
			}
		}
	}
	return ""
}

// collect removes from the disk what no image uses any more (retired
// layers, and what killed pulls left), as root of the user namespace: the
// files belong to subordinate ids.
func (im *images) collect() error {
	garbage, err := im.store.Garbage()
	if err != nil || len(garbage) == 0 {
		return err
	}
	return userns.RunMappedTask(userns.MappedTaskOptions{Task: "remove", Args: garbage, Logger: im.log})
}

// ImagesCmd is `isobox images`.
type ImagesCmd struct {
	Quiet   bool `short:"q" help:"Print only the image IDs."`
	JSON    bool `name:"json" help:"Print a JSON array, one object per image."`
	Digests bool `help:"Show the manifests' digests."`
}

type imageEntry struct {
	ID       string    `json:"Id"`
	Names    []string  `json:"Names"`
	Digests  []string  `json:"Digests"`
	Created  time.Time `json:"Created"`
	Size     int64     `json:"Size"`
	Layers   int       `json:"Layers"`
	Platform string    `json:"Platform,omitempty"`
}

func (c *ImagesCmd) Run(log *slog.Logger) error {
	im, err := openImages(log)
	if err != nil {
		return err
	}
	imgs, err := im.store.Images()
	if err != nil {
		return err
	}
	if c.Quiet {
		for _, img := range imgs {
			fmt.Println(img.ShortID())
		}
		return nil
	}
	if c.JSON {
		out := []imageEntry{}
		for _, img := range imgs {
			out = append(out, imageEntry{ID: image.Hex(img.ID), Names: orEmpty(img.Names), Digests: orEmpty(img.Digests),
				Created: img.Created, Size: size(img), Layers: len(img.Layers), Platform: img.Platform})
		}
		return printJSON(out)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 3, ' ', 0)
	if c.Digests {
		fmt.Fprintln(w, "REPOSITORY\tTAG\tDIGEST\tIMAGE ID\tCREATED\tSIZE")
	} else {
		fmt.Fprintln(w, "REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE")
	}
	now := time.Now()
	for _, img := range imgs {
		names := img.Names
		if len(names) == 0 {
			names = []string{"<none>:<none>"}
		}
		digest := "<none>"
		if len(img.Digests) > 0 {
			_, digest, _ = strings.Cut(img.Digests[0], "@")
		}
		for _, n := range names {
			repo, tag := splitTag(n)
			created := "-"
			if !img.Created.IsZero() {
				created = human(now.Sub(img.Created)) + " ago"
			}
			if c.Digests {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", repo, tag, digest, img.ShortID(), created, humanSize(size(img)))
			} else {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", repo, tag, img.ShortID(), created, humanSize(size(img)))
			}
		}
	}
	return w.Flush()
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// size is the image's layers as the registry served them.
func size(img image.Image) int64 {
	var n int64
	for _, l := range img.Layers {
		n += l.Size
	}
	return n
}

func humanSize(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.3g GB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.3g MB", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.3g kB", float64(n)/1e3)
	}
	return fmt.Sprintf("%d B", n)
}

// splitTag splits "REGISTRY/REPO:TAG" (or "@DIGEST").
func splitTag(n string) (repo, tag string) {
	if i := strings.LastIndex(n, "@"); i >= 0 {
		return n[:i], "<none>"
	}
	if i := strings.LastIndex(n, ":"); i > strings.LastIndex(n, "/") {
		return n[:i], n[i+1:]
	}
	return n, "<none>"
}

// ImageCmd groups `isobox image ...`.
type ImageCmd struct {
	Ls      ImagesCmd       `cmd:"" aliases:"list" help:"List stored images."`
	Inspect ImageInspectCmd `cmd:"" help:"Print images' configs as JSON."`
	Rm      RmiCmd          `cmd:"" help:"Remove images."`
	Prune   ImagePruneCmd   `cmd:"" help:"Remove images no container uses, and layers no image uses."`
	Pull    PullCmd         `cmd:"" passthrough:"" help:"Pull an image from a registry."`
	Load    LoadCmd         `cmd:"" passthrough:"" help:"Load images from an archive."`
}

// ImageInspectCmd is `isobox image inspect`.
type ImageInspectCmd struct {
	Refs []string `predictor:"images" arg:"" placeholder:"REF|ID" help:"Images."`
}

func (c *ImageInspectCmd) Run(g *Globals, log *slog.Logger) error {
	im, err := openImages(log)
	if err != nil {
		return err
	}
	var out []map[string]any
	for _, ref := range c.Refs {
		img, _, err := im.find(g, ref)
		if err != nil {
			return err
		}
		raw, err := im.store.Config(img)
		if err != nil {
			return err
		}
		var cfg map[string]any
		if err := json.Unmarshal(raw, &cfg); err != nil {
			return fmt.Errorf("config of %s: %w", img.ShortID(), err)
		}
		var layers []string
		for _, l := range img.Layers {
			layers = append(layers, l.Digest)
		}
		out = append(out, map[string]any{
			"Id": image.Hex(img.ID), "Digest": firstDigest(img), "RepoTags": orEmpty(img.Names), "RepoDigests": orEmpty(img.Digests),
			"Created": cfg["created"], "Architecture": cfg["architecture"], "Os": cfg["os"], "Variant": cfg["variant"],
			"Config": cfg["config"], "RootFS": cfg["rootfs"], "History": cfg["history"], "Layers": layers,
			"Size": size(img), "Author": cfg["author"],
		})
	}
	return printJSON(out)
}

func firstDigest(img image.Image) string {
	if len(img.Digests) == 0 {
		return ""
	}
	_, d, _ := strings.Cut(img.Digests[0], "@")
	return d
}

// RmiCmd is `isobox rmi`.
type RmiCmd struct {
	Force bool     `short:"f" help:"Remove the containers that use the image first."`
	All   bool     `short:"a" help:"Remove every image."`
	Refs  []string `predictor:"images" arg:"" optional:"" placeholder:"REF|ID" help:"Images; a name removes that name only while the image has others."`
}

func (c *RmiCmd) Run(g *Globals, log *slog.Logger) error {
	if !c.All && len(c.Refs) == 0 {
		return errors.New("rmi: name at least one image, or -a")
	}
	if c.All && len(c.Refs) > 0 {
		return errors.New("rmi: -a takes no image names")
	}
	im, err := openImages(log)
	if err != nil {
		return err
	}
	refs := c.Refs
	if c.All {
		imgs, err := im.store.Images()
		if err != nil {
			return err
		}
		for _, img := range imgs {
			refs = append(refs, image.Hex(img.ID))
		}
	}
	err = forEach(refs, func(ref string) error {
		img, matched, err := im.find(g, ref)
		if err != nil {
			return err
		}
		// A name of an image that has others is only untagged (Docker's
		// and podman's rule); an ID, or the last name, removes the image.
		if matched != "" && len(img.Names) > 1 && !c.All {
			if err := im.store.Untag(img, matched); err != nil {
				return err
			}
			fmt.Println("Untagged: " + matched)
			return nil
		}
		if err := im.releaseContainers(img, c.Force); err != nil {
			return err
		}
		if err := im.store.Delete(img.ID); err != nil {
			return err
		}
		for _, n := range img.Names {
			fmt.Println("Untagged: " + n)
		}
		fmt.Println("Deleted: " + image.Hex(img.ID))
		return nil
	})
	if cerr := im.collect(); err == nil {
		err = cerr
	}
	return err
}

// containersOf are the caller's containers, running or not, made from img.
func containersOf(img image.Image) (*state.Dir, []state.Info, error) {
	dir, err := state.Open()
	if err != nil {
		return nil, nil, err
	}
	list, err := dir.List()
	if err != nil {
		return nil, nil, err
	}
	var out []state.Info
	for _, i := range list {
		if i.ImageID == img.ID {
			out = append(out, i)
		}
	}
	return dir, out, nil
}

// ociUsers are the created and running `isobox oci` containers made from
// an image, by image ID, in the roots oci uses when --root is not given:
// the default one, and /tmp/isobox-oci-UID, which Slurm's oci.conf names.
// A container under another --root cannot be known.
func ociUsers() (map[string][]string, error) {
	roots := []string{tmpOciRoot()}
	if d := defaultOciRoot(); d != roots[0] {
		roots = append(roots, d)
	}
	users := map[string][]string{}
	for _, root := range roots {
		// Missing, or not the caller's (planted in /tmp): none of its
		// containers can be there.
		if st, err := os.Lstat(root); err != nil || !st.IsDir() || !ownedByMe(st) {
			continue
		}
		d, err := state.OpenAt(root)
		if err != nil {
			return nil, err
		}
		list, err := d.List()
		if err != nil {
			return nil, err
		}
		for _, i := range list {
			if i.ImageID != "" && i.Running {
				users[i.ImageID] = append(users[i.ImageID], fmt.Sprintf("%s (isobox oci --root %s)", i.Name, root))
			}
		}
	}
	return users, nil
}

// releaseContainers refuses an image containers use, or with force removes
// them first (rm -f), as podman does. An `isobox oci` container that runs
// from it is never removed here: it is its engine's (Slurm's) to delete.
func (im *images) releaseContainers(img image.Image, force bool) error {
	ociUsed, err := ociUsers()
	if err != nil {
		return err
	}
	if oci := ociUsed[img.ID]; len(oci) > 0 {
		return fmt.Errorf("image %s is in use by the oci container %s: delete it first (its engine will, when it ends)", img.ShortID(), strings.Join(oci, ", "))
	}
	dir, users, err := containersOf(img)
	if err != nil || len(users) == 0 {
		return err
	}
	if !force {
		var names []string
		for _, u := range users {
			names = append(names, u.Name)
		}
		return fmt.Errorf("image %s is in use by container %s: remove it first, or use rmi -f", img.ShortID(), strings.Join(names, ", "))
	}
	for _, u := range users {
		if err := removeContainer(dir, u, true); err != nil {
			return err
		}
	}
	return nil
}

// ImagePruneCmd is `isobox image prune`.
type ImagePruneCmd struct {
	All   bool `short:"a" help:"Also remove images with names that no container uses."`
	Force bool `short:"f" help:"Do not ask (isobox never asks; accepted for habit)."`
}

func (c *ImagePruneCmd) Run(log *slog.Logger) error {
	im, err := openImages(log)
	if err != nil {
		return err
	}
	imgs, err := im.store.Images()
	if err != nil {
		return err
	}
	// Who uses what, read once for all the images.
	used, err := ociUsers()
	if err != nil {
		return err
	}
	list, err := listAll()
	if err != nil {
		return err
	}
	for _, i := range list {
		used[i.ImageID] = append(used[i.ImageID], i.Name)
	}
	var ids []string
	for _, img := range imgs {
		if len(img.Names) > 0 && !c.All {
			continue
		}
		if len(used[img.ID]) == 0 {
			ids = append(ids, img.ID)
		}
	}
	if err := im.store.Delete(ids...); err != nil {
		return err
	}
	for _, id := range ids {
		fmt.Println(image.Hex(id))
	}
	return im.collect()
}
