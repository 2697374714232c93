package tests

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

func TestVolumeSharesAFolderReadWriteAndReadOnly(t *testing.T) {
	share := userDir(tester, "share")
	if r := runAs(tester, nil, "sh", "-c", "echo from-host > "+share+"/in && mkdir "+share+"/sub"); r.code != 0 {
		t.Fatal(r)
	}
	out := inContainer(t, "cat /data/in; echo from-container > /data/out; cat /ro/in; (echo x > /ro/nope) 2>&1; mount -o remount,rw /ro 2>&1 || echo no-remount; cat /etc/motd",
		"--net", "none", "-v", share+":/data", "-v", share+":/ro:ro,nosuid,nodev,noexec", "-v", share+"/in:/etc/motd:ro")
	for _, want := range []string{"from-host\n", "Read-only file system", "no-remount"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	if strings.Count(out, "from-host") != 3 {
		t.Errorf("want the file read three times:\n%s", out)
	}
	st := statT(t, filepath.Join(share, "out"))
	if b, _ := os.ReadFile(filepath.Join(share, "out")); string(b) != "from-container\n" || st.Uid != tester.uid {
		t.Errorf("written through the volume: %q, owner %d (want the caller, %d)", b, st.Uid, tester.uid)
	}
	if _, err := os.Stat(filepath.Join(share, "nope")); err == nil {
		t.Error("wrote through a read-only volume")
	}
	// A relative source is taken from the caller's directory; a missing
	// destination is created, in the rootfs.
	root := fresh(t)
	cmd := command(tester, nil, binary, "run", "--net", "none", "-v", "sub:/new/dir", root, "sh", "-c", "touch /new/dir/made && mount | grep -c ' /new/dir '")
	cmd.Dir = share
	if out, err := cmd.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "1" {
		t.Fatalf("relative volume: %v: %s", err, out)
	}
	if _, err := os.Stat(filepath.Join(share, "sub", "made")); err != nil {
		t.Error(err)
	}
	if st, err := os.Stat(filepath.Join(root, "new", "dir")); err != nil || !st.IsDir() {
		t.Errorf("destination not created in the rootfs: %v", err)
	}
}

func TestTmpfsAndReadOnlyRoot(t *testing.T) {
	out := inContainer(t, "grep ' /scratch ' /proc/mounts; stat -c %a /scratch", "--net", "none", "--tmpfs", "/scratch:size=2m,mode=1770")
	if !strings.Contains(out, "size=2048k") || !strings.Contains(out, "nosuid,nodev") || !strings.HasSuffix(strings.TrimSpace(out), "1770") {
		t.Errorf("--tmpfs:\n%s", out)
	}
	root := fresh(t)
	before := snapshot(t, root)
	out = inContainer(t, "(touch /etc/x) 2>&1; for d in /tmp /run /dev/shm /data; do touch $d/x && echo $d-ok; done",
		"--net", "none", "--read-only", "--tmpfs", "/data")
	if !strings.Contains(out, "Read-only file system") || strings.Count(out, "-ok") != 4 {
		t.Errorf("--read-only:\n%s", out)
	}
	inContainer(t, "true", "--net", "none", "--read-only")
	if after := snapshot(t, root); after != before {
		// /run and /tmp exist in the BusyBox rootfs: nothing is created.
		t.Errorf("--read-only changed the rootfs:\n%s\n---\n%s", before, after)
	}
}

// A destination that passes through a symlink in the rootfs, whatever it
// points to, lands inside the rootfs, as if the rootfs were /.
func TestVolumeDestinationThroughSymlinksStaysInTheRootfs(t *testing.T) {
	root := fresh(t)
	victim := userDir(tester, "victim") // a host directory the links name
	share := userDir(tester, "share")
	links := map[string]string{"abs": "/", "up": "../../../../..", "host": victim, "rel": "etc/../../.."}
	for name, target := range links {
		if r := runAs(tester, nil, "ln", "-s", target, filepath.Join(root, name)); r.code != 0 {
			t.Fatal(r)
		}
	}
	// The host path the link names exists in the rootfs too, so the link
	// resolves there; a dangling one is refused (below).
	if r := runAs(tester, nil, "mkdir", "-p", filepath.Join(root, victim)); r.code != 0 {
		t.Fatal(r)
	}
	hostBefore := hostMounts(t)
	args := []string{"run", "--net", "none"}
	for name := range links {
		args = append(args, "-v", share+":/"+name+"/vol-"+name)
	}
	args = append(args, root, "sh", "-c", "for n in abs up host rel; do touch /$n/vol-$n/hi-$n; done")
	if r := isobox(t, args...); r.code != 0 {
		t.Fatal(r)
	}
	if entries, _ := os.ReadDir(victim); len(entries) != 0 {
		t.Errorf("a mount point was made in the host directory a link names: %v", entries)
	}
	for name := range links {
		want := filepath.Join(root, "vol-"+name)
		if name == "host" {
			want = filepath.Join(root, victim, "vol-host")
		}
		if _, err := os.Stat(want); err != nil {
			t.Errorf("%s: the mount point is not where the link leads inside the rootfs: %v", name, err)
		}
		if _, err := os.Stat(filepath.Join(share, "hi-"+name)); err != nil {
			t.Errorf("%s: the volume was not mounted: %v", name, err)
		}
	}
	if _, err := os.Stat("/vol-abs"); err == nil {
		t.Error("/vol-abs was made on the host")
	}
	if hostMounts(t) != hostBefore {
		t.Error("the host's mount table changed")
	}
	// A link to a host directory the rootfs does not have: refused, with
	// nothing made on the host.
	if r := runAs(tester, nil, "ln", "-s", victim+"/deeper", filepath.Join(root, "dangling")); r.code != 0 {
		t.Fatal(r)
	}
	r := isobox(t, "run", "--net", "none", "-v", share+":/dangling/x", root, "true")
	if r.code != 125 {
		t.Errorf("dangling link on the way: %s", r)
	}
	checkOneErrorLine(t, r)
	if entries, _ := os.ReadDir(victim); len(entries) != 0 {
		t.Errorf("the host directory got %v", entries)
	}
}

// Swapping the destination between a directory and a symlink to a host
// directory while containers start: each mount is made through the
// descriptor that was resolved inside the rootfs (CVE-2021-30465).
// https://github.com/opencontainers/runc/security/advisories/GHSA-c3xm-pvg7-gh7r
func TestVolumeDestinationSwappedForASymlinkMeanwhileStaysInsideCVE202130465(t *testing.T) {
	root := fresh(t)
	victim := userDir(tester, "victim")
	share := userDir(tester, "share")
	dst := filepath.Join(root, "target")
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		// As root when the tests are: the swapper may do what the test
		// user can do to its own rootfs, and more.
		for i := 0; !stop.Load(); i++ {
			os.RemoveAll(dst)
			if i%2 == 0 {
				os.Symlink(victim, dst)
			} else {
				os.Mkdir(dst, 0o777)
			}
		}
	}()
	for i := 0; i < 15; i++ {
		isobox(t, "run", "--net", "none", "-v", share+":/target/sub", root, "sh", "-c", "touch /target/sub/x 2>/dev/null; true")
	}
	stop.Store(true)
	wg.Wait()
	if entries, _ := os.ReadDir(victim); len(entries) != 0 {
		t.Errorf("the host directory got %v", entries)
	}
}

