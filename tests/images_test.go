package tests

import (
	"archive/tar"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/compression"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// newImageStore is a test's own state directory, image store
// ($XDG_DATA_HOME) and home (auth files, registries.conf).
func newImageStore(t *testing.T) *store {
	t.Helper()
	s := newStore(t)
	data := privateDir(tester, "data")
	home := privateDir(tester, "home")
	s.env = append(s.env, "XDG_DATA_HOME="+data, "HOME="+home)
	return s
}

func (s *store) dataDir() string { return envValue(s.env, "XDG_DATA_HOME") }
func (s *store) home() string    { return envValue(s.env, "HOME") }

func envValue(env []string, key string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			return v
		}
	}
	return ""
}

var imageIDLine = regexp.MustCompile(`(?m)^[0-9a-f]{64}$`)

// pull pulls ref and returns the ID it printed.
func (s *store) pull(ref string, flags ...string) string {
	s.t.Helper()
	out := s.must(append(append([]string{"pull"}, flags...), ref)...)
	id := imageIDLine.FindString(out)
	if id == "" || strings.TrimSpace(out) != id {
		s.t.Fatalf("pull %s: stdout is not one image ID:\n%s", ref, out)
	}
	return id
}

type imageListEntry struct {
	ID      string   `json:"Id"`
	Names   []string `json:"Names"`
	Digests []string `json:"Digests"`
	Layers  int      `json:"Layers"`
}

func (s *store) images() []imageListEntry {
	s.t.Helper()
	var out []imageListEntry
	if err := json.Unmarshal([]byte(s.must("images", "--json")), &out); err != nil {
		s.t.Fatal(err)
	}
	return out
}

func TestPullRunAnImageAndItStaysIntact(t *testing.T) {
	requireSubIDs(t)
	reg := startRegistry(t, "", "")
	ref := reg.push(t, "busybox:1", busyboxImage(t, nil))
	s := newImageStore(t)
	id := s.pull(ref)
	imgs := s.images()
	if len(imgs) != 1 || imgs[0].ID != id || len(imgs[0].Names) != 1 || imgs[0].Names[0] != ref {
		t.Fatalf("images after pull: %+v", imgs)
	}
	if table := s.must("images"); !strings.Contains(table, id[:12]) || !strings.Contains(table, reg.addr+"/busybox") {
		t.Errorf("images table:\n%s", table)
	}
	// A container deletes everything it can; the next one sees the image
	// as it was.
	r := s.run("run", "--rm", "--net", "none", ref, "sh", "-c", "rm -rf /bin /etc /usr 2>/dev/null; ls /")
	if r.code != 0 || strings.Contains("\n"+r.stdout, "\nbin\n") {
		t.Fatalf("run deleting the image's files: %s", r)
	}
	if got := s.must("run", "--rm", "--net", "none", ref, "sh", "-c", "ls /bin/busybox /etc/passwd && id -u"); !strings.HasSuffix(strings.TrimSpace(got), "0") {
		t.Errorf("second run: %s", got)
	}
	// The layer's files belong to the caller (root in the image) inside
	// the store; the container's own writes never reach it.
	layers, _ := filepath.Glob(filepath.Join(s.dataDir(), "isobox", "layers", "*", "bin", "busybox"))
	if len(layers) != 1 {
		t.Fatalf("layer files: %v", layers)
	}
	st, err := os.Stat(layers[0])
	if err != nil || st.Sys().(*syscall.Stat_t).Uid != tester.uid {
		t.Errorf("layer file %s: %v %+v", layers[0], err, st)
	}
	// ps shows the image.
	s.must("run", "-d", "--name", "img", "--net", "none", ref, "sleep", "1000")
	if c, _ := s.get("img"); c.Image != ref {
		t.Errorf("ps image: %+v", c)
	}
	s.must("rm", "-f", "img")
}

