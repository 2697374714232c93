package fetch

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/isobox/isobox/rootfs/image/refs"
)

// Login checks user and password against registry's /v2/ endpoint (the
// token exchange of a bearer registry included) and, if it accepts them,
// stores them in the auth file, whose path it returns.
func Login(ctx context.Context, registry, user, password string, o Options) (string, error) {
	registry = strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(registry, "https://"), "http://"), "/")
	var opts []name.Option
	if !o.TLSVerify {
		opts = append(opts, name.Insecure)
	}
	reg, err := name.NewRegistry(registry, opts...)
	if err != nil {
		return "", fmt.Errorf("%q: %w: %v", registry, refs.ErrBadReference, err)
	}
	src := refs.Source{Ref: reg.Repo("isobox-login").Tag("latest"), Insecure: !o.TLSVerify}
	tr := baseTransport(o, src)
	auth := authn.FromConfig(authn.AuthConfig{Username: user, Password: password})
	rt, err := transport.NewWithContext(ctx, reg, auth, tr, []string{reg.Repo("isobox-login").Scope(transport.PullScope)})
	if err != nil {
		return "", registryError(src, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, reg.Scheme()+"://"+reg.RegistryStr()+"/v2/", nil)
	if err != nil {
		return "", err
	}
	resp, err := (&http.Client{Transport: rt}).Do(req)
	if err != nil {
		return "", registryError(src, err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		return "", fmt.Errorf("%s: %w: the registry refused the credentials of %q", registry, ErrAuth, user)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: /v2/ answered %s", registry, resp.Status)
	}
	return saveLogin(refs.NormalizeHost(reg.RegistryStr()), user, password)
}
