package rootfs

import (
	"os"
	"path"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseVolume(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(dir+"/f", nil, 0o644)
	for spec, want := range map[string]Mount{
		dir + ":/data":                     {Source: dir, Dest: "/data"},
		dir + "/f:/etc/motd:ro":            {Source: dir + "/f", Dest: "/etc/motd", Readonly: true},
		dir + ":/a/../b/:rw,nosuid,noexec": {Source: dir, Dest: "/b", Flags: unix.MS_NOSUID | unix.MS_NOEXEC},
		"f:/x":                             {Source: dir + "/f", Dest: "/x"},
	} {
		got, err := ParseVolume(spec, dir)
		if err != nil || got != want {
			t.Errorf("ParseVolume(%q) = %+v, %v; want %+v", spec, got, err, want)
		}
	}
	for _, bad := range []string{"", dir, ":/x", dir + ":", dir + ":x", dir + ":/", dir + ":/proc", dir + ":/proc/../proc/1", dir + ":/x:ro,ro", dir + ":/x:ro,rw", dir + ":/x:z", dir + "/missing:/x", dir + ":/x:ro:y"} {
		if _, err := ParseVolume(bad, dir); err == nil {
			t.Errorf("ParseVolume(%q) accepted", bad)
		}
	}
}

func TestParseTmpfs(t *testing.T) {
	for spec, want := range map[string]Mount{
		"/run":                  {Dest: "/run", Flags: unix.MS_NOSUID | unix.MS_NODEV},
		"/x:size=64m,mode=1777": {Dest: "/x", Flags: unix.MS_NOSUID | unix.MS_NODEV, Data: "size=64m,mode=1777"},
		"/x:ro,noexec,size=50%": {Dest: "/x", Flags: unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, Readonly: true, Data: "size=50%"},
	} {
		got, err := ParseTmpfs(spec)
		if err != nil || got != want {
			t.Errorf("ParseTmpfs(%q) = %+v, %v; want %+v", spec, got, err, want)
		}
	}
	for _, bad := range []string{"", "x", "/", "/proc", "/x:size=", "/x:size=0", "/x:size=1kk", "/x:size=101%", "/x:mode=8", "/x:mode=17777", "/x:uid=0", "/x:nosuchopt"} {
		if _, err := ParseTmpfs(bad); err == nil {
			t.Errorf("ParseTmpfs(%q) accepted", bad)
		}
	}
}

// FuzzParseVolume: any spec is parsed or refused, never a panic; what is
// accepted has an absolute clean destination, never / or under /proc, and
// no option text can reach the mount data of a bind.
func FuzzParseVolume(f *testing.F) {
	dir := f.TempDir()
	for _, s := range []string{dir + ":/data", dir + ":/x:ro,nosuid", "rel:/y", dir + ":/proc/x", dir + "::", ":::"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		m, err := ParseVolume(spec, dir)
		if err != nil {
			return
		}
		checkParsedDest(t, m.Dest)
		if m.Data != "" || m.Tmpfs() {
			t.Fatalf("bind %q parsed as %+v", spec, m)
		}
	})
}

func FuzzParseTmpfs(f *testing.F) {
	for _, s := range []string{"/run", "/x:size=64m,mode=1777", "/x:ro", "/x:size=1,,", "/proc:size=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		m, err := ParseTmpfs(spec)
		if err != nil {
			return
		}
		checkParsedDest(t, m.Dest)
		for _, kv := range strings.Split(m.Data, ",") {
			if kv != "" && !strings.HasPrefix(kv, "size=") && !strings.HasPrefix(kv, "mode=") {
				t.Fatalf("%q gave tmpfs data %q", spec, m.Data)
			}
		}
	})
}

func checkParsedDest(t *testing.T, d string) {
	t.Helper()
	if !path.IsAbs(d) || path.Clean(d) != d || d == "/" || d == "/proc" || strings.HasPrefix(d, "/proc/") {
		t.Fatalf("accepted destination %q", d)
	}
}