func TestImageConfigGivesTheDefaultsAndTheCommandLineWins(t *testing.T) {
	requireSubIDs(t)
	reg := startRegistry(t, "", "")
	users := gzLayer(t, layerTar(t,
		regular("etc/passwd", "root:x:0:0:root:/root:/bin/sh\napp:x:1234:2345:app:/home/app:/bin/sh\n"),
		regular("etc/group", "root:x:0:\napp:x:2345:\nstaff:x:50:\n"),
	))
	ref := reg.push(t, "configured:1", busyboxImage(t, func(c *v1.Config) {
		c.Entrypoint = []string{"/bin/sh", "-c", `echo "$0 $* user=$(id -u):$(id -g) pwd=$PWD a=$A b=$B path=$PATH"`}
		c.Cmd = []string{"cmd-arg"}
		c.Env = []string{"A=from-image", "B=also-image"}
		c.WorkingDir = "/srv/work"
		c.User = "app"
		c.StopSignal = "SIGUSR1"
	}, users))
	s := newImageStore(t)
	got := strings.TrimSpace(s.must("run", "--rm", "--net", "none", ref))
	want := "cmd-arg  user=1234:2345 pwd=/srv/work a=from-image b=also-image path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	if got != want {
		t.Errorf("image defaults:\n got %q\nwant %q", got, want)
	}
	got = strings.TrimSpace(s.must("run", "--rm", "--net", "none", "-e", "A=flag", "-w", "/tmp", "-u", "0:staff", ref, "x", "y"))
	if want := "x y user=0:50 pwd=/tmp a=flag b=also-image"; !strings.HasPrefix(got, want) {
		t.Errorf("command line over the image:\n got %q\nwant %q...", got, want)
	}
	if got := strings.TrimSpace(s.must("run", "--rm", "--net", "none", "--entrypoint", "/bin/echo", ref, "plain")); got != "plain" {
		t.Errorf("--entrypoint X: %q", got)
	}
	if got := strings.TrimSpace(s.must("run", "--rm", "--net", "none", "--entrypoint", "", ref, "echo", "no-entrypoint")); got != "no-entrypoint" {
		t.Errorf("--entrypoint '': %q", got)
	}
	r := s.run("run", "--rm", "--net", "none", "--entrypoint", "", ref)
	if r.code != 125 || !strings.HasPrefix(r.stderr, "isobox: ") || !strings.Contains(r.stderr, "no command") {
		t.Errorf("no command at all: %s", r)
	}
	// StopSignal reaches the command through stop.
	s.must("run", "-d", "--name", "sig", "--net", "none", "--entrypoint", "/bin/sh", ref, "-c", "trap 'echo got-usr1; exit 3' USR1; while :; do sleep 0.1; done")
	s.must("stop", "-t", "20", "sig")
	if c, _ := s.get("sig"); c.ExitCode == nil || *c.ExitCode != 3 {
		t.Errorf("stop with the image's StopSignal: %+v", c)
	}
}

func TestLayerWhiteoutsOpaqueDirsAndSpecialFilesAreKept(t *testing.T) {
	requireSubIDs(t)
	reg := startRegistry(t, "", "")
	lower := gzLayer(t, layerTar(t,
		dir("data/"),
		regular("data/gone", "deleted above"),
		regular("data/kept", "kept"),
		dir("opaque/"),
		regular("opaque/old", "hidden by the opaque dir"),
	))
	upper := gzLayer(t, layerTar(t,
		regular("data/.wh.gone", ""),
		dir("opaque/"),
		regular("opaque/.wh..wh..opq", ""),
		regular("opaque/new", "new"),
		dir("files/"),
		entry{hdr: tar.Header{Name: "files/suid", Typeflag: tar.TypeReg, Mode: 0o4755}, body: "#!/bin/sh\n"},
		entry{hdr: tar.Header{Name: "files/owned", Typeflag: tar.TypeReg, Mode: 0o644, Uid: 1234, Gid: 1234}, body: "x"},
		entry{hdr: tar.Header{Name: "files/link", Typeflag: tar.TypeLink, Linkname: "files/owned"}},
		entry{hdr: tar.Header{Name: "files/fifo", Typeflag: tar.TypeFifo, Mode: 0o644}},
	))
	ref := reg.push(t, "layers:1", busyboxImage(t, nil, lower, upper))
	s := newImageStore(t)
	s.pull(ref)
	got := s.must("run", "--rm", "--net", "none", ref, "sh", "-c",
		"ls /data; echo --; ls /opaque; echo --; stat -c '%a %u:%g %h %F' /files/suid /files/owned /files/fifo")
	want := "kept\n--\nnew\n--\n4755 0:0 1 regular file\n644 1234:1234 2 regular file\n644 0:0 1 fifo\n"
	if got != want {
		t.Errorf("merged layers:\n got %q\nwant %q", got, want)
	}
}

