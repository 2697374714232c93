// Package fetch brings images into the image store: from OCI and Docker
// v2 registries, and from `docker save` archives and OCI layouts. It
// resolves names as podman does (short names through registries.conf's
// unqualified-search-registries, its mirrors and insecure registries),
// authenticates as podman and Docker users expect, and verifies every blob
// against its digest and every layer against its DiffID before anything
// of the image becomes visible.
//
// Registries, manifests, indexes, auth and archives are
// go-containerregistry's: the package adds the choices around it (which
// names to try, which files hold credentials, the bounded worker pool
// that fetches layers, progress). It knows nothing of namespaces: the
// layers are unpacked through the Unpack function its caller gives, which
// runs image.Store.Unpack as root of a user namespace.
//
// It runs as the caller, on the host.
package fetch
