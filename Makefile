# isobox: `make demo` runs a rootless BusyBox container, `make test` runs the
# tests. Both first make the machine ready (.ci/setup-host).

export PATH := $(PATH):/usr/local/go/bin
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# Static and without cgo: the same binary runs as every stage, inside user
# namespaces, and needs nothing from the host's libc or NSS.
export CGO_ENABLED := 0
GOFLAGS_BUILD := -trimpath -ldflags "-s -w -X main.version=$(VERSION)"
UNIT := ./idmap/... ./userns/... ./rootfs/... ./slirp/... ./cmd/...

.PHONY: all build setup setup-tests demo test unit integration lint fuzz bench oci-validation clean

all: build

# isobox-gvisor, the helper of --net gvisor, and isobox-image, the helper
# that fetches images, go next to isobox: their packages would slow the
# start of every isobox process (slirp/gvisor, cmd/isobox-image).
build:
	$(GO) build $(GOFLAGS_BUILD) -o bin/isobox ./cmd/isobox
	$(GO) build $(GOFLAGS_BUILD) -o bin/isobox-gvisor ./cmd/isobox-gvisor
	$(GO) build $(GOFLAGS_BUILD) -o bin/isobox-image ./cmd/isobox-image

setup:
	@bash .ci/setup-host

demo: setup build
	@bash .ci/demo

lint:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# The race detector needs cgo; the unit tests run it, the binary never does.
unit:
	CGO_ENABLED=1 $(GO) test -race -count=1 $(UNIT)

integration: build
	$(GO) test -count=1 -timeout 20m ./tests/...

test: setup-tests lint unit integration

setup-tests:
	@bash .ci/setup-host tests

# Ratios against the peers in one run, all Debian packages (podman needs
# runc on hosts with hybrid cgroups, where crun refuses to run; skopeo,
# umoci and debootstrap for the image section).
BENCH_PEERS := bwrap:bubblewrap rootlesskit:rootlesskit podman:podman runc:runc crun:crun skopeo:skopeo umoci:umoci debootstrap:debootstrap docker-registry:docker-registry
bench: setup build
	@if [ "$$(id -u)" = 0 ]; then for p in $(BENCH_PEERS); do command -v $${p%%:*} >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $${p##*:} >/dev/null || true; done; fi
	$(GO) run ./bench $(CURDIR)/bin/isobox

# The OCI runtime-tools validation suite against isobox oci (a report; a
# few minutes; not part of make test). ONLY=prog,... runs those programs
# and prints their output.
oci-validation: build
	@bash .ci/oci-validation

fuzz:
	$(GO) test -run XXX -fuzz FuzzParse$$ -fuzztime 20s ./idmap/
	$(GO) test -run XXX -fuzz FuzzParseTimeOffsets -fuzztime 20s ./userns/
	$(GO) test -run XXX -fuzz FuzzParseEnvFile -fuzztime 20s ./userns/
	$(GO) test -run XXX -fuzz FuzzParsePublish -fuzztime 20s ./slirp/
	$(GO) test -run XXX -fuzz FuzzLoad -fuzztime 20s ./userns/seccomp/
	$(GO) test -run XXX -fuzz FuzzParseVolume -fuzztime 20s ./rootfs/
	$(GO) test -run XXX -fuzz FuzzParseTmpfs -fuzztime 20s ./rootfs/
	$(GO) test -run XXX -fuzz FuzzExtractLayerStaysInside -fuzztime 20s ./rootfs/
	$(GO) test -run XXX -fuzz FuzzTranslate -fuzztime 20s ./userns/bundle/

clean:
	rm -rf bin