// layerDigests are the digests of img's layers.
func layerDigests(t *testing.T, img v1.Image) []string {
	t.Helper()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range ls {
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, d.String())
	}
	return out
}

func TestSharedLayersAreFetchedOnceAndStoredOnce(t *testing.T) {
	requireSubIDs(t)
	reg := startRegistry(t, "", "")
	base := busyboxImage(t, nil)
	extra := gzLayer(t, layerTar(t, regular("app/hello", "hello\n")))
	app, err := mutate.AppendLayers(base, extra)
	if err != nil {
		t.Fatal(err)
	}
	baseRef := reg.push(t, "base:1", base)
	appRef := reg.push(t, "app:1", app)
	digests := layerDigests(t, app)
	s := newImageStore(t)
	s.pull(baseRef)
	s.pull(appRef)
	if n := reg.blobGets(digests[0]); n != 1 {
		t.Errorf("the shared base layer was fetched %d times, want once", n)
	}
	if n := reg.blobGets(digests[1]); n != 1 {
		t.Errorf("the new layer was fetched %d times, want once", n)
	}
	layers, _ := filepath.Glob(filepath.Join(s.dataDir(), "isobox", "layers", "*"))
	if len(layers) != 2 {
		t.Errorf("layers on disk: %v, want 2 (the base once)", layers)
	}
	if got := s.must("run", "--rm", "--net", "none", appRef, "cat", "/app/hello"); got != "hello\n" {
		t.Errorf("app image: %q", got)
	}
}

func TestConcurrentPullsOfOneImageFetchEachLayerOnce(t *testing.T) {
	requireSubIDs(t)
	reg := startRegistry(t, "", "")
	img := busyboxImage(t, nil, gzLayer(t, layerTar(t, regular("two", "2"))))
	ref := reg.push(t, "same:1", img)
	s := newImageStore(t)
	results := make(chan result, 3)
	for range 3 {
		go func() { results <- s.run("pull", "-q", ref) }()
	}
	var ids []string
	for range 3 {
		r := <-results
		if r.code != 0 {
			t.Fatalf("concurrent pull: %s", r)
		}
		ids = append(ids, strings.TrimSpace(r.stdout))
	}
	if ids[0] != ids[1] || ids[1] != ids[2] {
		t.Errorf("IDs differ: %v", ids)
	}
	for _, d := range layerDigests(t, img) {
		if n := reg.blobGets(d); n != 1 {
			t.Errorf("layer %s fetched %d times by three pulls, want once", d, n)
		}
	}
	if imgs := s.images(); len(imgs) != 1 {
		t.Errorf("images: %+v", imgs)
	}
	s.must("run", "--rm", "--net", "none", ref, "cat", "/two")
}

// bigLayer is a gzip layer of incompressible data, large enough that a
// fetch of it is still under way when the test kills the pull.
func bigLayer(t *testing.T) v1.Layer {
	t.Helper()
	data := make([]byte, 8<<20)
	rand.Read(data)
	return gzLayer(t, layerTar(t, regular("big", string(data))))
}

