package fetch

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/isobox/isobox/rootfs/image"
	"github.com/isobox/isobox/rootfs/image/layer"
	"github.com/isobox/isobox/rootfs/image/refs"
)

var (
	// ErrAuth: the registry wants credentials, or refused the ones given.
	ErrAuth = errors.New("authentication required")
	// ErrNotFound: no such repository, tag or digest in the registry.
	ErrNotFound = errors.New("not found")
	// ErrUnreachable: the registry did not answer.
	ErrUnreachable = errors.New("registry does not answer")
	// ErrPlatform: an index without the platform asked for.
	ErrPlatform = errors.New("no image for the platform")
	// ErrMediaType: a manifest or layer isobox cannot use.
	ErrMediaType = errors.New("unsupported media type")
	// ErrDigest: a blob whose content does not match its digest.
	ErrDigest = errors.New("digest mismatch")
)

// Options say how to bring an image in.
type Options struct {
	Store      *image.Store
	Registries *refs.Registries
	// Platform is OS/ARCH[/VARIANT]; empty for this host's.
	Platform  string
	TLSVerify bool
	// Progress receives the per-layer report (nil or Quiet: none).
	Progress *os.File
	Quiet    bool
	// Unpack unpacks layers into the store, as root of a user namespace
	// with the container's mapping.
	Unpack func([]layer.Job) error
	// Timeout bounds each connection and each wait for a response header.
	Timeout time.Duration
	// Policy is podman's pull policy: "always" (the default) asks the
	// registry; "missing" takes a stored image of one of the names ref may
	// mean and asks only when there is none; "never" never asks.
	Policy string
}

// Pull fetches ref (a short name resolved through registries.conf) into the
// store and returns its record. The first candidate a registry has wins;
// when none has it, the error is the first candidate's.
func Pull(ctx context.Context, ref string, o Options) (image.Image, error) {
	plat, err := platform(o.Platform)
	if err != nil {
		return image.Image{}, err
	}
	cands, err := o.Registries.Resolve(ref, o.TLSVerify)
	if err != nil {
		return image.Image{}, err
	}
	if o.Policy == "missing" || o.Policy == "never" {
		for _, cand := range cands {
			if img, err := o.Store.Find(cand.Name, cand.Name); err == nil {
				return img, nil
			}
		}
		if o.Policy == "never" {
			return image.Image{}, fmt.Errorf("%s: %w (--pull never: isobox pull %s first)", ref, image.ErrNotStored, ref)
		}
	}
	var first error
	for _, cand := range cands {
		for _, src := range cand.Sources {
			img, digest, err := o.fetchManifest(ctx, src, plat)
			if err == nil {
				names := []string{cand.Name}
				digests := []string{repoOf(cand.Name) + "@" + digest}
				if _, isDigest := src.Ref.(name.Digest); isDigest {
					names = nil
				}
				rec, err := o.store(ctx, img, names, digests, []string{ref}, plat.String(), true)
				if err != nil {
					return image.Image{}, fmt.Errorf("%s: %w", cand.Name, err)
				}
				return rec, nil
			}
			if first == nil {
				first = err
			}
			// A mirror that fails, or a search registry without the name,
			// falls through to the next; a refused login ends there.
			if errors.Is(err, ErrAuth) || errors.Is(err, ErrPlatform) || errors.Is(err, ErrMediaType) {
				return image.Image{}, err
			}
		}
	}
	return image.Image{}, first
}

func repoOf(storeName string) string {
	if i := strings.LastIndex(storeName, "@"); i >= 0 {
		return storeName[:i]
	}
	if i := strings.LastIndex(storeName, ":"); i > strings.LastIndex(storeName, "/") {
		return storeName[:i]
	}
	return storeName
}

