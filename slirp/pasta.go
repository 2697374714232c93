package slirp

import (
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
)

// ErrPastaUnusable means pasta is missing, or older than RootlessKit's pasta
// driver needs, or of a version that cannot be told.
var ErrPastaUnusable = errors.New("pasta cannot be used")

// pastaMinVersion is the oldest passt release RootlessKit's pasta driver
// documents as working (docs/network.md). Older ones (Debian 12 ships
// 2023_03_09) were seen here to outlive the container and stall transfers.
const pastaMinVersion = "20230625"

var (
	pastaVersionRe = regexp.MustCompile(`(\d{4})_(\d{2})_(\d{2})`) // pasta 2023_06_25.32660ce
	debVersionRe   = regexp.MustCompile(`git(\d{8})`)              // 0.0~git20230309.7c7625d-1
)

// ParsePastaVersion finds the release date (YYYYMMDD) in what `pasta
// --version` printed or, failing that, in the Debian package's version.
func ParsePastaVersion(versionOutput, debVersion string) (string, bool) {
	if m := pastaVersionRe.FindStringSubmatch(versionOutput); m != nil {
		return m[1] + m[2] + m[3], true
	}
	if m := debVersionRe.FindStringSubmatch(debVersion); m != nil {
		return m[1], true
	}
	return "", false
}

// PastaVersion returns the installed pasta's path and release date.
func PastaVersion() (path, date string, err error) {
	path, err = exec.LookPath("pasta")
	if err != nil {
		return "", "", fmt.Errorf("%w: not installed", ErrPastaUnusable)
	}
	out, _ := exec.Command(path, "--version").CombinedOutput()
	deb, _ := exec.Command("dpkg-query", "-W", "-f=${Version}", "passt").Output()
	date, ok := ParsePastaVersion(string(out), string(deb))
	if !ok {
		first, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		return path, "", fmt.Errorf("%w: cannot tell the version of %s (%q); RootlessKit's driver needs %s or later",
			ErrPastaUnusable, path, first, pastaMinVersion)
	}
	return path, date, nil
}

// CheckPasta finds pasta and refuses one older than the driver needs; it
// returns what it found, so that callers read the version only once.
func CheckPasta() (path, date string, err error) {
	path, date, err = PastaVersion()
	if err != nil {
		return path, date, err
	}
	if date < pastaMinVersion {
		return path, date, fmt.Errorf("%w: %s is from %s, older than the %s that RootlessKit's pasta driver needs (older ones outlive the container); use --net slirp or gvisor",
			ErrPastaUnusable, path, date, pastaMinVersion)
	}
	return path, date, nil
}
