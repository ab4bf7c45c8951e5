package safedial

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// fakeResolver answers from a table and records every lookup.
type fakeResolver struct {
	answers map[string][]netip.Addr
	mu      sync.Mutex
	lookups []string // "network host"
}

func newFakeResolver(answers map[string]string) *fakeResolver {
	r := &fakeResolver{answers: map[string][]netip.Addr{}}
	for name, addrs := range answers {
		for a := range strings.SplitSeq(addrs, ",") {
			r.answers[name] = append(r.answers[name], netip.MustParseAddr(a))
		}
	}
	return r
}

func (r *fakeResolver) LookupNetIP(_ context.Context, network, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	r.lookups = append(r.lookups, network+" "+host)
	r.mu.Unlock()
	addrs, ok := r.answers[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return addrs, nil
}

func (r *fakeResolver) seen() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.lookups...)
}

// receiver is a live server on 127.0.0.1 that records the Host header of
// each request it gets.
type receiver struct {
	*httptest.Server
	hits  atomic.Int64
	mu    sync.Mutex
	hosts []string
}

func newReceiver(t *testing.T, tlsServer bool) *receiver {
	t.Helper()
	rc := &receiver{}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc.hits.Add(1)
		rc.mu.Lock()
		rc.hosts = append(rc.hosts, r.Host)
		rc.mu.Unlock()
		io.WriteString(w, "ok")
	})
	if tlsServer {
		rc.Server = httptest.NewTLSServer(h)
	} else {
		rc.Server = httptest.NewServer(h)
	}
	t.Cleanup(rc.Close)
	return rc
}

// port is the receiver's port.
func (rc *receiver) port(t *testing.T) string {
	t.Helper()
	u, err := url.Parse(rc.URL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Port()
}

// post sends a callback through tr the way the Dispatcher does: no
// redirects followed.
func post(t *testing.T, tr *http.Transport, target string) (string, error) {
	t.Helper()
	t.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := c.Post(target, "application/json", strings.NewReader(`{"code":200}`))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// A name is refused when any address it resolves to is forbidden, before
// anything is dialled.
func TestTransportRefusesNames(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, false)
	res := newFakeResolver(map[string]string{
		"loopback.test": "127.0.0.1",
		"internal.test": "10.0.0.1",
		"mixed.test":    "8.8.8.8,10.1.2.3",
		"mixed6.test":   "2606:4700:4700::1111,fd12::1",
		"mapped.test":   "::ffff:127.0.0.1",
		"metadata.test": "169.254.169.254",
		"ec2v6.test":    "fd00:ec2::254",
		"nat64.test":    "64:ff9b::a9fe:a9fe",
		"localhost":     "127.0.0.1,::1",
	})
	tests := []struct {
		host, addr, kind string
	}{
		{"loopback.test", "127.0.0.1", "a loopback address"},
		{"internal.test", "10.0.0.1", "a private address"},
		{"mixed.test", "10.1.2.3", "a private address"},
		{"mixed6.test", "fd12::1", "a unique-local address"},
		{"mapped.test", "::ffff:127.0.0.1", "an IPv4-mapped form of 127.0.0.1, a loopback address"},
		{"metadata.test", "169.254.169.254", "a cloud metadata address"},
		{"ec2v6.test", "fd00:ec2::254", "a cloud metadata address"},
		{"nat64.test", "64:ff9b::a9fe:a9fe", "a NAT64 form of 169.254.169.254, a cloud metadata address"},
		{"localhost", "127.0.0.1", "a loopback address"},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			t.Parallel()
			tr := Policy{}.Transport(TransportOptions{Resolver: res})
			_, err := post(t, tr, "http://"+tt.host+":"+rc.port(t)+"/cb")
			e, ok := errors.AsType[*RefusedError](err)
			if !ok {
				t.Fatalf("got %v, want a *RefusedError", err)
			}
			if e.Name != tt.host || e.Addr != netip.MustParseAddr(tt.addr) || e.Kind != tt.kind {
				t.Errorf("got %s %v %q, want %s %s %q", e.Name, e.Addr, e.Kind, tt.host, tt.addr, tt.kind)
			}
			want := "refused: " + tt.host + " resolves to " + e.Addr.String() + ", " + tt.kind +
				" (set TUNEHOOK_ALLOW_PRIVATE_CALLBACKS=true or TUNEHOOK_CALLBACK_ALLOW_CIDRS to allow it)"
			if !strings.Contains(err.Error(), want) {
				t.Errorf("got %q, want it to contain %q", err, want)
			}
		})
	}
	if n := rc.hits.Load(); n != 0 {
		t.Errorf("got %d requests at the receiver, want 0", n)
	}
}

