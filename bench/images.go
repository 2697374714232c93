package main

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// The image section: a Debian-sized image (debootstrap --variant=minbase
// bookworm, built once and kept in debianCache; Debian's mirror is the one
// place the bench reaches outside this machine), pushed to Debian's
// docker-registry on 127.0.0.1, then pulled from an empty store by isobox,
// by rootless podman (overlay driver) and by skopeo + umoci, and started.

const debianCache = "/var/cache/isobox-bench"

// imageRuns is how many times each pull is timed (they take seconds).
const imageRuns = 5

func benchImages(dir string, pod *podman, results map[string]float64) error {
	fmt.Println("\n== 6. images: pull and unpack from a registry on 127.0.0.1, from an empty store (median of", imageRuns, "interleaved), then start")
	if os.Geteuid() != 0 {
		fmt.Println("images: skipped: debootstrap and the registry need the bench to run as root")
		return nil
	}
	reg, stop, err := startBenchRegistry(dir)
	if err != nil {
		fmt.Println("images: skipped:", err)
		return nil
	}
	defer stop()
	base, app, err := debianImages()
	if err != nil {
		fmt.Println("images: skipped:", err)
		return nil
	}
	baseRef, appRef := reg+"/bench/debian:base", reg+"/bench/debian:app"
	for ref, img := range map[string]v1.Image{baseRef: base, appRef: app} {
		r, _ := name.ParseReference(ref)
		if err := remote.Write(r, img, remote.WithAuth(authn.Anonymous)); err != nil {
			return fmt.Errorf("push %s: %w", ref, err)
		}
	}
	gz, unpacked := imageSizes(base)
	fmt.Printf("image: debootstrap --variant=minbase bookworm, one layer, %.1f MB gzip, %.1f MB unpacked\n", float64(gz)/1e6, float64(unpacked)/1e6)

	scratch := filepath.Join(dir, "images")
	if err := os.Mkdir(scratch, 0o755); err != nil {
		return err
	}
	if cred != nil {
		os.Chown(scratch, int(cred.Uid), int(cred.Gid))
	}
	n := 0
	fresh := func() string {
		n++
		d := filepath.Join(scratch, strconv.Itoa(n))
		command("mkdir", "-m", "700", d).Run()
		return d
	}
	type puller struct {
		name string
		argv func(d string) []string
		env  func(d string) []string
	}
	pullers := []puller{{
		name: "isobox pull",
		argv: func(string) []string { return []string{runner, "pull", "-q", baseRef} },
		env:  func(d string) []string { return []string{"XDG_DATA_HOME=" + d} },
	}}
	if pod != nil {
		pullers = append(pullers, puller{
			name: "podman pull (overlay)",
			argv: func(d string) []string {
				return []string{"podman", "--root", d + "/root", "--runroot", d + "/run", "--storage-driver", "overlay", "pull", "-q", "--tls-verify=false", baseRef}
			},
		})
	}
	_, errS := exec.LookPath("skopeo")
	_, errU := exec.LookPath("umoci")
	if errS == nil && errU == nil {
		pullers = append(pullers, puller{
			name: "skopeo copy + umoci unpack",
			argv: func(d string) []string {
				return []string{"sh", "-c", "skopeo copy -q --src-tls-verify=false docker://" + baseRef + " oci:" + d + "/oci:base && umoci unpack --rootless --image " + d + "/oci:base " + d + "/bundle"}
			},
		})
	} else {
		fmt.Println("skopeo + umoci: not installed, skipped (sudo apt-get install skopeo umoci)")
	}
	times := map[string][]time.Duration{}
	var dirs []string
	for i := 0; i < imageRuns; i++ {
		for _, p := range pullers {
			d := fresh()
			dirs = append(dirs, d)
			c := command(p.argv(d)[0], p.argv(d)[1:]...)
			if p.env != nil {
				c.Env = append(c.Env, p.env(d)...)
			}
			start := time.Now()
			if out, err := c.CombinedOutput(); err != nil {
				return fmt.Errorf("%s: %v %s", p.name, err, lastLine(out))
			}
			times[p.name] = append(times[p.name], time.Since(start))
		}
	}
	for _, p := range pullers {
		med, lo, hi := stats(times[p.name])
		results["pull_s "+p.name] = med.Seconds()
		fmt.Printf("%-32s median %6.2f s   (min %.2f, max %.2f)\n", p.name, med.Seconds(), lo.Seconds(), hi.Seconds())
	}
	ratioS := func(a, b, label, target string) {
		va, oka := results["pull_s "+a]
		vb, okb := results["pull_s "+b]
		if oka && okb {
			results["ratio "+label] = va / vb
			fmt.Printf("ratio %s: %.2f %s\n", label, va/vb, target)
		}
	}
	ratioS("isobox pull", "podman pull (overlay)", "isobox pull/podman pull", "(target <= 0.5)")
	ratioS("isobox pull", "skopeo copy + umoci unpack", "isobox pull/skopeo+umoci", "")

	// Start: a stored image, against podman's and isobox's own start of a
	// directory (the BusyBox rootfs of sections 1-2).
	store := fresh()
	withStore := func(c *exec.Cmd) *exec.Cmd { c.Env = append(c.Env, "XDG_DATA_HOME="+store); return c }
	if out, err := withStore(command(runner, "pull", "-q", baseRef)).CombinedOutput(); err != nil {
		return fmt.Errorf("isobox pull: %v %s", err, lastLine(out))
	}
	peers := []peer{
		{name: "isobox run IMAGE", argv: []string{runner, "run", "--rm", "--net", "none", baseRef, "/bin/true"}, env: []string{"XDG_DATA_HOME=" + store}},
		{name: "isobox run DIR", argv: []string{runner, "run", "--rm", "--net", "none", rootfs, "/bin/true"}},
	}
	podStore := fresh()
	if pod != nil {
		podArgs := []string{"podman", "--root", podStore + "/root", "--runroot", podStore + "/run", "--storage-driver", "overlay"}
		if out, err := command(podArgs[0], append(podArgs[1:], "pull", "-q", "--tls-verify=false", baseRef)...).CombinedOutput(); err != nil {
			return fmt.Errorf("podman pull: %v %s", err, lastLine(out))
		}
		peers = append(peers, peer{name: "podman run IMAGE --network=none", argv: append(append(podArgs, pod.global...), "run", "--rm", "--network=none", baseRef, "/bin/true")})
	}
	if err := timePeers(peers, results); err != nil {
		return err
	}
	ratio(results, "start_ms isobox run IMAGE", "start_ms podman run IMAGE --network=none", "isobox/podman, image start", "target <= 0.1")
	ratio(results, "start_ms isobox run IMAGE", "start_ms isobox run DIR", "isobox image/directory start", "target <= 1.2")

	// Disk: a second image on the same base adds only its own layer.
	one := du(filepath.Join(store, "isobox"))
	if out, err := withStore(command(runner, "pull", "-q", appRef)).CombinedOutput(); err != nil {
		return fmt.Errorf("isobox pull: %v %s", err, lastLine(out))
	}
	two := du(filepath.Join(store, "isobox"))
	results["disk_mb one image"], results["disk_mb two images sharing a base"] = float64(one)/1e6, float64(two)/1e6
	fmt.Printf("disk: one image %.1f MB, two sharing its base %.1f MB (the second adds %.2f MB; target: the base counted once)\n", float64(one)/1e6, float64(two)/1e6, float64(two-one)/1e6)

	// What the pulls unpacked belongs to subordinate ids: removed inside
	// the user namespace they are mapped in.
	command(runner, "unshare", "rm", "-rf", scratch).Run()
	return nil
}