// --overlay: writes go to a layer that is gone with the container; the
// rootfs on disk never changes, and containers share it at once.
func TestOverlayLeavesTheRootfsUntouchedAndIsShared(t *testing.T) {
	root := fresh(t)
	before := snapshot(t, root)
	var wg sync.WaitGroup
	outs := make([]string, 4)
	for i := range outs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			me := "c" + itoa(i)
			r := isobox(t, "run", "--net", "none", "--overlay", root, "sh", "-c",
				"echo "+me+" > /etc/who; rm /bin/ls; mkdir -p /var/new; sleep 0.3; cat /etc/who; [ -e /bin/ls ] || echo ls-gone")
			outs[i] = r.stdout
			if r.code != 0 || r.stdout != me+"\nls-gone\n" {
				t.Errorf("container %d: %s", i, r)
			}
		}()
	}
	wg.Wait()
	if after := snapshot(t, root); after != before {
		t.Errorf("the rootfs changed under --overlay:\n%s\n---\n%s", before, after)
	}
	// --overlay=DIR keeps the upper layer.
	keep := userDir(tester, "layer")
	inContainer(t, "echo kept > /kept; rm /bin/ls", "--net", "none", "--overlay="+keep)
	if b, err := os.ReadFile(filepath.Join(keep, "upper", "kept")); err != nil || string(b) != "kept\n" {
		t.Errorf("upper layer in DIR: %q, %v", b, err)
	}
	if after := snapshot(t, root); after != before {
		t.Error("the rootfs changed under --overlay=DIR")
	}
}

func TestBadVolumeTmpfsAndOverlayInputChangesNothing(t *testing.T) {
	root := fresh(t)
	share := userDir(tester, "share")
	before := snapshot(t, root) + snapshot(t, share)
	mounts := hostMounts(t)
	for _, args := range [][]string{
		{"-v", filepath.Join(work, "no-such-dir") + ":/x"},
		{"-v", share + ":relative"},
		{"-v", share + ":/x:bogus"},
		{"-v", share + ":/x:ro,rw"},
		{"-v", share + ":/proc/sys/kernel"},
		{"-v", share + ":/"},
		{"-v", share},
		{"-v", share + ":/a:ro:extra"},
		{"--tmpfs", "relative"},
		{"--tmpfs", "/x:size=lots"},
		{"--tmpfs", "/x:mode=999"},
		{"--tmpfs", "/x:uid=0"},
		{"--overlay=" + filepath.Join(work, "no-such-layer")},
	} {
		r := isobox(t, append(append([]string{"run", "--net", "none"}, args...), root, "touch", "/made")...)
		if r.code != 125 {
			t.Errorf("%v: want 125: %s", args, r)
			continue
		}
		checkOneErrorLine(t, r)
	}
	if after := snapshot(t, root) + snapshot(t, share); after != before {
		t.Errorf("bad input changed files:\n%s\n---\n%s", before, after)
	}
	if hostMounts(t) != mounts {
		t.Error("bad input changed the host's mounts")
	}
}
