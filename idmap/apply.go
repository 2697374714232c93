package idmap

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// helperDirs are searched after $PATH: a user's PATH often lacks /usr/sbin,
// and the helpers must be found whatever the caller's PATH is.
var helperDirs = []string{"/usr/bin", "/usr/sbin", "/bin", "/sbin"}

// FindHelper returns the path of newuidmap or newgidmap.
func FindHelper(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range helperDirs {
		p := d + "/" + name
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: %w", name, ErrHelperMissing)
}

// HaveHelpers reports whether both helpers are installed.
func HaveHelpers() bool {
	_, e1 := FindHelper("newuidmap")
	_, e2 := FindHelper("newgidmap")
	return e1 == nil && e2 == nil
}

// Apply writes p for the process pid, which must be in a new user namespace
// that still has no maps, and must be the caller's (newuidmap checks it).
// On any error the caller kills the child, so a half-written mapping never
// matters.
func Apply(pid int, p Plan) error {
	proc := "/proc/" + strconv.Itoa(pid)
	switch {
	case p.Full && os.Geteuid() == 0:
		// Real root holds CAP_SETUID/CAP_SETGID over the new namespace and
		// writes the maps itself; the setuid helpers are not needed.
		if err := writeMap(proc+"/gid_map", MapText(p.GIDs)); err != nil {
			return err
		}
		return writeMap(proc+"/uid_map", MapText(p.UIDs))
	case p.Full:
		// Two setuid helpers, each a fork and exec: run at once, they cost
		// the time of one.
		gid := make(chan error, 1)
		go func() { gid <- runHelper("newgidmap", Args(pid, p.GIDs)) }()
		uerr := runHelper("newuidmap", Args(pid, p.UIDs))
		if gerr := <-gid; gerr != nil {
			return gerr
		}
		return uerr
	default:
		// An unprivileged process may map its own single id, but only after
		// giving up setgroups (user_namespaces(7), since Linux 3.19).
		if err := writeMap(proc+"/setgroups", "deny"); err != nil {
			return err
		}
		if err := writeMap(proc+"/gid_map", MapText(p.GIDs)); err != nil {
			return err
		}
		return writeMap(proc+"/uid_map", MapText(p.UIDs))
	}
}

func writeMap(path, text string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	// The kernel wants the whole map in one write.
	_, err = f.Write([]byte(text))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return &os.PathError{Op: "write", Path: path, Err: err}
	}
	return nil
}

func runHelper(name string, args []string) error {
	path, err := FindHelper(name)
	if err != nil {
		return err
	}
	var stderr bytes.Buffer
	cmd := exec.Command(path, args...)
	cmd.Stderr = &stderr
	cmd.Env = []string{}
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return fmt.Errorf("%s %s: %s", name, strings.Join(args, " "), msg)
	}
	return nil
}