// platform parses --platform, or is this host's (go-containerregistry's own
// default is linux/amd64 whatever the host).
func platform(s string) (v1.Platform, error) {
	if s == "" {
		p := v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
		if runtime.GOARCH == "arm64" {
			p.Variant = "v8"
		}
		return p, nil
	}
	p, err := v1.ParsePlatform(s)
	if err != nil || p.OS == "" || p.Architecture == "" {
		return v1.Platform{}, fmt.Errorf("--platform %q: want OS/ARCH[/VARIANT]", s)
	}
	return *p, nil
}

// remoteOptions are go-containerregistry's options for src.
func (o Options) remoteOptions(ctx context.Context, src refs.Source) []remote.Option {
	return []remote.Option{
		remote.WithContext(ctx),
		remote.WithTransport(baseTransport(o, src)),
		remote.WithAuthFromKeychain(Keychain()),
		remote.WithUserAgent("isobox"),
		// One quick retry: a registry that does not answer is an error to
		// report, not to wait out.
		remote.WithRetryBackoff(remote.Backoff{Duration: 200 * time.Millisecond, Factor: 2, Steps: 2}),
	}
}

// baseTransport bounds every connection and wait for a response header by
// o.Timeout, and skips certificate checks for an insecure source.
func baseTransport(o Options, src refs.Source) *http.Transport {
	timeout := o.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
		MaxIdleConnsPerHost:   8,
		ForceAttemptHTTP2:     true,
	}
	if src.Insecure {
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	}
	return tr
}

// fetchManifest gets src's manifest, through an index to plat's image.
func (o Options) fetchManifest(ctx context.Context, src refs.Source, plat v1.Platform) (v1.Image, string, error) {
	opts := o.remoteOptions(ctx, src)
	desc, err := remote.Get(src.Ref, opts...)
	if err != nil {
		return nil, "", registryError(src, err)
	}
	switch {
	case desc.MediaType.IsIndex():
		idx, err := desc.ImageIndex()
		if err != nil {
			return nil, "", registryError(src, err)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return nil, "", registryError(src, err)
		}
		var have []string
		for _, m := range im.Manifests {
			if m.Platform == nil || !m.MediaType.IsImage() {
				continue
			}
			if m.Platform.Satisfies(plat) {
				img, err := idx.Image(m.Digest)
				if err != nil {
					return nil, "", registryError(src, err)
				}
				return img, desc.Digest.String(), nil
			}
			if m.Platform.OS != "unknown" {
				have = append(have, m.Platform.String())
			}
		}
		return nil, "", fmt.Errorf("%s: %w %s (it has %s)", src.Ref, ErrPlatform, plat, strings.Join(have, ", "))
	case desc.MediaType.IsImage():
		img, err := desc.Image()
		if err != nil {
			return nil, "", registryError(src, err)
		}
		return img, desc.Digest.String(), nil
	}
	return nil, "", fmt.Errorf("%s: %w %s", src.Ref, ErrMediaType, desc.MediaType)
}

// AuthError is a registry that wants credentials, or refused the ones it
// was given; it matches ErrAuth.
type AuthError struct{ Registry string }

func (e *AuthError) Error() string {
	return fmt.Sprintf("%s for %s (or the credentials were refused)", ErrAuth, e.Registry)
}

func (e *AuthError) Is(target error) bool { return target == ErrAuth }

// registryError says what went wrong in the terms of the sentinel errors.
func registryError(src refs.Source, err error) error {
	var te *transport.Error
	if errors.As(err, &te) {
		switch {
		case te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden || hasCode(te, transport.UnauthorizedErrorCode, transport.DeniedErrorCode):
			return &AuthError{Registry: refs.NormalizeHost(src.Registry())}
		case te.StatusCode == http.StatusNotFound || hasCode(te, transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode):
			return fmt.Errorf("%s: %w in %s", src.Ref, ErrNotFound, src.Registry())
		}
	}
	var ne net.Error
	var oe *net.OpError
	if errors.As(err, &oe) || errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w at %s: %v", ErrUnreachable, src.Registry(), rootCause(err))
	}
	return fmt.Errorf("%s: %w", src.Ref, err)
}

