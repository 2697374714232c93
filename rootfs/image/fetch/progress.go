package fetch

import (
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"

	"github.com/isobox/isobox/rootfs/image"
)

// progress reports each layer's fetch: on a terminal one bar per layer
// (bytes, rate, then "done"), with mpb as podman does; in a pipe one line
// per layer once it is fetched; nothing with -q.
type progress struct {
	w     io.Writer
	names []string
	p     *mpb.Progress
	bars  []*mpb.Bar
	mu    sync.Mutex
}

func newProgress(w *os.File, quiet bool, missing []int, recs []image.Layer) *progress {
	pr := &progress{}
	if w == nil || quiet {
		return pr
	}
	pr.w = w
	for _, i := range missing {
		pr.names = append(pr.names, fmt.Sprintf("%.12s", image.Hex(recs[i].Digest)))
	}
	if !term.IsTerminal(int(w.Fd())) {
		return pr
	}
	pr.p = mpb.New(mpb.WithOutput(w), mpb.WithWidth(40))
	for k, i := range missing {
		pr.bars = append(pr.bars, pr.p.AddBar(recs[i].Size,
			mpb.PrependDecorators(decor.Name("Copying blob "+pr.names[k]+" ")),
			mpb.AppendDecorators(
				decor.OnAbort(decor.OnComplete(decor.CountersKibiByte("% .1f / % .1f", decor.WCSyncSpace), "done"), "failed"),
				decor.OnComplete(decor.AverageSpeed(decor.SizeB1024(0), "% .1f", decor.WCSyncSpace), ""),
			)))
	}
	return pr
}

// reader wraps layer k's stream to count its bytes.
func (pr *progress) reader(k int) func(io.Reader) io.Reader {
	return func(r io.Reader) io.Reader {
		if pr.bars == nil {
			return r
		}
		proxy, err := pr.bars[k].ProxyReader(r)
		if err != nil {
			return r
		}
		return proxy
	}
}

func (pr *progress) done(k int) {
	switch {
	case pr.bars != nil:
		pr.bars[k].SetTotal(-1, true)
	case pr.w != nil:
		pr.mu.Lock()
		fmt.Fprintf(pr.w, "Copying blob %s done\n", pr.names[k])
		pr.mu.Unlock()
	}
}

func (pr *progress) fail(k int) {
	if pr.bars != nil {
		pr.bars[k].Abort(false)
	}
}

func (pr *progress) wait() {
	if pr.p != nil {
		pr.p.Wait()
	}
}
