package slirp

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/rootless-containers/rootlesskit/v3/pkg/port"
	"github.com/rootless-containers/rootlesskit/v3/pkg/port/builtin"
)

// Ports is the parent side of RootlessKit's builtin port driver: it
// listens on the host and hands each connection to the child side, which
// dials the container's port inside its network namespace (the source
// address the container sees is 127.0.0.1).
type Ports struct {
	d    port.ParentDriver
	quit chan struct{}
	done chan error
}

// NewPorts creates the driver with its FIFO and socket in stateDir, and
// returns what the child side needs.
func NewPorts(stateDir string, log io.Writer) (*Ports, map[string]string, error) {
	d, err := builtin.NewParentDriver(log, stateDir, false, "")
	if err != nil {
		return nil, nil, fmt.Errorf("port driver: %w", err)
	}
	return &Ports{d: d, quit: make(chan struct{}), done: make(chan error, 1)}, d.OpaqueForChild(), nil
}

// Publish waits for the child side (RunPortChild) to connect, then opens
// every host port. abort is closed when the child side can no longer come
// (the container is gone): the driver itself waits without a timeout.
func (p *Ports) Publish(specs []Publish, abort <-chan struct{}) error {
	ready := make(chan struct{}, 1)
	go func() { p.done <- p.d.RunParentDriver(ready, p.quit, nil) }()
	select {
	case <-ready:
	case err := <-p.done:
		return fmt.Errorf("port driver: %w", err)
	case <-abort:
		return errors.New("port driver: the container went away before its port driver started")
	}
	for _, s := range specs {
		_, err := p.d.AddPort(context.Background(), port.Spec{
			Proto: s.Proto, ParentIP: s.HostIP, ParentPort: s.HostPort, ChildPort: s.ContainerPort,
		})
		if err != nil {
			return fmt.Errorf("publish %s: %w", s, err)
		}
	}
	return nil
}

// Stop closes the host ports.
func (p *Ports) Stop() {
	if ports, err := p.d.ListPorts(context.Background()); err == nil {
		for _, s := range ports {
			p.d.RemovePort(context.Background(), s.ID)
		}
	}
	close(p.quit)
}

// RunPortChild is the child side. It runs in the holder, which sees the
// host's filesystem (the driver's socket) and may enter the container's
// network namespace at netnsPath to dial.
func RunPortChild(opaque map[string]string, quit <-chan struct{}, netnsPath string, log io.Writer) error {
	return builtin.NewChildDriver(log).RunChildDriver(opaque, quit, netnsPath)
}
