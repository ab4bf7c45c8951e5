package safedial

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"time"
)

// Resolver resolves host names; *net.Resolver is one.
type Resolver interface {
	// LookupNetIP returns the addresses of host on network "ip", "ip4" or
	// "ip6", or an error when it has none.
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// TransportOptions tunes the Transport of a Policy. The zero value of every
// field selects its default.
type TransportOptions struct {
	// Conns is how many idle connections are kept in all: as many as
	// there are attempts in flight at once (the Dispatcher's concurrency),
	// so that receivers answering every attempt need no new connection for
	// each. Default 1024.
	Conns int
	// PerHost is how many of them are kept per host: as many as there are
	// attempts to one host at once (the Dispatcher's per-host cap).
	// Default 32.
	PerHost int
	// Resolver resolves callback host names; default net.DefaultResolver.
	Resolver Resolver
}

// Transport returns an *http.Transport that sends only to addresses p
// allows. It resolves a name itself, refuses it when any of its addresses
// is forbidden (a name that mixes a public and a private address is
// refused), and connects to one of the checked addresses, never to the
// name, so that a second resolution cannot answer differently. TLS still
// verifies the certificate against the URL's host name. Proxy settings
// from the environment are ignored, and under RequireHTTPS a plain http
// request fails with ErrHTTPSRequired.
func (p Policy) Transport(opts TransportOptions) *http.Transport {
	d := &dialer{policy: p, resolver: opts.Resolver, net: net.Dialer{KeepAlive: 30 * time.Second}}
	if d.resolver == nil {
		d.resolver = net.DefaultResolver
	}
	t := &http.Transport{
		// No proxy: a proxy would resolve and dial names this policy never
		// saw.
		Proxy:                  nil,
		DialContext:            d.dialContext,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           cmp.Or(opts.Conns, 1024),
		MaxIdleConnsPerHost:    cmp.Or(opts.PerHost, 32),
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    10 * time.Second,
		MaxResponseHeaderBytes: 64 << 10,
	}
	if p.RequireHTTPS {
		// The dialer cannot tell http from https; the scheme's own
		// RoundTripper can.
		t.RegisterProtocol("http", refuseHTTP{})
	}
	return t
}

// refuseHTTP is the RoundTripper of plain http under RequireHTTPS.
type refuseHTTP struct{}

func (refuseHTTP) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		req.Body.Close() // a RoundTripper must close the body, even on errors
	}
	return nil, ErrHTTPSRequired
}

// dialer connects to checked addresses only.
type dialer struct {
	policy   Policy
	resolver Resolver
	net      net.Dialer
}

// dialContext connects to address, a host:port, through one of the host's
// addresses, all of which the policy allows.
func (d *dialer) dialContext(ctx context.Context, network, address string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", address, err)
	}
	addrs, err := d.resolve(ctx, network, host)
	if err != nil {
		return nil, err
	}
	var errs []error
	for i, a := range addrs {
		conn, err := d.dialOne(ctx, network, net.JoinHostPort(a.String(), port), len(addrs)-i)
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// resolve returns the addresses host stands for, when the policy allows
// every one of them.
func (d *dialer) resolve(ctx context.Context, network, host string) ([]netip.Addr, error) {
	addr, isAddr, err := parseHost(host)
	if err != nil {
		return nil, err
	}
	if isAddr {
		if kind := d.policy.refusal(addr); kind != "" {
			return nil, &RefusedError{Addr: addr, Kind: kind}
		}
		return []netip.Addr{addr}, nil
	}
	addrs, err := d.resolver.LookupNetIP(ctx, ipNetwork(network), host)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", host, err)
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("resolve %s: no addresses", host)
	}
	for _, a := range addrs {
		if kind := d.policy.refusal(a); kind != "" {
			return nil, &RefusedError{Name: host, Addr: a, Kind: kind}
		}
	}
	return addrs, nil
}

// dialOne connects to address, the first of remaining addresses left to
// try. It gets its share of the time left, as net.Dialer gives each
// address, so that one unreachable address does not use up the attempt.
func (d *dialer) dialOne(ctx context.Context, network, address string, remaining int) (net.Conn, error) {
	if deadline, ok := ctx.Deadline(); ok && remaining > 1 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Until(deadline)/time.Duration(remaining))
		defer cancel()
	}
	return d.net.DialContext(ctx, network, address)
}

// ipNetwork is the resolver network of a dial network.
func ipNetwork(network string) string {
	switch network {
	case "tcp4":
		return "ip4"
	case "tcp6":
		return "ip6"
	}
	return "ip"
}