// Literal hosts are checked when dialled too, in every spelling, so a
// URL that skipped CheckURL cannot get through.
func TestTransportRefusesLiterals(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, false)
	res := newFakeResolver(nil)
	for _, host := range []string{"127.0.0.1", "0x7f000001", "2130706433", "0177.1", "127.1", "[::ffff:127.0.0.1]", "[::1]"} {
		t.Run(host, func(t *testing.T) {
			t.Parallel()
			tr := Policy{}.Transport(TransportOptions{Resolver: res})
			_, err := post(t, tr, "http://"+host+":"+rc.port(t)+"/cb")
			if e, ok := errors.AsType[*RefusedError](err); !ok || e.Name != "" {
				t.Errorf("got %v, want a *RefusedError without a name", err)
			}
		})
	}
	t.Cleanup(func() {
		if n := rc.hits.Load(); n != 0 {
			t.Errorf("got %d requests at the receiver, want 0", n)
		}
		if seen := res.seen(); len(seen) != 0 {
			t.Errorf("got lookups %q, want none for literal hosts", seen)
		}
	})
}

// What a name resolves to is checked and then dialled: the request
// reaches the receiver at the checked address, with the name in the Host
// header.
func TestTransportDialsCheckedAddress(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, false)
	tests := []struct {
		name   string
		policy Policy
		addrs  string
	}{
		{"allow private", Policy{AllowPrivate: true}, "127.0.0.1"},
		{"allow prefix", Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, "127.0.0.1"},
		{"allow address", Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}, "127.0.0.1"},
		{"allow mapped", Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}, "::ffff:127.0.0.1"},
		// Nothing listens on 127.0.0.2: the next address is tried.
		{"second address", Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, "127.0.0.2,127.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := newFakeResolver(map[string]string{"callback.test": tt.addrs})
			tr := tt.policy.Transport(TransportOptions{Resolver: res})
			body, err := post(t, tr, "http://callback.test:"+rc.port(t)+"/cb")
			if err != nil || body != "ok" {
				t.Fatalf("got %q, %v; want ok", body, err)
			}
			if got, want := res.seen(), []string{"ip callback.test"}; strings.Join(got, ";") != strings.Join(want, ";") {
				t.Errorf("got lookups %q, want %q", got, want)
			}
		})
	}
	t.Cleanup(func() {
		rc.mu.Lock()
		defer rc.mu.Unlock()
		for _, h := range rc.hosts {
			if want := "callback.test:" + rc.port(t); h != want {
				t.Errorf("got Host %q, want %q", h, want)
			}
		}
	})
}

// A literal spelling the Go resolver would not read as an address is
// still dialled as the address CheckURL saw.
func TestTransportDialsSpelledAddress(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, false)
	tr := Policy{AllowPrivate: true}.Transport(TransportOptions{Resolver: newFakeResolver(nil)})
	if body, err := post(t, tr, "http://0x7f000001:"+rc.port(t)+"/cb"); err != nil || body != "ok" {
		t.Fatalf("got %q, %v; want ok", body, err)
	}
}

// Each connection resolves its name once, and connects to what that
// resolution answered and the policy checked: a name that rebinds to a
// private address for the next connection is refused then.
func TestTransportRebinding(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, false)
	res := &rebinder{first: netip.MustParseAddr("127.0.0.1"), then: netip.MustParseAddr("10.0.0.1")}
	tr := Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}.Transport(TransportOptions{Resolver: res})
	target := "http://rebind.test:" + rc.port(t) + "/cb"
	if body, err := post(t, tr, target); err != nil || body != "ok" {
		t.Fatalf("first connection: got %q, %v; want ok", body, err)
	}
	tr.CloseIdleConnections()
	_, err := post(t, tr, target)
	if e, ok := errors.AsType[*RefusedError](err); !ok || e.Addr != res.then {
		t.Errorf("second connection: got %v, want a refusal of %v", err, res.then)
	}
	if got := res.calls.Load(); got != 2 {
		t.Errorf("got %d lookups, want 2 (one per connection)", got)
	}
	if got := rc.hits.Load(); got != 1 {
		t.Errorf("got %d requests at the receiver, want 1", got)
	}
}

// rebinder answers first, then then.
type rebinder struct {
	first, then netip.Addr
	calls       atomic.Int64
}

