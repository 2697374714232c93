package tests

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestCheckReportsEveryPrerequisiteAndPassesHere(t *testing.T) {
	r := isobox(t, "check", "--json")
	if r.code != 0 {
		t.Fatalf("check fails on the machine the tests run on: %s", r)
	}
	var results []struct {
		Name     string `json:"name"`
		OK       bool   `json:"ok"`
		Required bool   `json:"required"`
		Detail   string `json:"detail"`
		Fix      string `json:"fix"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &results); err != nil {
		t.Fatalf("--json output: %v\n%s", err, r.stdout)
	}
	names := map[string]bool{}
	for _, c := range results {
		names[c.Name] = true
		if !c.OK && c.Fix == "" {
			t.Errorf("%s fails with no fix given", c.Name)
		}
	}
	for _, want := range []string{"kernel", "user.max_user_namespaces", "user namespace", "newuidmap", "newgidmap",
		"subordinate uids", "subordinate gids", "static busybox", "time namespace", "/dev/net/tun",
		"slirp4netns", "pasta", "ip", "nsenter", "overlayfs in a user namespace", "cgroup v2 delegation"} {
		if !names[want] {
			t.Errorf("check does not report %q", want)
		}
	}
	text := isobox(t, "check")
	if text.code != 0 || !strings.Contains(text.stdout, "/dev/net/tun") {
		t.Fatalf("check: %s", text)
	}
	for _, l := range strings.Split(text.stdout, "\n") {
		if strings.HasPrefix(l, "warn") || strings.HasPrefix(l, "FAIL") {
			if !strings.Contains(text.stdout, "fix: ") {
				t.Fatalf("a failing line without its fix:\n%s", text.stdout)
			}
		}
	}
}
