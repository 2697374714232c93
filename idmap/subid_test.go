package idmap

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// A /etc/subuid as Debian's useradd writes it, with a numeric owner and a
// user holding two ranges added by hand.
const debianSubuid = `# comment
alice:100000:65536
bob:165536:65536

1002:231072:65536
alice:300000:1000
`

func TestParseDebianFile(t *testing.T) {
	got, err := Parse(strings.NewReader(debianSubuid), "subuid")
	if err != nil {
		t.Fatal(err)
	}
	want := []SubIDEntry{
		{"alice", 100000, 65536}, {"bob", 165536, 65536},
		{"1002", 231072, 65536}, {"alice", 300000, 1000},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v want %v", got, want)
	}
}

func TestParseRejectsMalformedLines(t *testing.T) {
	for _, line := range []string{
		"alice:100000", "alice:x:65536", "alice:100000:0", ":1:1",
		"alice:-1:5", "alice:4294967290:100", "alice:1:2:3",
	} {
		_, err := Parse(strings.NewReader(line+"\n"), "subuid")
		var pe *ParseError
		if !errors.As(err, &pe) || pe.Line != 1 {
			t.Errorf("%q: got %v, want a ParseError on line 1", line, err)
		}
	}
}

func TestLookupByNameAndNumericID(t *testing.T) {
	entries, _ := Parse(strings.NewReader(debianSubuid), "subuid")
	if got := Lookup(entries, "alice", 1000); !reflect.DeepEqual(got, []Range{{100000, 65536}, {300000, 1000}}) {
		t.Errorf("alice: %v", got)
	}
	if got := Lookup(entries, "carol", 1002); !reflect.DeepEqual(got, []Range{{231072, 65536}}) {
		t.Errorf("uid 1002: %v", got)
	}
	if got := Lookup(entries, "dave", 1003); got != nil {
		t.Errorf("dave: %v", got)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(debianSubuid)
	f.Add("a:1:1\n#x\n\n")
	f.Fuzz(func(t *testing.T, s string) {
		entries, err := Parse(strings.NewReader(s), "f")
		if err != nil {
			return
		}
		for _, e := range entries {
			if e.Count == 0 || e.Owner == "" || uint64(e.Start)+uint64(e.Count)-1 > 0xfffffffe {
				t.Fatalf("accepted bad entry %+v", e)
			}
		}
	})
}