// debianImages are the debootstrap image and one more layer on it.
func debianImages() (v1.Image, v1.Image, error) {
	root := filepath.Join(debianCache, "bookworm")
	tarPath := filepath.Join(debianCache, "bookworm.tar")
	if _, err := os.Stat(root); err != nil {
		if _, err := exec.LookPath("debootstrap"); err != nil {
			return nil, nil, fmt.Errorf("debootstrap is not installed (sudo apt-get install debootstrap)")
		}
		fmt.Println("images: building the Debian image once with debootstrap (Debian's mirror), kept in", root)
		tmp := root + ".new"
		os.RemoveAll(tmp)
		if out, err := exec.Command("debootstrap", "--variant=minbase", "bookworm", tmp, "http://deb.debian.org/debian").CombinedOutput(); err != nil {
			return nil, nil, fmt.Errorf("debootstrap: %v %s", err, lastLine(out))
		}
		if err := os.Rename(tmp, root); err != nil {
			return nil, nil, err
		}
		os.Remove(tarPath)
	}
	if _, err := os.Stat(tarPath); err != nil {
		// Device nodes, and the packages debootstrap downloaded, left
		// out, as an image build does.
		if out, err := exec.Command("tar", "-C", root, "--numeric-owner", "--exclude=./dev/*", "--exclude=./proc/*", "--exclude=./sys/*",
			"--exclude=./var/cache/apt/archives/*.deb", "--exclude=./var/lib/apt/lists/*", "-cf", tarPath+".new", ".").CombinedOutput(); err != nil {
			return nil, nil, fmt.Errorf("tar: %v %s", err, out)
		}
		if err := os.Rename(tarPath+".new", tarPath); err != nil {
			return nil, nil, err
		}
	}
	layer, err := tarball.LayerFromFile(tarPath)
	if err != nil {
		return nil, nil, err
	}
	base, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, nil, err
	}
	cf, err := base.ConfigFile()
	if err != nil {
		return nil, nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Config.Cmd = "linux", "amd64", []string{"/bin/bash"}
	if base, err = mutate.ConfigFile(base, cf); err != nil {
		return nil, nil, err
	}
	var extra bytes.Buffer
	if out, err := exec.Command("sh", "-c", "d=$(mktemp -d) && mkdir -p $d/srv && echo app > $d/srv/app && tar -C $d -cf - srv && rm -r $d").Output(); err == nil {
		extra.Write(out)
	} else {
		return nil, nil, err
	}
	b := extra.Bytes()
	small, err := tarball.LayerFromReader(bytes.NewReader(b))
	if err != nil {
		return nil, nil, err
	}
	app, err := mutate.AppendLayers(base, small)
	return base, app, err
}