func TestPullKilledMidwayLeavesNothingVisibleAndCompletesLater(t *testing.T) {
	requireSubIDs(t)
	reg := startRegistry(t, "", "")
	ref := reg.push(t, "big:1", busyboxImage(t, nil, bigLayer(t)))
	s := newImageStore(t)
	stall := make(chan struct{})
	reg.stall.Store(&stall)
	cmd := command(tester, s.env, binary, "pull", ref)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until both layers are being fetched, then kill -9.
	deadline := time.Now().Add(30 * time.Second)
	for reg.blobsRequested() < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	cmd.Process.Kill()
	cmd.Wait()
	reg.stall.Store(nil)
	close(stall)
	if imgs := s.images(); len(imgs) != 0 {
		t.Fatalf("a killed pull left an image: %+v", imgs)
	}
	if layers, _ := filepath.Glob(filepath.Join(s.dataDir(), "isobox", "layers", "[0-9a-f]*")); len(layers) != 0 {
		t.Errorf("a killed pull left layers in place: %v", layers)
	}
	s.pull(ref)
	if got := s.must("run", "--rm", "--net", "none", ref, "sh", "-c", "wc -c < /big"); strings.TrimSpace(got) != "8388608" {
		t.Errorf("after the second pull: %q", got)
	}
	// What the killed pull left behind is swept by the next removal.
	s.must("rmi", ref)
	if left, _ := filepath.Glob(filepath.Join(s.dataDir(), "isobox", "layers", "*")); len(left) != 0 {
		t.Errorf("after rmi: %v", left)
	}
}

// failsCleanly requires exit 125, one "isobox:" line (a hint may follow)
// with every want in it, and nothing stored.
func (s *store) failsCleanly(r result, want ...string) {
	s.t.Helper()
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	if r.code != 125 || !strings.HasPrefix(lines[len(lines)-1], "isobox: ") && !strings.HasPrefix(lines[0], "isobox: ") {
		s.t.Errorf("want exit 125 and an isobox: line: %s", r)
		return
	}
	msg := ""
	for _, l := range lines {
		if strings.HasPrefix(l, "isobox: ") && !strings.HasPrefix(l, "isobox: hint: ") {
			msg = l
		}
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			s.t.Errorf("message %q lacks %q", msg, w)
		}
	}
	if strings.Contains(r.stderr, "panic") || strings.Contains(r.stderr, "goroutine ") {
		s.t.Errorf("a Go stack trace: %s", r.stderr)
	}
	if imgs := s.images(); len(imgs) != 0 {
		s.t.Errorf("images after a refused pull: %+v", imgs)
	}
	if layers, _ := filepath.Glob(filepath.Join(s.dataDir(), "isobox", "layers", "[0-9a-f]*")); len(layers) != 0 {
		s.t.Errorf("layers after a refused pull: %v", layers)
	}
}

func TestCorruptBlobAndWrongDiffIDAreRefusedAndNotStored(t *testing.T) {
	requireSubIDs(t)
	reg := startRegistry(t, "", "")
	good := gzLayer(t, layerTar(t, regular("good", "good")))
	img := busyboxImage(t, nil, good)
	ref := reg.push(t, "corrupt:1", img)
	// The registry's copy of the second layer is damaged on its disk.
	digest := layerDigests(t, img)[1]
	blob := filepath.Join(reg.storage, "docker/registry/v2/blobs/sha256", digest[7:9], digest[7:], "data")
	b, err := os.ReadFile(blob)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(blob, b, 0o644); err != nil {
		t.Fatal(err)
	}
	s := newImageStore(t)
	s.failsCleanly(s.run("pull", ref), digest)

	// A config whose DiffID does not match the layer's content (a layer
	// of its own: the registry keeps one copy of a blob for all its
	// repositories, and that one is damaged now).
	honest := busyboxImage(t, nil, gzLayer(t, layerTar(t, regular("other", "other"))))
	cf, _ := honest.ConfigFile()
	cf = cf.DeepCopy()
	cf.RootFS.DiffIDs[1] = v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}
	lying, err := mutate.ConfigFile(honest, cf)
	if err != nil {
		t.Fatal(err)
	}
	ref = reg.push(t, "lying:1", lying)
	s.failsCleanly(s.run("pull", ref), "DiffID", strings.Repeat("ab", 32))
}

