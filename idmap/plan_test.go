package idmap

import (
	"errors"
	"reflect"
	"testing"
)

func TestDecide(t *testing.T) {
	sub := []Range{{100000, 65536}}
	user := Caller{UID: 1000, GID: 1000, SubUIDs: sub, SubGIDs: sub, HaveHelpers: true}
	full := Plan{
		UIDs: []Mapping{{0, 1000, 1}, {1, 100000, 65536}},
		GIDs: []Mapping{{0, 1000, 1}, {1, 100000, 65536}},
		Full: true,
	}
	single := Plan{UIDs: []Mapping{{0, 1000, 1}}, GIDs: []Mapping{{0, 1000, 1}}}
	noSub := user
	noSub.SubUIDs = nil
	noHelpers := user
	noHelpers.HaveHelpers = false
	root := Caller{UID: 0, GID: 0, SubUIDs: sub, SubGIDs: sub, HaveHelpers: true}

	for _, tc := range []struct {
		name     string
		mode     Mode
		c        Caller
		want     Plan
		err      error
		fallback error
	}{
		{"auto with ranges is full", ModeAuto, user, full, nil, nil},
		{"full with ranges", ModeFull, user, full, nil, nil},
		{"single", ModeSingle, user, single, nil, nil},
		{"auto without range falls back", ModeAuto, noSub, single, nil, ErrNoSubIDRange},
		{"auto without helpers falls back", ModeAuto, noHelpers, single, nil, ErrHelperMissing},
		{"full without range fails", ModeFull, noSub, Plan{}, ErrNoSubIDRange, nil},
		{"full without helpers fails", ModeFull, noHelpers, Plan{}, ErrHelperMissing, nil},
		{"root maps only its range", ModeAuto, root, Plan{
			UIDs: []Mapping{{0, 100000, 65536}}, GIDs: []Mapping{{0, 100000, 65536}}, Full: true}, nil, nil},
		{"root single is still not host root", ModeSingle, root, Plan{
			UIDs: []Mapping{{0, 100000, 1}}, GIDs: []Mapping{{0, 100000, 1}}}, nil, nil},
		{"root without range refused", ModeAuto, Caller{}, Plan{}, ErrRootWithoutRange, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Decide(tc.mode, tc.c)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			if !errors.Is(got.Fallback, tc.fallback) {
				t.Fatalf("fallback %v, want %v", got.Fallback, tc.fallback)
			}
			got.Fallback = nil
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v want %+v", got, tc.want)
			}
		})
	}
}

func TestDecideStacksSeveralRanges(t *testing.T) {
	c := Caller{UID: 1000, GID: 1000, HaveHelpers: true,
		SubUIDs: []Range{{100000, 10}, {300000, 5}}, SubGIDs: []Range{{100000, 10}}}
	p, err := Decide(ModeFull, c)
	if err != nil {
		t.Fatal(err)
	}
	want := []Mapping{{0, 1000, 1}, {1, 100000, 10}, {11, 300000, 5}}
	if !reflect.DeepEqual(p.UIDs, want) {
		t.Fatalf("got %v", p.UIDs)
	}
	if !Contains(p.UIDs, 15) || Contains(p.UIDs, 16) || Size(p.UIDs) != 16 {
		t.Fatalf("Contains/Size wrong for %v", p.UIDs)
	}
}

func TestStackStopsAtKernelExtentLimit(t *testing.T) {
	var many []Range
	for i := 0; i < 400; i++ {
		many = append(many, Range{Start: uint32(100000 + i*10), Count: 10})
	}
	p, _ := Decide(ModeFull, Caller{UID: 1, GID: 1, SubUIDs: many, SubGIDs: many, HaveHelpers: true})
	if len(p.UIDs) != maxExtents {
		t.Fatalf("%d extents, want %d", len(p.UIDs), maxExtents)
	}
}

