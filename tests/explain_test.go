package tests

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
)

var stepLine = regexp.MustCompile(`(?m)^isobox: debug: (?:\+[0-9.]+ms )?\[(parent|init)\] step key=(\S+)$`)

// loggedSteps are the steps a start logged with --log-level debug, by the
// process that logged them.
func loggedSteps(stderr string) map[string][]string {
	out := map[string][]string{}
	for _, m := range stepLine.FindAllStringSubmatch(stderr, -1) {
		out[m[1]] = append(out[m[1]], m[2])
	}
	return out
}

// explainedSteps are --explain --json's steps by the process that takes
// them; the holder's are the runner's to log.
func explainedSteps(t *testing.T, out string) map[string][]string {
	t.Helper()
	var plan struct {
		Steps []struct {
			Stage, Key string
			Commands   []string
		}
	}
	if err := json.Unmarshal([]byte(out), &plan); err != nil {
		t.Fatalf("--explain --json: %v\n%s", err, out)
	}
	steps := map[string][]string{}
	for _, s := range plan.Steps {
		stage := s.Stage
		if stage == "holder" {
			stage = "parent"
		}
		if len(s.Commands) == 0 {
			t.Errorf("step %s has no command", s.Key)
		}
		steps[stage] = append(steps[stage], s.Key)
	}
	return steps
}

func TestExplainListsExactlyTheStepsTheLauncherTakes(t *testing.T) {
	requireSubIDs(t)
	s := newStore(t)
	vol := userDir(tester, "vol")
	port := freePort(t, "tcp")
	for name, flags := range map[string][]string{
		"slirp with a volume":       {"-v", vol + ":/data:ro"},
		"none, read-only, tmpfs":    {"--net", "none", "--read-only", "--tmpfs", "/scratch:size=1m"},
		"holder: time offset":       {"--net", "none", "--time-offset", "boottime=1000", "--no-init"},
		"one id, no seccomp":        {"--net", "host", "--map", "single", "--security-opt", "seccomp=unconfined", "--cap-drop", "ALL"},
		"overlay and a user":        {"--net", "none", "--overlay", "-u", "1000:1000", "--security-opt", "no-new-privileges=false"},
		"published port (a holder)": {"-p", fmt.Sprintf("%d:80", port)},
	} {
		t.Run(name, func(t *testing.T) {
			args := append(append([]string{"run", "--rm"}, flags...), rootfs, "true")
			r := s.run(append([]string{"--log-level", "debug"}, args...)...)
			if r.code != 0 {
				t.Fatalf("run: %s", r)
			}
			logged := loggedSteps(r.stderr)
			explained := explainedSteps(t, s.must(append(append([]string{"run", "--explain", "--json"}, flags...), rootfs, "true")...))
			for _, stage := range []string{"parent", "init"} {
				if strings.Join(logged[stage], " ") != strings.Join(explained[stage], " ") {
					t.Errorf("%s's steps:\nlogged    %v\nexplained %v", stage, logged[stage], explained[stage])
				}
			}
		})
	}
	// Explaining starts nothing and records nothing.
	out := s.must("run", "--explain", rootfs, "sh", "-c", "echo hi")
	for _, want := range []string{"unshare --user", "newuidmap", "mount --rbind " + rootfs, "mount -t proc", "pivot_root", "hostname isobox", "ip link set lo up", "slirp4netns", "setpriv --no-new-privs"} {
		if !strings.Contains(out, want) {
			t.Errorf("--explain lacks %q:\n%s", want, out)
		}
	}
	if c := s.ps(true); len(c) != 0 {
		t.Errorf("--explain left a container: %+v", c)
	}
}

func TestExplainOfAnImageShowsItsLayers(t *testing.T) {
	requireSubIDs(t)
	reg := startRegistry(t, "", "")
	ref := reg.push(t, "explained:1", busyboxImage(t, nil, gzLayer(t, layerTar(t, regular("x", "x")))))
	s := newImageStore(t)
	if r := s.run("run", "--explain", ref); r.code != 125 || !strings.Contains(r.stderr, "not known") {
		t.Errorf("--explain of an image not stored fetched it or did not say so: %s", r)
	}
	s.pull(ref)
	r := s.run("--log-level", "debug", "run", "--rm", "--net", "none", "-w", "/new/dir", ref, "true")
	if r.code != 0 {
		t.Fatal(r)
	}
	explained := explainedSteps(t, s.must("run", "--explain", "--json", "--net", "none", "-w", "/new/dir", ref, "true"))
	if logged := loggedSteps(r.stderr); strings.Join(logged["init"], " ") != strings.Join(explained["init"], " ") {
		t.Errorf("init's steps:\nlogged    %v\nexplained %v", logged["init"], explained["init"])
	}
	if out := s.must("run", "--explain", "--net", "none", ref, "true"); !strings.Contains(out, "mount -t overlay overlay -o lowerdir=") {
		t.Errorf("--explain of an image has no overlay:\n%s", out)
	}
}

func TestExecExplainNamesTheContainersInit(t *testing.T) {
	s := newStore(t)
	s.must("run", "-d", "--name", "target", "--net", "none", "-w", "/tmp", rootfs, "sleep", "1000")
	c, _ := s.get("target")
	out := s.must("exec", "--explain", "-u", "1000", "target", "id")
	if want := fmt.Sprintf("nsenter --target %d --all --root --wd=/tmp --preserve-credentials -- setpriv --reuid=1000 --clear-groups id", c.PID); !strings.Contains(out, want) {
		t.Errorf("exec --explain:\n%s\nwant %q", out, want)
	}
	s.must("rm", "-f", "target")
}