func TestZstdUncompressedAndMultiPlatformImages(t *testing.T) {
	requireSubIDs(t)
	reg := startRegistry(t, "", "")
	zst := gzLayer(t, layerTar(t, regular("zstd", "zstd layer\n")), tarball.WithCompression(compression.ZStd), tarball.WithMediaType(types.OCILayerZStd))
	plain := static.NewLayer(layerTar(t, regular("plain", "plain layer\n")), types.OCIUncompressedLayer)
	ref := reg.push(t, "compressions:1", busyboxImage(t, nil, zst, plain))
	s := newImageStore(t)
	s.pull(ref)
	if got := s.must("run", "--rm", "--net", "none", ref, "cat", "/zstd", "/plain"); got != "zstd layer\nplain layer\n" {
		t.Errorf("zstd and plain layers: %q", got)
	}

	// An index of two platforms: the host's by default, --platform for the other.
	other := "arm64"
	if hostArch() == "arm64" {
		other = "amd64"
	}
	mine := busyboxImage(t, nil, gzLayer(t, layerTar(t, regular("arch", "mine\n"))))
	theirs := busyboxImage(t, func(*v1.Config) {}, gzLayer(t, layerTar(t, regular("arch", "theirs\n"))))
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: mine, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: hostArch()}}},
		mutate.IndexAddendum{Add: theirs, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: other}}},
	)
	ref = reg.pushIndex(t, "multi:1", idx)
	s.pull(ref)
	if got := s.must("run", "--rm", "--net", "none", ref, "cat", "/arch"); got != "mine\n" {
		t.Errorf("default platform: %q", got)
	}
	s.pull(ref, "--platform", "linux/"+other)
	if got := s.must("run", "--rm", "--net", "none", "--pull", "never", ref, "cat", "/arch"); got != "theirs\n" {
		t.Errorf("--platform linux/%s, then run: %q", other, got)
	}
	r := s.run("pull", "--platform", "linux/s390x", ref)
	if r.code != 125 || !strings.Contains(r.stderr, "linux/s390x") || !strings.Contains(r.stderr, "linux/"+other) {
		t.Errorf("no such platform: %s", r)
	}
}

func TestSixtyLayerImageRuns(t *testing.T) {
	requireSubIDs(t)
	reg := startRegistry(t, "", "")
	var layers []v1.Layer
	for i := range 59 {
		layers = append(layers, static.NewLayer(layerTar(t, regular(fmt.Sprintf("layers/%02d", i), fmt.Sprintln(i))), types.OCIUncompressedLayer))
	}
	ref := reg.push(t, "sixty:1", busyboxImage(t, nil, layers...))
	s := newImageStore(t)
	s.pull(ref)
	if got := s.must("run", "--rm", "--net", "none", ref, "sh", "-c", "ls /layers | wc -l; cat /layers/58"); got != "59\n58\n" {
		t.Errorf("60 layers: %q", got)
	}
}