func (r *rebinder) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	if r.calls.Add(1) == 1 {
		return []netip.Addr{r.first}, nil
	}
	return []netip.Addr{r.then}, nil
}

// TLS verifies the receiver's certificate against the URL's name, not
// against the address dialled (which the test certificate also covers).
func TestTransportVerifiesTLSName(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, true)
	roots := x509.NewCertPool()
	roots.AddCert(rc.Certificate())
	res := newFakeResolver(map[string]string{
		"callback.example.com": "127.0.0.1", // the certificate's *.example.com
		"callback.test":        "127.0.0.1",
	})
	newTransport := func() *http.Transport {
		tr := Policy{AllowPrivate: true}.Transport(TransportOptions{Resolver: res})
		tr.TLSClientConfig = &tls.Config{RootCAs: roots}
		return tr
	}

	if body, err := post(t, newTransport(), "https://callback.example.com:"+rc.port(t)+"/cb"); err != nil || body != "ok" {
		t.Fatalf("name in the certificate: got %q, %v; want ok", body, err)
	}
	_, err := post(t, newTransport(), "https://callback.test:"+rc.port(t)+"/cb")
	if _, ok := errors.AsType[*tls.CertificateVerificationError](err); !ok {
		t.Errorf("name not in the certificate: got %v, want a certificate verification error", err)
	}
	// Without the test root, the certificate is not trusted at all.
	tr := Policy{AllowPrivate: true}.Transport(TransportOptions{Resolver: res})
	if _, err := post(t, tr, "https://callback.example.com:"+rc.port(t)+"/cb"); err == nil {
		t.Error("untrusted certificate: got no error, want one")
	}
	if got := rc.hits.Load(); got != 1 {
		t.Errorf("got %d requests at the receiver, want 1", got)
	}
}

func TestTransportRequireHTTPS(t *testing.T) {
	t.Parallel()
	plain := newReceiver(t, false)
	secure := newReceiver(t, true)
	roots := x509.NewCertPool()
	roots.AddCert(secure.Certificate())
	res := newFakeResolver(map[string]string{"callback.example.com": "127.0.0.1"})
	tr := Policy{AllowPrivate: true, RequireHTTPS: true}.Transport(TransportOptions{Resolver: res})
	tr.TLSClientConfig = &tls.Config{RootCAs: roots}

	if _, err := post(t, tr, "http://callback.example.com:"+plain.port(t)+"/cb"); !errors.Is(err, ErrHTTPSRequired) {
		t.Errorf("http: got %v, want ErrHTTPSRequired", err)
	}
	if body, err := post(t, tr, "https://callback.example.com:"+secure.port(t)+"/cb"); err != nil || body != "ok" {
		t.Errorf("https: got %q, %v; want ok", body, err)
	}
	if got := plain.hits.Load(); got != 0 {
		t.Errorf("got %d plain http requests, want 0", got)
	}
}

func TestTransportResolveError(t *testing.T) {
	t.Parallel()
	tr := Policy{}.Transport(TransportOptions{Resolver: newFakeResolver(nil)})
	_, err := post(t, tr, "http://missing.test/cb")
	if e, ok := errors.AsType[*net.DNSError](err); !ok || !e.IsNotFound {
		t.Errorf("got %v, want the resolver's not-found error", err)
	}
}

// The transport keeps the Dispatcher's settings and takes no proxy from
// the environment.
func TestTransportSettings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		conns, perHost, wantIdle, wantPerHost int
	}{
		{0, 0, 1024, 32},
		{16, 8, 16, 8},
	}
	for _, tt := range tests {
		tr := Policy{}.Transport(TransportOptions{Conns: tt.conns, PerHost: tt.perHost})
		checks := []struct {
			name      string
			got, want any
		}{
			{"MaxIdleConnsPerHost", tr.MaxIdleConnsPerHost, tt.wantPerHost},
			{"MaxIdleConns", tr.MaxIdleConns, tt.wantIdle},
			{"MaxResponseHeaderBytes", tr.MaxResponseHeaderBytes, int64(64 << 10)},
			{"Proxy set", tr.Proxy != nil, false},
			{"ForceAttemptHTTP2", tr.ForceAttemptHTTP2, true},
			{"TLSHandshakeTimeout set", tr.TLSHandshakeTimeout > 0, true},
		}
		for _, c := range checks {
			if c.got != c.want {
				t.Errorf("conns %d, per host %d: %s: got %v, want %v", tt.conns, tt.perHost, c.name, c.got, c.want)
			}
		}
	}
}
