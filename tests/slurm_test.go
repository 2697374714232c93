package tests

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// slurm is a one-node Slurm 22.05 on localhost (Debian's slurm-wlm and
// munge), started by the tests as root with isobox as its OCI runtime, in
// oci.conf's RunTimeRun shape. proctrack/linuxproc and task/none: this
// host's cgroups belong to the machine and are never touched.
type slurm struct {
	conf  string // slurm.conf, readable by the test user
	root  string // isobox's --root for the test user, as oci.conf names it
	procs []*exec.Cmd
}

var (
	slurmOnce sync.Once
	slurmUp   *slurm
	slurmErr  error
)

// requireSlurm starts Slurm once for the test binary (stopped at its end).
func requireSlurm(t *testing.T) *slurm {
	t.Helper()
	requireRoot(t, "start munged, slurmctld and slurmd")
	for _, b := range []string{"munged", "slurmctld", "slurmd", "srun", "sbatch", "scancel"} {
		requireBinary(t, b)
	}
	slurmOnce.Do(func() { slurmUp, slurmErr = startSlurm() })
	if slurmErr != nil {
		t.Fatalf("slurm: %v", slurmErr)
	}
	return slurmUp
}

// ociConf is the oci.conf the tests use, the README's "Slurm" section.
const ociConf = `RunTimeQuery="BIN oci --root=/tmp/isobox-oci-%u/ state %n.%u.%j.%s.%t"
RunTimeKill="BIN oci --root=/tmp/isobox-oci-%u/ kill -a %n.%u.%j.%s.%t"
RunTimeDelete="BIN oci --root=/tmp/isobox-oci-%u/ delete --force %n.%u.%j.%s.%t"
RunTimeRun="exec BIN oci --root=/tmp/isobox-oci-%u/ run %n.%u.%j.%s.%t -b %b"
`

