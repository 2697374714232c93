package main

import (
	"reflect"
	"strings"
)

// ociModel is the kong model for `isobox oci ARGS...`: the oci command that
// ARGS names alone, when it can tell which, else all of them. kong reflects
// over every flag and help text of its model at each start (1.4 ms for all
// of oci's commands, 0.4 ms for one, measured cold), and `oci run` and `oci
// state` are what Slurm and containerd call for every container. The model
// is a struct made with reflect.StructOf from OciCmd's own field, tags and
// all: the flags, help and names are the same as in the full model.
func ociModel(args []string) (model any, g *Globals, o *ociFlags) {
	field, ok := ociCommandField(ociCommand(args))
	if !ok {
		m := &ociOnly{}
		return m, &m.Globals, &m.Oci.ociFlags
	}
	oci, _ := reflect.TypeOf(ociOnly{}).FieldByName("Oci")
	version, _ := reflect.TypeOf(ociOnly{}).FieldByName("Version")
	ociType := reflect.StructOf([]reflect.StructField{
		{Name: "Flags", Type: reflect.TypeOf(ociFlags{}), Tag: `embed:""`},
		{Name: field.Name, Type: field.Type, Tag: field.Tag},
	})
	top := reflect.New(reflect.StructOf([]reflect.StructField{
		{Name: "Globals", Type: reflect.TypeOf(Globals{}), Tag: `embed:""`},
		{Name: version.Name, Type: version.Type, Tag: version.Tag},
		{Name: oci.Name, Type: ociType, Tag: oci.Tag},
	})).Elem()
	g = top.Field(0).Addr().Interface().(*Globals)
	o = top.Field(2).Field(0).Addr().Interface().(*ociFlags)
	return top.Addr().Interface(), g, o
}

// ociCommand is the first argument after oci's own flags ("" if none):
// the command's name, unless it is mistyped.
func ociCommand(args []string) string {
	for i := 1; i < len(args); i++ { // args[0] is "oci"
		switch a := args[i]; {
		case a == "--root" || a == "--log" || a == "--log-format" || a == "--log-level":
			i++ // its value follows
		case strings.HasPrefix(a, "-"):
		default:
			return a
		}
	}
	return ""
}

// ociCommandField is OciCmd's field of the command named name.
func ociCommandField(name string) (reflect.StructField, bool) {
	if name == "" {
		return reflect.StructField{}, false
	}
	t := reflect.TypeOf(OciCmd{})
	for i := range t.NumField() {
		f := t.Field(i)
		if _, isCmd := f.Tag.Lookup("cmd"); isCmd && strings.ToLower(f.Name) == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}
