package main

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"
	"text/template"
)

// parseFormat reads --format: a Go template, as podman takes; "json" and
// "table" (and "") mean the command's own output, nil here.
func parseFormat(f string) (*template.Template, error) {
	switch f {
	case "", "json", "table":
		return nil, nil
	}
	t, err := template.New("format").Option("missingkey=error").Parse(strings.TrimPrefix(f, "table "))
	if err != nil {
		return nil, fmt.Errorf("--format: %w", err)
	}
	return t, nil
}

// execTemplate prints v through t, one line.
func execTemplate(t *template.Template, v any) error {
	var b strings.Builder
	if err := t.Execute(&b, v); err != nil {
		return fmt.Errorf("--format: %w", err)
	}
	s := b.String()
	if !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	_, err := os.Stdout.WriteString(s)
	return err
}

// psFilters are ps's --filter flags; every one must hold.
type psFilters []struct{ key, value string }

func parseFilters(specs []string) (psFilters, error) {
	var fs psFilters
	for _, f := range specs {
		k, v, ok := strings.Cut(f, "=")
		if !ok || v == "" {
			return nil, fmt.Errorf("--filter %q: want KEY=VALUE", f)
		}
		switch k {
		case "name":
			if _, err := path.Match(v, ""); err != nil {
				return nil, fmt.Errorf("--filter %q: %w", f, err)
			}
		case "status":
			if v != "created" && v != "running" && v != "exited" && v != "unknown" {
				return nil, fmt.Errorf("--filter %q: want status=created, running or exited", f)
			}
		case "network", "image":
		default:
			return nil, errors.New("--filter " + f + ": unknown key (known: name, status, network, image)")
		}
		fs = append(fs, struct{ key, value string }{k, v})
	}
	return fs, nil
}

// asksExited: a status filter for exited containers lists them without -a.
func (fs psFilters) asksExited() bool {
	for _, f := range fs {
		if f.key == "status" && f.value != "running" {
			return true
		}
	}
	return false
}

func (fs psFilters) match(e psEntry) bool {
	for _, f := range fs {
		var ok bool
		switch f.key {
		case "name":
			ok, _ = path.Match(f.value, e.Name)
		case "status":
			ok = e.Status == f.value
		case "network":
			ok = e.Net == f.value
		case "image":
			ok = e.Image == f.value || strings.HasPrefix(strings.TrimPrefix(e.ImageID, "sha256:"), strings.TrimPrefix(f.value, "sha256:")) && len(f.value) >= 3 ||
				strings.HasSuffix(e.Image, "/"+f.value) || strings.HasSuffix(e.Image, "/"+f.value+":latest")
		}
		if !ok {
			return false
		}
	}
	return true
}
