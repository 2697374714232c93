package image

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/isobox/isobox/rootfs"
)

// UnpackJob is a layer to unpack from a fetched blob.
type UnpackJob struct {
	// Blob is the path of the layer as fetched (compressed or not), its
	// digest already verified.
	Blob    string `json:"blob"`
	Digest  string `json:"digest"`
	DiffID  string `json:"diffId"`
	ChainID string `json:"chainId"`
}

// UnpackStats is what Unpack left out, for one note each.
type UnpackStats struct {
	Devices, Xattrs, Unmapped int
}

// Unpack unpacks the layers into the store, in parallel, each under a
// temporary name, verifying each one's DiffID as it streams; only when all
// of them are whole and verified are they renamed into place, so a bad
// layer stores nothing of its image. It runs as root of a user namespace
// with the full mapping (the layers' owners land on the caller and its
// subordinate ids), while the caller of the pull holds the layers' locks.
func (s *Store) Unpack(jobs []UnpackJob, done func(UnpackJob)) (UnpackStats, error) {
	var (
		mu    sync.Mutex
		total UnpackStats
		errs  = make([]error, len(jobs))
		tmps  = make([]string, len(jobs))
		wg    sync.WaitGroup
		slots = make(chan struct{}, max(2, runtime.NumCPU()))
	)
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			slots <- struct{}{}
			defer func() { <-slots }()
			tmp, st, err := s.unpackOne(j)
			tmps[i], errs[i] = tmp, err
			mu.Lock()
			total.Devices += st.Devices
			total.Xattrs += st.Xattrs
			total.Unmapped += st.Unmapped
			mu.Unlock()
			if err == nil && done != nil {
				done(j)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, t := range tmps {
			if t != "" {
				os.RemoveAll(t)
			}
		}
		return total, err
	}
	for i, j := range jobs {
		if err := os.Rename(tmps[i], s.LayerDir(j.ChainID)); err != nil {
			for _, t := range tmps[i:] {
				os.RemoveAll(t)
			}
			return total, fmt.Errorf("layer %s: %w", j.DiffID, err)
		}
	}
	return total, nil
}

// unpackOne unpacks one layer into layers/.tmp-CHAIN-RANDOM, after removing
// what a killed pull left of the same layer (its lock is ours now).
func (s *Store) unpackOne(j UnpackJob) (tmp string, st rootfs.ExtractStats, err error) {
	layers := filepath.Join(s.root, "layers")
	chain := Hex(j.ChainID)
	if !isHex(chain) || !isHex(Hex(j.DiffID)) || strings.ContainsRune(j.Blob, 0) {
		return "", st, fmt.Errorf("layer %s: malformed job", j.DiffID)
	}
	stale, _ := filepath.Glob(filepath.Join(layers, ".tmp-"+chain+"-*"))
	for _, d := range stale {
		os.RemoveAll(d)
	}
	tmp = filepath.Join(layers, ".tmp-"+chain+"-"+randHex())
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return "", st, fmt.Errorf("layer %s: %w", j.DiffID, err)
	}
	fail := func(err error) (string, rootfs.ExtractStats, error) {
		os.RemoveAll(tmp)
		return "", st, fmt.Errorf("layer %s (blob %s): %w", j.DiffID, j.Digest, err)
	}
	f, err := os.Open(j.Blob)
	if err != nil {
		return fail(err)
	}
	defer f.Close()
	plain, err := rootfs.Decompress(f)
	if err != nil {
		return fail(err)
	}
	defer plain.Close()
	h := sha256.New()
	tee := io.TeeReader(plain, h)
	st, err = rootfs.Extract(tee, rootfs.ExtractOptions{Dir: tmp, Owners: true, Layer: true})
	if err != nil {
		return fail(err)
	}
	// What follows the tar's end (its padding) is part of the DiffID.
	if _, err := io.Copy(io.Discard, tee); err != nil {
		return fail(err)
	}
	if got := digestOf(h); got != j.DiffID {
		return fail(fmt.Errorf("%w: the config says %s, the content is %s", ErrDiffIDMismatch, j.DiffID, got))
	}
	return tmp, st, nil
}

// ErrDiffIDMismatch: a layer's content is not what the image's config says.
var ErrDiffIDMismatch = errors.New("DiffID mismatch")

func digestOf(h hash.Hash) string { return "sha256:" + hex.EncodeToString(h.Sum(nil)) }