func hasCode(te *transport.Error, codes ...transport.ErrorCode) bool {
	for _, d := range te.Errors {
		for _, c := range codes {
			if d.Code == c {
				return true
			}
		}
	}
	return false
}

// rootCause is the innermost error, for a message that does not repeat the
// URL three times.
func rootCause(err error) error {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err
		}
		err = u
	}
}

// layerTypes are the layer media types isobox unpacks.
var layerTypes = map[types.MediaType]bool{
	types.DockerLayer: true, types.DockerUncompressedLayer: true,
	types.OCILayer: true, types.OCIUncompressedLayer: true, types.OCILayerZStd: true,
	types.DockerForeignLayer: true, types.OCIRestrictedLayer: true, types.OCIUncompressedRestrictedLayer: true,
}

// store brings img's missing layers in and publishes it. compressed says
// to fetch each layer as its blob (a registry's, verified against its
// digest); an archive's layers are read as they are stored.
func (o Options) store(ctx context.Context, img v1.Image, names, digests, aliases []string, plat string, compressed bool) (image.Image, error) {
	rec, config, layers, err := describe(img)
	if err != nil {
		return image.Image{}, err
	}
	rec.Names, rec.Digests, rec.Aliases, rec.Platform = names, digests, aliases, plat
	chains := make([]string, len(rec.Layers))
	for i, l := range rec.Layers {
		chains[i] = l.ChainID
	}
	unlock, err := o.Store.LockLayers(chains)
	if err != nil {
		return image.Image{}, err
	}
	defer unlock()
	var missing []int
	for i, l := range rec.Layers {
		if !o.Store.HasLayer(l.ChainID) {
			missing = append(missing, i)
		}
	}
	if len(missing) > 0 {
		jobs, cleanup, err := o.fetchLayers(ctx, layers, rec.Layers, missing, compressed)
		defer cleanup()
		if err != nil {
			return image.Image{}, err
		}
		if err := o.Unpack(jobs); err != nil {
			return image.Image{}, err
		}
	}
	rec.Stored = time.Now().UTC()
	if err := o.Store.Commit(rec, config); err != nil {
		return image.Image{}, err
	}
	return rec, nil
}

// describe reads img's manifest and config into a record, checking what
// the store relies on: the config's digest, one DiffID per layer, media
// types isobox knows.
func describe(img v1.Image) (image.Image, []byte, []v1.Layer, error) {
	var rec image.Image
	m, err := img.Manifest()
	if err != nil {
		return rec, nil, nil, fmt.Errorf("manifest: %w", err)
	}
	config, err := img.RawConfigFile()
	if err != nil {
		return rec, nil, nil, fmt.Errorf("config: %w", err)
	}
	sum := sha256.Sum256(config)
	got := "sha256:" + hex.EncodeToString(sum[:])
	if m.Config.Digest.String() != "" && got != m.Config.Digest.String() {
		return rec, nil, nil, fmt.Errorf("config blob %s: %w (its content is %s)", m.Config.Digest, ErrDigest, got)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return rec, nil, nil, fmt.Errorf("config: %w", err)
	}
	if cf.RootFS.Type != "" && cf.RootFS.Type != "layers" {
		return rec, nil, nil, fmt.Errorf("config: rootfs type %q: %w", cf.RootFS.Type, ErrMediaType)
	}
	if len(cf.RootFS.DiffIDs) != len(m.Layers) {
		return rec, nil, nil, fmt.Errorf("config lists %d layers, the manifest %d", len(cf.RootFS.DiffIDs), len(m.Layers))
	}
	if len(m.Layers) == 0 {
		return rec, nil, nil, errors.New("the image has no layers")
	}
	if len(m.Layers) > 500 {
		return rec, nil, nil, fmt.Errorf("the image has %d layers; overlayfs stacks at most 500", len(m.Layers))
	}
	layers, err := img.Layers()
	if err != nil {
		return rec, nil, nil, fmt.Errorf("layers: %w", err)
	}
	diffIDs := make([]string, len(cf.RootFS.DiffIDs))
	for i, d := range cf.RootFS.DiffIDs {
		diffIDs[i] = d.String()
	}
	chains := image.ChainIDs(diffIDs)
	for i, l := range m.Layers {
		if m.MediaType != "" && !layerTypes[l.MediaType] {
			return rec, nil, nil, fmt.Errorf("layer %s: %w %s", l.Digest, ErrMediaType, l.MediaType)
		}
		rec.Layers = append(rec.Layers, image.Layer{DiffID: diffIDs[i], ChainID: chains[i], Digest: l.Digest.String(), Size: l.Size})
	}
	rec.ID = got
	rec.Created = cf.Created.Time.UTC()
	return rec, config, layers, nil
}