func TestLayerEscapesWriteNothingOutsideTheStore(t *testing.T) {
	requireSubIDs(t)
	reg := startRegistry(t, "", "")
	outside := userDir(tester, "outside")
	cases := map[string][]entry{
		"dotdot":   {regular("../../../../../../.."+outside+"/dotdot", "x")},
		"absolute": {regular(outside+"/absolute", "x")},
		"symlink": {
			{hdr: tar.Header{Name: "link", Typeflag: tar.TypeSymlink, Linkname: outside}},
			regular("link/through-symlink", "x"),
		},
		"hardlink": {{hdr: tar.Header{Name: "hard", Typeflag: tar.TypeLink, Linkname: "../../../../../../etc/passwd"}}},
		"whiteout": {regular("../../../../../../.."+outside+"/.wh.victim", "")},
	}
	if err := os.WriteFile(filepath.Join(outside, "victim"), []byte("still here"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, entries := range cases {
		t.Run(name, func(t *testing.T) {
			ref := reg.push(t, "escape-"+name+":1", busyboxImage(t, nil, gzLayer(t, layerTar(t, entries...))))
			s := newImageStore(t)
			s.failsCleanly(s.run("pull", ref))
			left, _ := os.ReadDir(outside)
			if len(left) != 1 || left[0].Name() != "victim" {
				t.Errorf("outside the store: %v", left)
			}
		})
	}
}

func TestLoginToAPrivateRegistryThenPull(t *testing.T) {
	requireSubIDs(t)
	reg := startRegistry(t, "alice", "s3cret")
	ref := reg.push(t, "private:1", busyboxImage(t, nil))
	s := newImageStore(t)
	r := s.run("pull", ref)
	s.failsCleanly(r, "authentication required", reg.addr)
	if !strings.Contains(r.stderr, "isobox: hint: isobox login "+reg.addr) {
		t.Errorf("no login hint: %s", r.stderr)
	}
	r = s.runIn("wrong\n", "login", "-u", "alice", "--password-stdin", reg.addr)
	if r.code != 125 || !strings.Contains(r.stderr, "refused") {
		t.Errorf("login with a wrong password: %s", r)
	}
	authFile := filepath.Join(envValue(s.env, "XDG_RUNTIME_DIR"), "containers", "auth.json")
	if _, err := os.Stat(authFile); err == nil {
		t.Errorf("a refused login wrote %s", authFile)
	}
	if r := s.runIn("s3cret\n", "login", "-u", "alice", "--password-stdin", reg.addr); r.code != 0 || !strings.Contains(r.stdout, "Login Succeeded") {
		t.Fatalf("login: %s", r)
	}
	st, err := os.Stat(authFile)
	if err != nil || st.Mode().Perm() != 0o600 || st.Sys().(*syscall.Stat_t).Uid != tester.uid {
		t.Fatalf("podman's auth file %s: %v %v", authFile, st, err)
	}
	s.pull(ref)
	if r := s.run("logout", reg.addr); r.code != 0 {
		t.Errorf("logout: %s", r)
	}
	if r := s.run("pull", "--pull", "always", ref); r.code == 0 {
		t.Errorf("pull after logout succeeded: %s", r)
	}

	// Without XDG_RUNTIME_DIR (su -, a Slurm job) the login goes to
	// ~/.config/containers/auth.json, and Docker's config.json is read too.
	noRuntime := &store{t: t, env: []string{"XDG_RUNTIME_DIR=", "XDG_DATA_HOME=" + privateDir(tester, "data"), "HOME=" + s.home()}}
	if r := noRuntime.runIn("s3cret\n", "login", "-u", "alice", "--password-stdin", reg.addr); r.code != 0 {
		t.Fatalf("login without XDG_RUNTIME_DIR: %s", r)
	}
	if _, err := os.Stat(filepath.Join(s.home(), ".config", "containers", "auth.json")); err != nil {
		t.Errorf("login without XDG_RUNTIME_DIR: %v", err)
	}
	noRuntime.pull(ref)
}

func TestDockerSaveAndOCILayoutArchivesLoad(t *testing.T) {
	requireSubIDs(t)
	img := busyboxImage(t, nil, gzLayer(t, layerTar(t, regular("loaded", "from an archive\n"))))
	dir := userDir(tester, "archives")
	save := filepath.Join(dir, "save.tar")
	tag, _ := name.NewTag("example.org/loaded:v1")
	if err := tarball.WriteToFile(save, tag, img); err != nil {
		t.Fatal(err)
	}
	lay := filepath.Join(dir, "layout")
	p, err := layout.Write(lay, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "example.org/layout:v2"})); err != nil {
		t.Fatal(err)
	}
	filepath.Walk(dir, func(p string, _ os.FileInfo, _ error) error { os.Chmod(p, 0o755); return nil })
	s := newImageStore(t)
	if out := s.must("load", "-i", save); !strings.Contains(out, "example.org/loaded:v1") {
		t.Errorf("load docker save: %q", out)
	}
	if got := s.must("run", "--rm", "--net", "none", "--pull", "never", "example.org/loaded:v1", "cat", "/loaded"); got != "from an archive\n" {
		t.Errorf("run a loaded image: %q", got)
	}
	if out := s.must("load", lay); !strings.Contains(out, "example.org/layout:v2") {
		t.Errorf("load OCI layout: %q", out)
	}
	if imgs := s.images(); len(imgs) != 1 || len(imgs[0].Names) != 2 {
		t.Errorf("one image, two names: %+v", imgs)
	}
	// A tar of the layout, on standard input.
	layoutTar := filepath.Join(dir, "layout.tar")
	if out, err := exec.Command("tar", "-C", lay, "-cf", layoutTar, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v %s", err, out)
	}
	os.Chmod(layoutTar, 0o644)
	s.must("rmi", "-a")
	f, err := os.ReadFile(layoutTar)
	if err != nil {
		t.Fatal(err)
	}
	if r := s.runIn(string(f), "load"); r.code != 0 || !strings.Contains(r.stdout, "example.org/layout:v2") {
		t.Errorf("load a tar of an OCI layout from stdin: %s", r)
	}
	if r := s.runIn("not an archive", "load"); r.code != 125 || !strings.HasPrefix(r.stderr, "isobox: ") {
		t.Errorf("load of junk: %s", r)
	}
}