func startSlurm() (*slurm, error) {
	dir := filepath.Join(work, "slurm")
	for _, d := range []string{dir, dir + "/state", dir + "/spool"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	s := &slurm{conf: filepath.Join(dir, "slurm.conf"), root: "/tmp/isobox-oci-" + tester.name}
	// munged, unless the machine runs one already.
	if exec.Command("pgrep", "-x", "munged").Run() != nil {
		os.MkdirAll("/run/munge", 0o755)
		exec.Command("chown", "munge:munge", "/run/munge").Run()
		if _, err := os.Stat("/etc/munge/munge.key"); err != nil {
			if out, err := exec.Command("mungekey", "--create").CombinedOutput(); err != nil {
				return nil, fmt.Errorf("mungekey: %v %s", err, out)
			}
			exec.Command("chown", "munge:munge", "/etc/munge/munge.key").Run()
		}
		m := exec.Command("runuser", "-u", "munge", "--", "munged", "--foreground")
		if err := m.Start(); err != nil {
			return nil, fmt.Errorf("munged: %w", err)
		}
		s.procs = append(s.procs, m)
	}
	host, err := os.Hostname()
	if err != nil {
		return nil, err
	}
	host, _, _ = strings.Cut(host, ".")
	ctl, node := freePortN(), freePortN()
	conf := fmt.Sprintf(`ClusterName=isobox
SlurmctldHost=%[1]s(127.0.0.1)
SlurmctldPort=%[2]d
SlurmdPort=%[3]d
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=%[4]s/state
SlurmdSpoolDir=%[4]s/spool
SlurmctldPidFile=%[4]s/slurmctld.pid
SlurmdPidFile=%[4]s/slurmd.pid
SlurmctldLogFile=%[4]s/slurmctld.log
SlurmdLogFile=%[4]s/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
KillWait=5
NodeName=%[1]s NodeAddr=127.0.0.1 CPUs=%[5]d State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
`, host, ctl, node, dir, runtime.NumCPU())
	if err := os.WriteFile(s.conf, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "oci.conf"), []byte(strings.ReplaceAll(ociConf, "BIN", binary)), 0o644); err != nil {
		return nil, err
	}
	for _, d := range [][]string{{"slurmctld", "-D", "-f", s.conf}, {"slurmd", "-D", "-f", s.conf}} {
		c := exec.Command(d[0], d[1:]...)
		c.Env = append(os.Environ(), "SLURM_CONF="+s.conf)
		if err := c.Start(); err != nil {
			s.stop()
			return nil, fmt.Errorf("%s: %w", d[0], err)
		}
		s.procs = append(s.procs, c)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		c := exec.Command("sinfo", "-h", "-o", "%T")
		c.Env = append(os.Environ(), "SLURM_CONF="+s.conf)
		out, _ := c.Output()
		if strings.TrimSpace(string(out)) == "idle" {
			return s, nil
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "slurmctld.log"))
			s.stop()
			return nil, fmt.Errorf("the node is not idle after 60 s (sinfo: %q)\n%s", out, log)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (s *slurm) stop() {
	for i := len(s.procs) - 1; i >= 0; i-- {
		s.procs[i].Process.Kill()
		s.procs[i].Wait()
	}
}

func freePortN() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// as runs a Slurm client command as the test user, with the cluster's
// slurm.conf.
func (s *slurm) as(t *testing.T, stdin string, argv ...string) result {
	t.Helper()
	return runAsEnv(tester, []string{"SLURM_CONF=" + s.conf}, strings.NewReader(stdin), argv...)
}

// slurmBundle is a `runc spec --rootless`-shaped bundle of the test rootfs
// with a file only it has and a hostname of its own.
func slurmBundle(t *testing.T) string {
	t.Helper()
	s := newStore(t)
	dir := bundle(t, s, true, func(c map[string]any) { c["hostname"] = "in-slurm" })
	if r := runAs(tester, nil, "touch", filepath.Join(dir, "rootfs", "only-in-the-bundle")); r.code != 0 {
		t.Fatal(r)
	}
	return dir
}

// nothingLeft checks that no container, state or process of the test
// user's is left, and nothing root-owned in its --root.
func (s *slurm) nothingLeft(t *testing.T, bundleDir string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		entries, _ := os.ReadDir(s.root)
		procs, _ := exec.Command("pgrep", "-u", tester.name).Output()
		if len(entries) == 0 && len(strings.TrimSpace(string(procs))) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("left after the steps: state %v, processes %q", entries, procs)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if out, _ := exec.Command("find", s.root, "-user", "root").Output(); len(out) > 0 {
		t.Errorf("root-owned files in the user's --root: %s", out)
	}
	if entries, _ := os.ReadDir(bundleDir); len(entries) != 2 {
		t.Errorf("the bundle holds %v", entries)
	}
}

func TestSrunRunsAStepInAnIsoboxContainer(t *testing.T) {
	sl := requireSlurm(t)
	b := slurmBundle(t)
	// ps sees the container's processes only: init as PID 1, and a few.
	r := sl.as(t, "", "srun", "--container="+b, "sh", "-c", "hostname; id -u; ls /only-in-the-bundle; cat /proc/1/comm; ps -o pid | tail -n +2 | awk '$1 > 20' | wc -l; exit 5")
	want := "in-slurm\n0\n/only-in-the-bundle\nisobox:init\n0\n"
	if r.code != 5 || r.stdout != want {
		t.Errorf("srun --container:\n got %q (exit %d)\nwant %q (exit 5)\n%s", r.stdout, r.code, want, r.stderr)
	}
	if r := sl.as(t, "from stdin\n", "srun", "--container="+b, "cat"); r.code != 0 || r.stdout != "from stdin\n" {
		t.Errorf("stdin through srun: %s", r)
	}
	sl.nothingLeft(t, b)
}

func TestSbatchBatchStepsRunInTheContainer(t *testing.T) {
	sl := requireSlurm(t)
	b := slurmBundle(t)
	dir := userDir(tester, "sbatch")
	// A batch step in the container, and a batch script (on the host)
	// whose srun --container step runs in it.
	for name, script := range map[string]string{
		"in":   "#!/bin/sh\n#SBATCH --container=" + b + "\nhostname; ls /only-in-the-bundle\n",
		"step": "#!/bin/sh\nsrun --container=" + b + " sh -c 'hostname; ls /only-in-the-bundle'\n",
	} {
		p := filepath.Join(dir, name+".sh")
		out := filepath.Join(dir, name+".out")
		if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		os.Chown(p, int(tester.uid), int(tester.gid))
		r := sl.as(t, "", "sbatch", "--wait", "-o", out, "-D", dir, p)
		b, _ := os.ReadFile(out)
		// Slurm 22.05 adds its own line there when its last state query
		// finds the container gone (removed at exit, as runc run does):
		// "slurmstepd: error: _try_parse: JSON parsing error".
		var got string
		for _, l := range strings.SplitAfter(string(b), "\n") {
			if !strings.HasPrefix(l, "slurmstepd") {
				got += l
			}
		}
		if r.code != 0 || got != "in-slurm\n/only-in-the-bundle\n" {
			t.Errorf("sbatch %s: %s\noutput %q", name, r, got)
		}
	}
	sl.nothingLeft(t, b)
}

func TestScancelEndsARunningContainerStep(t *testing.T) {
	sl := requireSlurm(t)
	b := slurmBundle(t)
	cmd := command(tester, []string{"SLURM_CONF=" + sl.conf}, "srun", "--job-name=cancel-me", "--container="+b, "sleep", "1000")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var id string
	deadline := time.Now().Add(30 * time.Second)
	for id == "" {
		entries, _ := os.ReadDir(sl.root)
		if len(entries) == 1 {
			// The container runs: root's state query, as Slurm makes it.
			out, err := exec.Command(binary, "oci", "--root="+sl.root+"/", "state", entries[0].Name()).CombinedOutput()
			var st ociState
			if err == nil && json.Unmarshal(out, &st) == nil && st.Status == "running" {
				id = st.ID
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the step's container never ran")
		}
		time.Sleep(100 * time.Millisecond)
	}
	job := sl.as(t, "", "squeue", "-h", "-n", "cancel-me", "-o", "%i")
	start := time.Now()
	if r := sl.as(t, "", "scancel", strings.TrimSpace(job.stdout)); r.code != 0 {
		t.Fatalf("scancel: %s", r)
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("srun still runs 30 s after scancel")
	}
	t.Logf("the step ended %v after scancel", time.Since(start).Round(time.Millisecond))
	sl.nothingLeft(t, b)
}

func TestAPulledImageRunsUnderSlurmWithNothingCopied(t *testing.T) {
	sl := requireSlurm(t)
	requireSubIDs(t)
	reg := startRegistry(t, "", "")
	ref := reg.push(t, "slurm-image:1", busyboxImage(t, func(c *v1.Config) {
		c.Cmd = []string{"sh", "-c", "cat /from-the-image; pwd"}
		c.WorkingDir = "/work"
	}, gzLayer(t, layerTar(t, dir("work/"), regular("from-the-image", "a layer\n")))))
	s := newImageStore(t)
	s.pull(ref)
	b := userDir(tester, "image-bundle")
	s.must("oci", "spec", "--image", ref, "-b", b)
	// Outside Slurm first, then as a Slurm step (slurmd's environment has
	// no HOME: the bundle names the store).
	if got := s.must("oci", "--root", s.ociRoot(), "run", "-b", b, "img"); got != "a layer\n/work\n" {
		t.Errorf("oci run of an image bundle: %q", got)
	}
	r := sl.as(t, "", "srun", "--container="+b, "sh", "-c", "cat /from-the-image; rm -rf /bin 2>/dev/null; echo gone")
	if r.code != 0 || r.stdout != "a layer\ngone\n" {
		t.Errorf("srun --container of an image bundle: %s", r)
	}
	if got := s.must("oci", "--root", s.ociRoot(), "run", "-b", b, "again"); got != "a layer\n/work\n" {
		t.Errorf("after a step deleted /bin, the image changed: %q", got)
	}
	if entries, _ := os.ReadDir(filepath.Join(b, "rootfs")); len(entries) != 0 {
		t.Errorf("the bundle's rootfs/ was filled: %v", entries)
	}
	sl.nothingLeft(t, b)
}
