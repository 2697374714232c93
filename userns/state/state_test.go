package state

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestValidName(t *testing.T) {
	for _, ok := range []string{"a", "web", "Web-1.2_x", "0abc", strings.Repeat("a", MaxNameLen)} {
		if err := ValidName(ok); err != nil {
			t.Errorf("ValidName(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "-a", ".a", "_a", "a/b", "..", "a b", "é", "a\x00", strings.Repeat("a", MaxNameLen+1)} {
		if err := ValidName(bad); err == nil {
			t.Errorf("ValidName(%q) accepted", bad)
		}
	}
	for range 100 {
		if n := NewName(); ValidName(n) != nil || len(n) != 12 {
			t.Fatalf("NewName() = %q", n)
		}
	}
}

func testDir(t *testing.T) *Dir {
	p := filepath.Join(t.TempDir(), "isobox")
	if err := os.Mkdir(p, 0o700); err != nil {
		t.Fatal(err)
	}
	d, err := OpenAt(p)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestCreateGetUpdateRemove(t *testing.T) {
	d := testDir(t)
	c, err := d.Create(Record{Name: "one", Command: []string{"sh"}, Created: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	i, err := d.Get("one")
	if err != nil || !i.Running || i.Status() != "created" || i.Command[0] != "sh" {
		t.Fatalf("Get = %+v, %v", i, err)
	}
	if err := c.Update(func(r *Record) { r.PID, r.PIDStart, r.BootID = os.Getpid(), mustStart(t), BootID() }); err != nil {
		t.Fatal(err)
	}
	if i, _ := d.Get("one"); i.Status() != "running" || !i.Alive() {
		t.Fatalf("after Update: %+v", i)
	}
	if err := d.Delete("one"); !errors.Is(err, ErrRunning) {
		t.Fatalf("Delete of a locked record: %v", err)
	}
	if _, err := d.Create(Record{Name: "one"}); !errors.Is(err, ErrNameInUse) {
		t.Fatalf("second Create: %v", err)
	}
	c.lock.Close() // the runner exits
	if i, _ := d.Get("one"); i.Running || i.Status() != "exited" {
		t.Fatalf("unlocked record: %+v", i)
	}
	if err := d.Delete("one"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Get("one"); !errors.Is(err, ErrNoSuch) {
		t.Fatalf("Get after Delete: %v", err)
	}
	if ents, _ := os.ReadDir(d.Path()); len(ents) != 0 {
		t.Fatalf("left in the directory: %v", ents)
	}
}

func mustStart(t *testing.T) uint64 {
	s, err := ProcStart(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestOnlyOneCreateWinsAName(t *testing.T) {
	d := testDir(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	won := 0
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := d.Create(Record{Name: "race"})
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				won++
			} else if !errors.Is(err, ErrNameInUse) {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if won != 1 {
		t.Fatalf("%d creates won", won)
	}
	ents, _ := os.ReadDir(d.Path())
	if len(ents) != 1 {
		t.Fatalf("directory holds %v", ents)
	}
}

func TestAStalePIDIsNotRunning(t *testing.T) {
	d := testDir(t)
	c, err := d.Create(Record{Name: "stale"})
	if err != nil {
		t.Fatal(err)
	}
	// Locked, but PID 1 recorded from another boot: the runner is tearing
	// down or the record is not what it claims; never "running".
	c.Update(func(r *Record) { r.PID, r.PIDStart, r.BootID = os.Getpid(), mustStart(t), "another-boot" })
	if i, _ := d.Get("stale"); i.Running {
		t.Fatalf("%+v", i)
	}
}

func TestListSkipsTemporaryAndForeignEntries(t *testing.T) {
	d := testDir(t)
	os.Mkdir(filepath.Join(d.Path(), ".new-123"), 0o700)
	os.WriteFile(filepath.Join(d.Path(), "file"), nil, 0o600)
	c, _ := d.Create(Record{Name: "b", Created: time.Unix(2, 0)})
	c.lock.Close()
	c, _ = d.Create(Record{Name: "a", Created: time.Unix(1, 0)})
	c.lock.Close()
	l, err := d.List()
	if err != nil || len(l) != 2 || l[0].Name != "a" || l[1].Name != "b" {
		t.Fatalf("List = %+v, %v", l, err)
	}
}

func TestOpenAtRefusesAnOpenDirectory(t *testing.T) {
	p := t.TempDir()
	os.Chmod(p, 0o755)
	if _, err := OpenAt(p); err == nil || !strings.Contains(err.Error(), "chmod 700") {
		t.Fatalf("OpenAt of a 0755 directory: %v", err)
	}
	link := filepath.Join(t.TempDir(), "link")
	os.Symlink(p, link)
	if _, err := OpenAt(link); err == nil {
		t.Fatal("OpenAt followed a symlink")
	}
}

func TestProcStartParsesACommandWithParentheses(t *testing.T) {
	if _, err := ProcStart(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	if _, err := ProcStart(1 << 30); err == nil {
		t.Fatal("no error for a missing PID")
	}
}