func TestRmiRefusesAnImageInUseAndForceRemovesTheContainer(t *testing.T) {
	requireSubIDs(t)
	reg := startRegistry(t, "", "")
	ref := reg.push(t, "inuse:1", busyboxImage(t, nil))
	s := newImageStore(t)
	id := s.pull(ref)
	s.must("run", "-d", "--name", "user1", "--net", "none", ref, "sleep", "1000")
	r := s.run("rmi", ref)
	if r.code != 125 || !strings.Contains(r.stderr, "user1") {
		t.Errorf("rmi of an image in use: %s", r)
	}
	if imgs := s.images(); len(imgs) != 1 {
		t.Fatalf("the refused rmi removed the image: %+v", imgs)
	}
	var inspect []map[string]any
	if err := json.Unmarshal([]byte(s.must("image", "inspect", id[:12])), &inspect); err != nil || len(inspect) != 1 || inspect[0]["Id"] != id {
		t.Errorf("image inspect: %v %v", inspect, err)
	}
	out := s.must("rmi", "-f", ref)
	if !strings.Contains(out, "Deleted: "+id) {
		t.Errorf("rmi -f: %q", out)
	}
	if _, ok := s.get("user1"); ok {
		t.Error("rmi -f left the container")
	}
	if left, _ := filepath.Glob(filepath.Join(s.dataDir(), "isobox", "layers", "*")); len(left) != 0 {
		t.Errorf("layers left after rmi: %v", left)
	}
	s.pull(ref)
	// A running oci container of the image (a Slurm step, say), under
	// oci's default --root: rmi refuses, -f too, and leaves it to its
	// engine to delete.
	b := userDir(tester, "image-bundle")
	s.must("oci", "spec", "--image", ref, "-b", b)
	editConfig(t, b, setArgs("sleep", "1000"))
	s.ociDetached("oci", "run", "-d", "-b", b, "step")
	t.Cleanup(func() { s.run("oci", "delete", "-f", "step") })
	for _, rmi := range [][]string{{"rmi", ref}, {"rmi", "-f", ref}} {
		if r := s.run(rmi...); r.code != 125 || !strings.Contains(r.stderr, "oci container step") || len(s.images()) != 1 {
			t.Errorf("%v of an image an oci container runs from: %s", rmi, r)
		}
	}
	if s.must("image", "prune", "-a"); len(s.images()) != 1 {
		t.Error("prune -a removed the image an oci container runs from")
	}
	s.must("oci", "delete", "-f", "step")
	// prune: an unnamed image goes, a named one only with -a.
	s.must("image", "prune")
	if len(s.images()) != 1 {
		t.Error("prune removed a named image")
	}
	s.must("image", "prune", "-a")
	if len(s.images()) != 0 {
		t.Error("prune -a kept an image no container uses")
	}
}

func TestImageBadInputIsOneLineAndStoresNothing(t *testing.T) {
	requireSubIDs(t)
	reg := startRegistry(t, "", "")
	ref := reg.push(t, "there:1", busyboxImage(t, nil))
	s := newImageStore(t)
	dead := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"pull", "Bad/UPPER"}, []string{"invalid image reference"}},
		{[]string{"pull", reg.addr + "/missing:1"}, []string{"not found", reg.addr}},
		{[]string{"pull", reg.addr + "/there:nope"}, []string{"not found"}},
		{[]string{"pull", dead + "/x:1"}, []string{"does not answer", dead}},
		{[]string{"run", "--pull", "never", ref}, []string{"not known", "--pull never"}},
		{[]string{"run", "--platform", "nonsense", ref}, []string{"--platform"}},
		{[]string{"rmi", "nothing-like-this"}, []string{"not known"}},
	} {
		s.failsCleanly(s.run(c.args...), c.want...)
	}
}

