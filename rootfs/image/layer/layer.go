// Package layer unpacks image layers into the image store. It runs in
// isobox-image's mapped stage, as root of a user namespace with the
// container's mapping, so that a layer's owners land on the caller and its
// subordinate ids; it is linked only into isobox-image (klauspost/compress,
// its decoders, would cost every isobox process its package initialization).
package layer

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/isobox/isobox/rootfs"
	"github.com/isobox/isobox/rootfs/image"
)

// Job is a layer to unpack from a fetched blob.
type Job struct {
	// Blob is the path of the layer as fetched (compressed or not), its
	// digest already verified.
	Blob    string `json:"blob"`
	Digest  string `json:"digest"`
	DiffID  string `json:"diffId"`
	ChainID string `json:"chainId"`
}

// Stats is what Unpack left out, for one note each.
type Stats struct {
	Devices, Xattrs, Unmapped int
}

// Unpack unpacks the layers into the store, in parallel, each under a
// temporary name, verifying each one's DiffID as it streams; only when all
// of them are whole and verified are they renamed into place, so a bad
// layer stores nothing of its image. It runs as root of a user namespace
// with the full mapping (the layers' owners land on the caller and its
// subordinate ids), while the caller of the pull holds the layers' locks.
func Unpack(s *image.Store, jobs []Job, done func(Job)) (Stats, error) {
	var (
		mu    sync.Mutex
		total Stats
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
			tmp, st, err := unpackOne(s, j)
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

// unpackOne unpacks one layer into a temporary directory of the store.
func unpackOne(s *image.Store, j Job) (tmp string, st rootfs.ExtractStats, err error) {
	if !image.ValidDigest(j.ChainID) || !image.ValidDigest(j.DiffID) || strings.ContainsRune(j.Blob, 0) {
		return "", st, fmt.Errorf("layer %s: malformed job", j.DiffID)
	}
	tmp, err = s.TempLayerDir(j.ChainID)
	if err != nil {
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
	plain, err := decompress(f)
	if err != nil {
		return fail(err)
	}
	defer plain.Close()
	// Decompression and hashing run ahead on another goroutine (another
	// CPU) while this one creates the files: each takes about as long.
	h := sha256.New()
	tee := newReadAhead(io.TeeReader(plain, h))
	defer tee.Close()
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

// readAhead reads its source on a goroutine of its own, up to readAheadChunks
// chunks ahead of its reader.
type readAhead struct {
	chunks chan []byte
	errc   chan error
	done   chan struct{}
	cur    []byte
	err    error
}

const (
	readAheadChunk  = 1 << 20
	readAheadChunks = 16
)

func newReadAhead(src io.Reader) *readAhead {
	r := &readAhead{chunks: make(chan []byte, readAheadChunks), errc: make(chan error, 1), done: make(chan struct{})}
	go func() {
		defer close(r.chunks)
		for {
			b := make([]byte, readAheadChunk)
			n, err := io.ReadFull(src, b)
			if n > 0 {
				select {
				case r.chunks <- b[:n]:
				case <-r.done:
					return
				}
			}
			if err != nil {
				if errors.Is(err, io.ErrUnexpectedEOF) {
					err = io.EOF
				}
				r.errc <- err
				return
			}
		}
	}()
	return r
}

func (r *readAhead) Read(p []byte) (int, error) {
	for len(r.cur) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		b, ok := <-r.chunks
		if !ok {
			r.err = <-r.errc
			continue
		}
		r.cur = b
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

// Close stops the goroutine (a layer refused halfway).
func (r *readAhead) Close() error {
	select {
	case <-r.done:
	default:
		close(r.done)
	}
	return nil
}

// decompress reads a gzip or zstd layer (by its magic number), or passes a
// plain tar through, in-process with klauspost/compress: faster than the
// standard library's gzip, and zstd without a host tool.
func decompress(r io.Reader) (io.ReadCloser, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	head, err := br.Peek(4)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	switch {
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return gzip.NewReader(br)
	case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		d, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		return d.IOReadCloser(), nil
	}
	return io.NopCloser(br), nil
}

func digestOf(h hash.Hash) string { return "sha256:" + hex.EncodeToString(h.Sum(nil)) }