// fetchLayers copies the missing layers' blobs into the store's temporary
// files through a bounded pool of workers, each of which opens, reads and
// closes one layer at a time (go-containerregistry's remote layers hold a
// request slot from open to close, so opening them all at once would
// block), hashing as it goes.
func (o Options) fetchLayers(ctx context.Context, layers []v1.Layer, recs []image.Layer, missing []int, compressed bool) ([]layer.Job, func(), error) {
	jobs := make([]layer.Job, len(missing))
	files := make([]string, len(missing))
	cleanup := func() {
		for _, f := range files {
			if f != "" {
				os.Remove(f)
			}
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	bars := newProgress(o.Progress, o.Quiet, missing, recs)
	work := make(chan int)
	errs := make(chan error, len(missing))
	workers := min(4, len(missing))
	for w := 0; w < workers; w++ {
		go func() {
			for k := range work {
				i := missing[k]
				path, err := o.fetchLayer(ctx, layers[i], recs[i], compressed, bars.reader(k))
				files[k] = path
				if err != nil {
					cancel()
					bars.fail(k)
				} else {
					bars.done(k)
				}
				jobs[k] = layer.Job{Blob: path, Digest: recs[i].Digest, DiffID: recs[i].DiffID, ChainID: recs[i].ChainID}
				errs <- err
			}
		}()
	}
	go func() {
		defer close(work)
		for k := range missing {
			select {
			case work <- k:
			case <-ctx.Done():
				for range missing[k:] {
					errs <- ctx.Err()
				}
				return
			}
		}
	}()
	var first error
	for range missing {
		if err := <-errs; err != nil && (first == nil || errors.Is(first, context.Canceled)) {
			first = err
		}
	}
	bars.wait()
	return jobs, cleanup, first
}

// fetchLayer copies one layer into a temporary file of the store and
// verifies its digest (a registry's blob) on the way.
func (o Options) fetchLayer(ctx context.Context, l v1.Layer, rec image.Layer, compressed bool, wrap func(io.Reader) io.Reader) (string, error) {
	f, err := o.Store.TempFile(image.Hex(rec.DiffID)[:12])
	if err != nil {
		return "", err
	}
	path := f.Name()
	var rc io.ReadCloser
	if compressed {
		rc, err = l.Compressed()
	} else {
		rc, err = l.Uncompressed()
	}
	if err != nil {
		f.Close()
		return path, fmt.Errorf("blob %s: %w", rec.Digest, err)
	}
	defer rc.Close()
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(f, h), wrap(ctxReader{ctx, rc}))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		if strings.Contains(err.Error(), "checksum") {
			return path, fmt.Errorf("blob %s: %w", rec.Digest, ErrDigest)
		}
		return path, fmt.Errorf("blob %s: %w", rec.Digest, err)
	}
	if compressed {
		if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != rec.Digest {
			return path, fmt.Errorf("blob %s: %w (its content is %s)", rec.Digest, ErrDigest, got)
		}
	}
	return path, nil
}

// ctxReader stops a copy when the pull is cancelled (a sibling failed).
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
