package userns

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// The pure parsers and validators of what a user types. They decide; they
// touch nothing.

// DefaultPath is the PATH Docker and podman give a container.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// ValidateHostname accepts a DNS name of at most 64 bytes: labels of
// letters, digits and hyphens, not starting or ending with a hyphen. The
// kernel itself takes any 64 bytes, spaces and slashes included.
func ValidateHostname(h string) error {
	if h == "" {
		return errors.New("hostname is empty")
	}
	if len(h) > 64 {
		return fmt.Errorf("hostname %q is %d bytes long, at most 64", h, len(h))
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("hostname %q: empty or too long label", h)
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("hostname %q: a label starts or ends with '-'", h)
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("hostname %q: %q is not allowed (letters, digits, '-' and '.')", h, c)
			}
		}
	}
	return nil
}

// ParseTimeOffsets parses --time-offset monotonic=SECONDS,boottime=SECONDS.
func ParseTimeOffsets(s string) (TimeOffsets, error) {
	var o TimeOffsets
	if s == "" {
		return o, nil
	}
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return o, fmt.Errorf("--time-offset %q: want CLOCK=SECONDS", part)
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return o, fmt.Errorf("--time-offset %q: %q is not a whole number of seconds", part, v)
		}
		if seen[k] {
			return o, fmt.Errorf("--time-offset: %s given twice", k)
		}
		seen[k] = true
		switch k {
		case "monotonic":
			o.Monotonic = n
		case "boottime":
			o.Boottime = n
		default:
			return o, fmt.Errorf("--time-offset: unknown clock %q (monotonic, boottime)", k)
		}
	}
	return o, nil
}

// UserSpec is a parsed --user UID[:GID] or NAME[:GROUP].
type UserSpec struct {
	User, Group string // as given; empty Group means the user's own
}

// ParseUserSpec splits --user; names are resolved later against the
// rootfs's /etc/passwd and /etc/group.
func ParseUserSpec(s string) (UserSpec, error) {
	u, g, hasGroup := strings.Cut(s, ":")
	if u == "" || (hasGroup && g == "") {
		return UserSpec{}, fmt.Errorf("--user %q: want UID[:GID] or NAME[:GROUP]", s)
	}
	for _, part := range []string{u, g} {
		if strings.ContainsAny(part, ":/ \t\n") {
			return UserSpec{}, fmt.Errorf("--user %q: want UID[:GID] or NAME[:GROUP]", s)
		}
	}
	return UserSpec{User: u, Group: g}, nil
}

// ParseID parses a numeric id below 2^32-1 (which means "no id" to the kernel).
func ParseID(s string) (uint32, bool) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 0xffffffff {
		return 0, false
	}
	return uint32(n), true
}

// ParseEnvArg parses one -e: KEY=VALUE, or KEY alone, which takes the value
// from the caller's environment and is dropped when the caller has none
// (Docker's behaviour).
func ParseEnvArg(s string, lookup func(string) (string, bool)) (kv string, ok bool, err error) {
	k, v, hasValue := strings.Cut(s, "=")
	if err := validateEnvKey(k); err != nil {
		return "", false, fmt.Errorf("--env %q: %w", s, err)
	}
	if hasValue {
		return k + "=" + v, true, nil
	}
	if v, found := lookup(k); found {
		return k + "=" + v, true, nil
	}
	return "", false, nil
}

// ParseEnvArgs parses every -e of a command line, in order (ParseEnvArg).
func ParseEnvArgs(args []string, lookup func(string) (string, bool)) ([]string, error) {
	var env []string
	for _, a := range args {
		kv, ok, err := ParseEnvArg(a, lookup)
		if err != nil {
			return nil, err
		}
		if ok {
			env = append(env, kv)
		}
	}
	return env, nil
}

func validateEnvKey(k string) error {
	if k == "" {
		return errors.New("empty variable name")
	}
	if strings.ContainsAny(k, " \t\n\x00") {
		return fmt.Errorf("variable name %q contains whitespace", k)
	}
	return nil
}

// ParseEnvFile reads Docker's env-file format: one KEY=VALUE or KEY per line,
// values taken literally (no quotes are removed), '#' comments and blank
// lines skipped.
func ParseEnvFile(r io.Reader, name string, lookup func(string) (string, bool)) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimLeft(sc.Text(), " \t")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.ContainsRune(line, 0) {
			return nil, fmt.Errorf("%s:%d: NUL byte", name, n)
		}
		kv, ok, err := ParseEnvArg(line, lookup)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, n, errors.Unwrap(err))
		}
		if ok {
			out = append(out, kv)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return out, nil
}

// BuildEnv makes the container's environment the way Docker does: PATH,
// HOSTNAME and HOME, TERM when the caller has one, then the user's entries
// in order, later ones replacing earlier ones. Nothing else of the caller's
// environment comes in.
func BuildEnv(hostname, home, term string, user []string) []string {
	env := []string{"PATH=" + DefaultPath, "HOSTNAME=" + hostname, "HOME=" + home}
	if term != "" {
		env = append(env, "TERM="+term)
	}
	return MergeEnv(env, user...)
}

// MergeEnv returns base with each KEY=VALUE of over set in it: a key already
// there keeps its place and takes the new value, a new one is appended.
func MergeEnv(base []string, over ...string) []string {
	env := append([]string{}, base...)
	index := map[string]int{}
	for i, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		index[k] = i
	}
	for _, kv := range over {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := index[k]; ok {
			env[i] = kv
			continue
		}
		index[k] = len(env)
		env = append(env, kv)
	}
	return env
}
