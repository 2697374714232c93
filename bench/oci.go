package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// benchOCI times `isobox oci run` against rootless `runc run` (and crun
// where it runs here) on one `runc spec --rootless` bundle of the BusyBox
// rootfs, start to exit of /bin/true.
func benchOCI(dir string, results map[string]float64) error {
	fmt.Println("\n== 7. OCI bundles: start to exit of /bin/true, one `runc spec --rootless` bundle (median of 21 after 3 warm-ups, interleaved)")
	runc, err := exec.LookPath("runc")
	if err != nil {
		fmt.Println("runc: not installed, skipped (sudo apt-get install runc)")
		return nil
	}
	b := filepath.Join(dir, "bundle")
	if out, err := command("mkdir", "-p", b).CombinedOutput(); err != nil {
		return fmt.Errorf("bundle: %v %s", err, out)
	}
	if out, err := command("cp", "-a", rootfs, filepath.Join(b, "rootfs")).CombinedOutput(); err != nil {
		return fmt.Errorf("bundle rootfs: %v %s", err, out)
	}
	spec := command(runc, "spec", "--rootless")
	spec.Dir = b
	if out, err := spec.CombinedOutput(); err != nil {
		return fmt.Errorf("runc spec --rootless: %v %s", err, out)
	}
	cfg := filepath.Join(b, "config.json")
	raw, err := os.ReadFile(cfg)
	if err != nil {
		return err
	}
	edited := strings.Replace(strings.Replace(string(raw), `"terminal": true`, `"terminal": false`, 1), `"sh"`, `"/bin/true"`, 1)
	// Readable by the user the containers run as; written by the bench.
	if err := os.WriteFile(cfg, []byte(edited), 0o644); err != nil {
		return err
	}
	peers := []peer{
		{name: "isobox oci run", argv: []string{runner, "oci", "--root", filepath.Join(dir, "isobox-oci-root"), "run", "-b", b, "bench"}},
		{name: "runc run (rootless)", argv: []string{runc, "--root", filepath.Join(dir, "runc-root"), "run", "-b", b, "bench"}},
	}
	if crun, err := exec.LookPath("crun"); err == nil {
		if out, err := command(crun, "--root", filepath.Join(dir, "crun-root"), "run", "-b", b, "probe").CombinedOutput(); err == nil {
			peers = append(peers, peer{name: "crun run (rootless)", argv: []string{crun, "--root", filepath.Join(dir, "crun-root"), "run", "-b", b, "bench"}})
		} else {
			fmt.Printf("crun: cannot run here, skipped: %s\n", lastLine(out))
		}
	} else {
		fmt.Println("crun: not installed, skipped")
	}
	if err := timePeers(peers, results); err != nil {
		return err
	}
	ratio(results, "start_ms isobox oci run", "start_ms runc run (rootless)", "isobox oci run/runc run", "target <= 0.5")
	ratio(results, "start_ms isobox oci run", "start_ms crun run (rootless)", "isobox oci run/crun run", "")
	return nil
}