// imageSizes are the gzip and uncompressed sizes of an image's layers.
func imageSizes(img v1.Image) (gz, plain int64) {
	layers, _ := img.Layers()
	for _, l := range layers {
		s, _ := l.Size()
		gz += s
		if rc, err := l.Uncompressed(); err == nil {
			n, _ := bytes.NewBuffer(nil).ReadFrom(rc)
			rc.Close()
			plain += n
		}
	}
	return gz, plain
}

// du is the disk a tree uses, each hard-linked file once.
func du(p string) int64 {
	out, err := exec.Command("du", "-sb", p).Output()
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(strings.Fields(string(out))[0], 10, 64)
	return n
}

// startBenchRegistry runs Debian's docker-registry on 127.0.0.1.
func startBenchRegistry(dir string) (string, func(), error) {
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		return "", nil, fmt.Errorf("docker-registry is not installed (sudo apt-get install docker-registry)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	data := filepath.Join(dir, "registry")
	conf := filepath.Join(dir, "registry.yml")
	body := fmt.Sprintf("version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%d\n", data, port)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		return "", nil, err
	}
	cmd := exec.Command(bin, "serve", conf)
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() { cmd.Process.Kill(); cmd.Wait() }
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get("http://" + addr + "/v2/"); err == nil {
			resp.Body.Close()
			return addr, stop, nil
		}
		if time.Now().After(deadline) {
			stop()
			return "", nil, fmt.Errorf("docker-registry did not start")
		}
	}
}