func TestShortNamesFollowRegistriesConf(t *testing.T) {
	requireSubIDs(t)
	reg := startRegistry(t, "", "")
	reg.push(t, "library/tiny:latest", busyboxImage(t, nil, gzLayer(t, layerTar(t, regular("from", "mirror\n")))))
	s := newImageStore(t)
	conf := filepath.Join(s.home(), ".config", "containers")
	if err := os.MkdirAll(conf, 0o755); err != nil {
		t.Fatal(err)
	}
	// docker.io is served by its mirror on 127.0.0.1: nothing leaves the
	// machine, and the image is stored under its docker.io name.
	body := fmt.Sprintf("unqualified-search-registries = [\"docker.io\"]\n\n[[registry]]\nprefix = \"docker.io\"\nlocation = \"127.0.0.1:1\"\n\n[[registry.mirror]]\nlocation = %q\ninsecure = true\n", reg.addr)
	if err := os.WriteFile(filepath.Join(conf, "registries.conf"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	filepath.Walk(s.home(), func(p string, _ os.FileInfo, _ error) error {
		os.Chown(p, int(tester.uid), int(tester.gid))
		return nil
	})
	if got := s.must("run", "--rm", "--net", "none", "tiny", "cat", "/from"); !strings.HasSuffix(got, "mirror\n") {
		t.Errorf("run tiny: %q", got)
	}
	if imgs := s.images(); len(imgs) != 1 || imgs[0].Names[0] != "docker.io/library/tiny:latest" {
		t.Errorf("stored as: %+v", imgs)
	}
}

func TestImageContainersTakeVolumesReadOnlyAndExec(t *testing.T) {
	requireSubIDs(t)
	reg := startRegistry(t, "", "")
	ref := reg.push(t, "opts:1", busyboxImage(t, nil))
	s := newImageStore(t)
	vol := userDir(tester, "vol")
	if err := os.WriteFile(filepath.Join(vol, "shared"), []byte("from the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got := s.must("run", "--rm", "--net", "none", "--read-only", "-v", vol+":/data:ro", ref, "sh", "-c", "cat /data/shared; touch /etc/x 2>&1 | grep -c Read-only")
	if got != "from the host\n1\n" {
		t.Errorf("-v and --read-only with an image: %q", got)
	}
	s.must("run", "-d", "--name", "ex", "--net", "none", ref, "sh", "-c", "echo inside > /marker; sleep 1000")
	deadline := time.Now().Add(10 * time.Second)
	for {
		if r := s.run("exec", "ex", "cat", "/marker"); r.code == 0 && r.stdout == "inside\n" {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("exec into an image's container: %s", r)
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.must("rm", "-f", "ex")
	if got := s.must("run", "--rm", "--net", "none", ref, "sh", "-c", "test -e /marker && echo leaked || echo clean"); got != "clean\n" {
		t.Errorf("a container's write reached the image: %q", got)
	}
}

func TestFullDiskDuringUnpackStoresNothing(t *testing.T) {
	requireSubIDs(t)
	requireRoot(t, "mount a small tmpfs for the store")
	reg := startRegistry(t, "", "")
	// Small compressed, 16 MiB unpacked: the download fits, the unpack not.
	zeros := gzLayer(t, layerTar(t, regular("zeros", strings.Repeat("\x00", 16<<20))))
	ref := reg.push(t, "big-unpacked:1", busyboxImage(t, nil, zeros))
	s := newImageStore(t)
	small := privateDir(tester, "small")
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=8m,mode=0700,uid=%d,gid=%d", tester.uid, tester.gid), "tmpfs", small).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs for the test: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", small).Run() })
	for i, kv := range s.env {
		if strings.HasPrefix(kv, "XDG_DATA_HOME=") {
			s.env[i] = "XDG_DATA_HOME=" + small
		}
	}
	s.failsCleanly(s.run("pull", ref), "no space left on device")
	if left, _ := filepath.Glob(filepath.Join(small, "isobox", "layers", "*")); len(left) != 0 {
		t.Errorf("a full disk left layers: %v", left)
	}
}
