package tests

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// registry is Debian's docker-registry (Docker's distribution), started by
// the test on 127.0.0.1 with its own storage, behind a small proxy that
// counts the blob requests and can hold them back.
type registry struct {
	addr    string // the proxy's host:port, what isobox is given
	storage string
	blobs   sync.Map // digest -> *atomic.Int32 of GETs
	// stall, when set, makes blob responses stop after their first bytes
	// until it is closed.
	stall atomic.Pointer[chan struct{}]
	user  string
	pass  string
}

func requireRegistry(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("docker-registry")
	if err != nil {
		if p2, err2 := exec.LookPath("/usr/bin/docker-registry"); err2 == nil {
			return p2
		}
		t.Skip("docker-registry is not installed (make test installs it)")
	}
	return p
}

// startRegistry starts a registry for one test; with a user it asks for
// htpasswd basic auth (apache2-utils' htpasswd makes the file).
func startRegistry(t *testing.T, user, pass string) *registry {
	t.Helper()
	bin := requireRegistry(t)
	dir := t.TempDir()
	port := freePort(t, "tcp")
	auth := ""
	if user != "" {
		htpasswd := requireBinary(t, "htpasswd")
		if out, err := exec.Command(htpasswd, "-Bbc", filepath.Join(dir, "htpasswd"), user, pass).CombinedOutput(); err != nil {
			t.Fatalf("htpasswd: %v: %s", err, out)
		}
		auth = fmt.Sprintf("auth:\n  htpasswd:\n    realm: isobox-test\n    path: %s\n", filepath.Join(dir, "htpasswd"))
	}
	conf := fmt.Sprintf("version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:%d\n%s", filepath.Join(dir, "data"), port, auth)
	if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", filepath.Join(dir, "config.yml"))
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	backend := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + backend + "/v2/")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("docker-registry did not start: %v\n%s", err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	r := &registry{storage: filepath.Join(dir, "data"), user: user, pass: pass}
	r.addr = r.proxy(t, backend)
	return r
}

// proxy forwards to the registry, counting GETs of blobs.
func (r *registry) proxy(t *testing.T, backend string) string {
	u, _ := url.Parse("http://" + backend)
	rp := httputil.NewSingleHostReverseProxy(u)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if i := strings.Index(req.URL.Path, "/blobs/"); i >= 0 && req.Method == http.MethodGet {
			d := req.URL.Path[i+len("/blobs/"):]
			n, _ := r.blobs.LoadOrStore(d, new(atomic.Int32))
			n.(*atomic.Int32).Add(1)
			if stall := r.stall.Load(); stall != nil {
				rp.ServeHTTP(&stallingWriter{ResponseWriter: w, stall: *stall}, req)
				return
			}
		}
		rp.ServeHTTP(w, req)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// stallingWriter passes the first 64 KiB, then waits for stall.
type stallingWriter struct {
	http.ResponseWriter
	stall <-chan struct{}
	n     int
}

func (s *stallingWriter) Write(b []byte) (int, error) {
	if s.n > 64<<10 {
		<-s.stall
	}
	s.n += len(b)
	return s.ResponseWriter.Write(b)
}

// blobsRequested counts the blobs asked for at least once.
func (r *registry) blobsRequested() int {
	n := 0
	r.blobs.Range(func(_, _ any) bool { n++; return true })
	return n
}

func (r *registry) blobGets(digest string) int {
	n, ok := r.blobs.Load(digest)
	if !ok {
		return 0
	}
	return int(n.(*atomic.Int32).Load())
}

// push writes an image to the registry under repo:tag and returns the
// reference isobox is given.
func (r *registry) push(t *testing.T, repo string, img v1.Image) string {
	t.Helper()
	ref := r.addr + "/" + repo
	tag, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img, r.remoteAuth()); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	return ref
}

func (r *registry) pushIndex(t *testing.T, repo string, idx v1.ImageIndex) string {
	t.Helper()
	ref := r.addr + "/" + repo
	tag, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(tag, idx, r.remoteAuth()); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	return ref
}

func (r *registry) remoteAuth() remote.Option {
	if r.user == "" {
		return remote.WithAuth(authn.Anonymous)
	}
	return remote.WithAuth(&authn.Basic{Username: r.user, Password: r.pass})
}

// regular and dir are entries of a test layer (archive, import_test.go).
func regular(name, body string) entry {
	return entry{hdr: tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644}, body: body}
}

func dir(name string) entry {
	return entry{hdr: tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o755}}
}

// layerTar makes a layer's tar of entries.
func layerTar(t *testing.T, entries ...entry) []byte { return archive(t, entries) }

// gzLayer is a gzip layer of the tar.
func gzLayer(t *testing.T, b []byte, opts ...tarball.LayerOption) v1.Layer {
	t.Helper()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// busyboxTar is the test rootfs as a layer, owned by root as in an image.
var busyboxTar = sync.OnceValues(func() ([]byte, error) {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	err := filepath.Walk(rootfs, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(rootfs, p)
		if rel == "." {
			return nil
		}
		link := ""
		if fi.Mode()&os.ModeSymlink != 0 {
			link, _ = os.Readlink(p)
		}
		h, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		h.Name, h.Uid, h.Gid, h.Uname, h.Gname = rel, 0, 0, "", ""
		if fi.IsDir() {
			h.Name += "/"
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(tw, f)
			return err
		}
		return nil
	})
	if err == nil {
		err = tw.Close()
	}
	return b.Bytes(), err
})

// busyboxImage is an image of one BusyBox layer plus the given layers,
// with cfg applied.
func busyboxImage(t *testing.T, cfg func(*v1.Config), layers ...v1.Layer) v1.Image {
	t.Helper()
	b, err := busyboxTar()
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, append([]v1.Layer{gzLayer(t, b)}, layers...)...)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", hostArch()
	cf.Created = v1.Time{Time: time.Unix(1700000000, 0)}
	cf.Config.Cmd = []string{"/bin/sh"}
	if cfg != nil {
		cfg(&cf.Config)
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func hostArch() string { return runtime.GOARCH }
