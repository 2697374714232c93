package fetch

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/isobox/isobox/rootfs/image"
	"github.com/isobox/isobox/rootfs/image/layer"
	"github.com/isobox/isobox/rootfs/image/refs"
)

// testRegistry is go-containerregistry's in-process registry.
func testRegistry(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func push(t *testing.T, ref string, img v1.Image) {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
}

// testOptions pull into a fresh store; Unpack only records the jobs (the
// real one needs a user namespace).
func testOptions(t *testing.T, jobs *[]layer.Job) Options {
	t.Helper()
	s, err := image.OpenAt(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	return Options{Store: s, Registries: &refs.Registries{}, TLSVerify: true, Quiet: true,
		Unpack: func(j []layer.Job) error {
			*jobs = append(*jobs, j...)
			for _, job := range j {
				d, err := s.TempLayerDir(job.ChainID)
				if err != nil {
					return err
				}
				if err := renameLayer(d, s.LayerDir(job.ChainID)); err != nil {
					return err
				}
			}
			return nil
		}}
}

func TestPullFetchesOnlyMissingLayersAndRecordsTheImage(t *testing.T) {
	reg := testRegistry(t)
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	push(t, reg+"/r/img:1", img)
	var jobs []layer.Job
	o := testOptions(t, &jobs)
	rec, err := Pull(context.Background(), reg+"/r/img:1", o)
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 2 || len(rec.Layers) != 2 || rec.Names[0] != reg+"/r/img:1" || !strings.HasPrefix(rec.Digests[0], reg+"/r/img@sha256:") {
		t.Fatalf("record %+v, jobs %d", rec, len(jobs))
	}
	if _, err := Pull(context.Background(), reg+"/r/img:1", o); err != nil || len(jobs) != 2 {
		t.Errorf("a second pull unpacked again: %d jobs, %v", len(jobs), err)
	}
	o.Policy = "never"
	if got, err := Pull(context.Background(), reg+"/r/img:1", o); err != nil || got.ID != rec.ID {
		t.Errorf("--policy never of a stored image: %v", err)
	}
	if _, err := Pull(context.Background(), reg+"/r/other:1", o); !errors.Is(err, image.ErrNotStored) {
		t.Errorf("--policy never of an image not stored: %v", err)
	}
}

func TestPullRefusesAnUnknownLayerMediaType(t *testing.T) {
	reg := testRegistry(t)
	img, err := mutate.AppendLayers(empty.Image, static.NewLayer([]byte("sealed"), types.MediaType("application/vnd.example.encrypted")))
	if err != nil {
		t.Fatal(err)
	}
	push(t, reg+"/r/odd:1", img)
	var jobs []layer.Job
	o := testOptions(t, &jobs)
	if _, err := Pull(context.Background(), reg+"/r/odd:1", o); !errors.Is(err, ErrMediaType) {
		t.Errorf("unknown layer type: %v", err)
	}
	if imgs, _ := o.Store.Images(); len(imgs) != 0 || len(jobs) != 0 {
		t.Errorf("stored %v, unpacked %v", imgs, jobs)
	}
}

func TestPullOfAMissingTagIsNotFound(t *testing.T) {
	reg := testRegistry(t)
	var jobs []layer.Job
	if _, err := Pull(context.Background(), reg+"/r/none:1", testOptions(t, &jobs)); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing: %v", err)
	}
}

func renameLayer(from, to string) error { return os.Rename(from, to) }