func TestArgsAndMapText(t *testing.T) {
	m := []Mapping{{0, 1000, 1}, {1, 100000, 65536}}
	if got := Args(42, m); !reflect.DeepEqual(got, []string{"42", "0", "1000", "1", "1", "100000", "65536"}) {
		t.Fatalf("Args: %v", got)
	}
	if got := MapText(m); got != "0 1000 1\n1 100000 65536\n" {
		t.Fatalf("MapText: %q", got)
	}
}

func TestExplicitMapsOnlyWhatTheCallerOwns(t *testing.T) {
	c := Caller{UID: 1000, GID: 1000, SubUIDs: []Range{{100000, 65536}}, SubGIDs: []Range{{100000, 65536}}, HaveHelpers: true}
	own := []Mapping{{0, 1000, 1}}
	if p, err := Explicit(own, own, c); err != nil || p.Full {
		t.Errorf("one id onto the caller's own: %+v %v", p, err)
	}
	part := []Mapping{{0, 1000, 1}, {1, 100010, 100}}
	if p, err := Explicit(part, part, c); err != nil || !p.Full || len(p.UIDs) != 2 || p.UIDs[1] != part[1] {
		t.Errorf("a part of the range, as given: %+v %v", p, err)
	}
	for name, m := range map[string][]Mapping{
		"someone else's id":    {{0, 1001, 1}},
		"past the range's end": {{0, 1000, 1}, {1, 165000, 1000}},
		"size 0":               {{0, 100000, 0}},
	} {
		if _, err := Explicit(m, own, c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := Explicit(part, part, Caller{UID: 1000, GID: 1000, SubUIDs: c.SubUIDs, SubGIDs: c.SubGIDs}); !errors.Is(err, ErrHelperMissing) {
		t.Errorf("without newuidmap: %v", err)
	}
	root := Caller{SubUIDs: c.SubUIDs, SubGIDs: c.SubGIDs}
	if _, err := Explicit([]Mapping{{0, 0, 1}}, []Mapping{{0, 0, 1}}, root); err == nil {
		t.Error("root mapped host root")
	}
}

func TestParseMapReadsTheKernelsFormat(t *testing.T) {
	m, err := ParseMap("         0       1000          1\n         1     100000      65536\n")
	if err != nil || len(m) != 2 || m[1] != (Mapping{ContainerID: 1, HostID: 100000, Size: 65536}) {
		t.Fatalf("%v %v", m, err)
	}
	if h, ok := HostOf(m, 0); !ok || h != 1000 {
		t.Errorf("HostOf(0) = %d %v", h, ok)
	}
	if h, ok := HostOf(m, 65536); !ok || h != 165535 {
		t.Errorf("HostOf(65536) = %d %v", h, ok)
	}
	if _, ok := HostOf(m, 65537); ok {
		t.Error("65537 mapped")
	}
	for _, bad := range []string{"0 1000", "0 x 1", "0 1000 1 4"} {
		if _, err := ParseMap(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestNestedRootMapsItselfAsAnyUserDoes(t *testing.T) {
	own := []Mapping{{0, 0, 1}}
	if _, err := Explicit(own, own, Caller{UID: 0, GID: 0}); err == nil {
		t.Error("host root mapping container root onto itself: accepted")
	}
	p, err := Explicit(own, own, Caller{UID: 0, GID: 0, Nested: true})
	if err != nil || p.Full || len(p.UIDs) != 1 {
		t.Errorf("root of a user namespace, its own id: %+v %v", p, err)
	}
	if p, err := Decide(ModeAuto, Caller{UID: 0, GID: 0, Nested: true}); err != nil || p.UIDs[0] != (Mapping{0, 0, 1}) || p.Fallback == nil {
		t.Errorf("nested root, auto: %+v %v", p, err)
	}
	if _, err := Decide(ModeAuto, Caller{UID: 0, GID: 0}); err != ErrRootWithoutRange {
		t.Errorf("host root without a range: %v", err)
	}
}
