package idmap

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// ErrNoSubIDRange means the subordinate id file has no range for the user.
var ErrNoSubIDRange = errors.New("no subordinate id range")

// SubIDEntry is one line of /etc/subuid or /etc/subgid: Owner (a user name
// or a numeric id, as the file has it) may use Count ids from Start.
type SubIDEntry struct {
	Owner string
	Start uint32
	Count uint32
}

// ParseError names the line of a subordinate id file that could not be read.
type ParseError struct {
	File string
	Line int
	Text string
	Err  error
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("%s:%d: %q: %v", e.File, e.Line, e.Text, e.Err)
}

func (e *ParseError) Unwrap() error { return e.Err }

// Parse reads a subordinate id file in the format of subuid(5). Blank lines
// and lines starting with '#' are skipped; any other malformed line is an
// error, because shadow's newuidmap would refuse the same file.
func Parse(r io.Reader, name string) ([]SubIDEntry, error) {
	var out []SubIDEntry
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		e, err := parseLine(line)
		if err != nil {
			return nil, &ParseError{File: name, Line: n, Text: line, Err: err}
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return out, nil
}

func parseLine(line string) (SubIDEntry, error) {
	f := strings.Split(line, ":")
	if len(f) != 3 {
		return SubIDEntry{}, errors.New("want owner:start:count")
	}
	if f[0] == "" {
		return SubIDEntry{}, errors.New("empty owner")
	}
	start, err := strconv.ParseUint(f[1], 10, 32)
	if err != nil {
		return SubIDEntry{}, fmt.Errorf("bad start: %w", err)
	}
	count, err := strconv.ParseUint(f[2], 10, 32)
	if err != nil {
		return SubIDEntry{}, fmt.Errorf("bad count: %w", err)
	}
	if count == 0 {
		return SubIDEntry{}, errors.New("count is zero")
	}
	if start+count-1 > 0xfffffffe {
		return SubIDEntry{}, errors.New("range passes 4294967294")
	}
	return SubIDEntry{Owner: f[0], Start: uint32(start), Count: uint32(count)}, nil
}

// Range is a run of host ids.
type Range struct {
	Start uint32
	Count uint32
}

// Lookup returns the ranges of the entries owned by the user, named either by
// name or by numeric id, in file order, the way newuidmap matches them.
func Lookup(entries []SubIDEntry, name string, id uint32) []Range {
	ids := strconv.FormatUint(uint64(id), 10)
	var out []Range
	for _, e := range entries {
		if (name != "" && e.Owner == name) || e.Owner == ids {
			out = append(out, Range{Start: e.Start, Count: e.Count})
		}
	}
	return out
}

// LoadRanges reads path and returns the ranges of the user; a missing file
// means no ranges.
func LoadRanges(path, name string, id uint32) ([]Range, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	entries, err := Parse(f, path)
	if err != nil {
		return nil, err
	}
	return Lookup(entries, name, id), nil
}
