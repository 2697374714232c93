package main

import (
	"reflect"
	"strings"
	"testing"

	"github.com/alecthomas/kong"
)

func TestOciCommandSkipsOciFlagsAndTheirValues(t *testing.T) {
	for want, args := range map[string][]string{
		"run":   {"oci", "--root", "/r", "--log=/l", "--rootless", "--systemd-cgroup", "run", "-b", "x", "id"},
		"state": {"oci", "--log-format", "json", "--root=/r", "state", "id"},
		"":      {"oci", "--root", "/r"},
	} {
		if got := ociCommand(args); got != want {
			t.Errorf("%v: %q, want %q", args, got, want)
		}
	}
}

// Every oci command gets a model of its own that parses its flags, and
// oci's, into the same places the full model does.
func TestOciModelOfOneCommandParsesAsTheFullModel(t *testing.T) {
	oci := reflect.TypeOf(OciCmd{})
	for i := range oci.NumField() {
		f := oci.Field(i)
		if _, ok := f.Tag.Lookup("cmd"); !ok {
			continue
		}
		name := strings.ToLower(f.Name)
		args := []string{"oci", "--root", "/r", name, "--help"}
		model, g, o := ociModel(args)
		if reflect.TypeOf(model) == reflect.TypeOf(&ociOnly{}) {
			t.Errorf("%s: the full model", name)
			continue
		}
		p, err := kong.New(model, kong.Vars{"version": "v"}, kong.Exit(func(int) {}), kong.Writers(nopWriter{}, nopWriter{}))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		p.Parse(args)
		if o.Root != "/r" || g.LogLevel != "warn" {
			t.Errorf("%s: --root %q, --log-level %q", name, o.Root, g.LogLevel)
		}
	}
	if m, _, _ := ociModel([]string{"oci", "nosuch"}); reflect.TypeOf(m) != reflect.TypeOf(&ociOnly{}) {
		t.Error("an unknown command did not get the full model (and its error)")
	}
}

type nopWriter struct{}

func (nopWriter) Write(b []byte) (int, error) { return len(b), nil }
