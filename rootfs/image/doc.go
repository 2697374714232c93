// Package image is isobox's image store: blobs by digest, each layer
// unpacked once into a directory of its own keyed by its chain ID, and one
// record per image naming its layers. Containers stack those directories
// read-only with overlayfs (rootfs.Overlay), so any number of containers
// share one copy of a layer and none can change it.
//
// The store lives in $XDG_DATA_HOME/isobox (default ~/.local/share/isobox),
// mode 0700, owned by the caller; one that is not is refused. Its layout:
//
//	images/ID.json        an image's record (ID: the hex digest of its config)
//	blobs/sha256/HEX      configs, by digest
//	layers/CHAIN/         an unpacked layer; files keep the image's owners,
//	                      mapped onto the caller and its subordinate ids
//	layers/.tmp-CHAIN-*   a layer being unpacked (or left by a killed pull)
//	layers/.gone-CHAIN-*  a layer being removed
//	locks/CHAIN           a layer's lock; lock is the store's
//
// Nothing becomes visible half-made: a layer is unpacked under a temporary
// name and renamed into place once its DiffID is verified, an image's
// record is written to a temporary file and renamed once all its layers
// are in place. A pull holds the locks of all its layers (flock, sorted, so
// two pulls cannot deadlock) from the moment it looks for them until its
// record exists: two pulls of images that share layers fetch each shared
// layer once, and a prune never deletes a layer a pull is about to name.
//
// The package knows digests, layers and locks, not registries (the fetch
// package brings images in) nor namespaces: unpacking a layer must run as
// root of a user namespace with the container's mapping (userns runs
// Unpack there), everything else runs as the caller on the host.
package image
