package refs

import (
	"reflect"
	"strings"
	"testing"
)

const conf = `
unqualified-search-registries = ["mirror.example:5000", "docker.io"]

[[registry]]
prefix = "docker.io"
location = "docker.io"
[[registry.mirror]]
location = "127.0.0.1:5000/hub"
insecure = true

[[registry]]
location = "old.example"
blocked = true
`

func TestResolveShortNamesMirrorsAndBlocked(t *testing.T) {
	c, err := ParseRegistries(strings.NewReader(conf))
	if err != nil {
		t.Fatal(err)
	}
	cands, err := c.Resolve("alpine", true)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, cand := range cands {
		names = append(names, cand.Name)
	}
	if want := []string{"mirror.example:5000/alpine:latest", "docker.io/library/alpine:latest"}; !reflect.DeepEqual(names, want) {
		t.Errorf("short name: %v, want %v", names, want)
	}
	hub := cands[1].Sources
	if len(hub) != 2 || hub[0].Ref.String() != "127.0.0.1:5000/hub/library/alpine:latest" || !hub[0].Insecure || hub[1].Insecure {
		t.Errorf("docker.io's sources: %+v", hub)
	}
	if _, err := c.Resolve("old.example/x", true); err == nil || !strings.Contains(err.Error(), "blocked") {
		t.Errorf("blocked registry: %v", err)
	}
	for _, bad := range []string{"", "UPPER/case", "a b", "x@sha256:12"} {
		if _, err := c.Resolve(bad, true); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
}

func TestResolveWithoutConfigMeansDockerHub(t *testing.T) {
	cands, err := (&Registries{}).Resolve("library/busybox:1.36", true)
	if err != nil || len(cands) != 1 || cands[0].Name != "docker.io/library/busybox:1.36" {
		t.Errorf("%+v %v", cands, err)
	}
	cands, err = (&Registries{}).Resolve("127.0.0.1:5000/x/y@sha256:"+strings.Repeat("a", 64), true)
	if err != nil || cands[0].Name != "127.0.0.1:5000/x/y@sha256:"+strings.Repeat("a", 64) {
		t.Errorf("%+v %v", cands, err)
	}
}
