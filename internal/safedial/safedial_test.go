package safedial

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// Every spelling of an address reads as inet_aton reads it.
func TestParseHost(t *testing.T) {
	t.Parallel()
	tests := []struct {
		host string
		want string // "" for a name
	}{
		{"127.0.0.1", "127.0.0.1"},
		{"2130706433", "127.0.0.1"},
		{"0177.0.0.1", "127.0.0.1"},
		{"017700000001", "127.0.0.1"},
		{"0x7f.0.0.1", "127.0.0.1"},
		{"0X7F.0.0.1", "127.0.0.1"},
		{"0x7f000001", "127.0.0.1"},
		{"0x7f.1", "127.0.0.1"},
		{"0177.1", "127.0.0.1"},
		{"127.1", "127.0.0.1"},
		{"127.0.1", "127.0.0.1"},
		{"127.0.0.1.", "127.0.0.1"},
		{"127.1.", "127.0.0.1"},
		{"0x7f.0x00.0x00.0x01", "127.0.0.1"},
		{"00000177.0.0.1", "127.0.0.1"},
		{"1.2.3", "1.2.0.3"},
		{"1.2", "1.0.0.2"},
		{"1.0x10203", "1.1.2.3"},
		{"010.010.010.010", "8.8.8.8"},
		{"134744072", "8.8.8.8"},
		{"0x", "0.0.0.0"},
		{"0", "0.0.0.0"},
		{"4294967295", "255.255.255.255"},
		{"0xffffffff", "255.255.255.255"},
		{"037777777777", "255.255.255.255"},
		{"::1", "::1"},
		{"::ffff:127.0.0.1", "::ffff:127.0.0.1"},
		{"fe80::1%eth0", "fe80::1%eth0"},
		{"example.com", ""},
		{"example.com.", ""},
		{"127.0.0.1.nip.io", ""},
		{"0x7f.example", ""},
		{"1e100.net", ""},
		{"0xg", ""},
		{"localhost", ""},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			t.Parallel()
			addr, isAddr, err := parseHost(tt.host)
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if tt.want == "" {
				if isAddr {
					t.Errorf("got address %v, want a name", addr)
				}
				return
			}
			if !isAddr || addr != netip.MustParseAddr(tt.want) {
				t.Errorf("got %v (address %v), want %s", addr, isAddr, tt.want)
			}
		})
	}
}

// A host that ends in a number and is not an address is refused, so that
// nothing a resolver could read as an address passes as a name.
func TestParseHostInvalid(t *testing.T) {
	t.Parallel()
	for _, host := range []string{
		"1.2.3.4.5", "256.0.0.1", "127.0.0.256", "1.2.65536", "1.16777216", "4294967296",
		"0x100000000", "08.0.0.1", "0179.0.0.1", "127..1", ".127.0.0.1", "127.0.0.1..", "a..b", ".", "",
		"foo.123", "foo.0x1", "0x7g.1", "+1.2.3.4", "1.-2.3.4", "1_0.0.0.1",
		"::g", "1::2::3", "::1%", "[::1]", "127.0.0.1%eth0", "a b", "a/b", "１２７.０.０.１",
	} {
		t.Run(host, func(t *testing.T) {
			t.Parallel()
			if addr, isAddr, err := parseHost(host); err == nil {
				t.Errorf("got %v (address %v), want an error", addr, isAddr)
			}
		})
	}
}

// refused is every forbidden range, in its spellings, with what the
// refusal says.
var refused = []struct {
	url, addr, kind string
}{
	// 127.0.0.1 in every spelling.
	{"http://127.0.0.1/", "127.0.0.1", "a loopback address"},
	{"http://127.0.0.1:3000/cb", "127.0.0.1", "a loopback address"},
	{"http://2130706433/", "127.0.0.1", "a loopback address"},
	{"http://0177.0.0.1/", "127.0.0.1", "a loopback address"},
	{"http://017700000001/", "127.0.0.1", "a loopback address"},
	{"http://0x7f.0.0.1/", "127.0.0.1", "a loopback address"},
	{"http://0x7f000001/", "127.0.0.1", "a loopback address"},
	{"http://0X7F000001/", "127.0.0.1", "a loopback address"},
	{"http://127.1/", "127.0.0.1", "a loopback address"},
	{"http://127.0.1/", "127.0.0.1", "a loopback address"},
	{"http://127.0.0.1./", "127.0.0.1", "a loopback address"},
	{"https://127.255.255.254/", "127.255.255.254", "a loopback address"},
	{"http://[::1]/", "::1", "a loopback address"},
	{"http://[0:0:0:0:0:0:0:1]:8080/", "::1", "a loopback address"},
	{"http://[::ffff:127.0.0.1]/", "::ffff:127.0.0.1", "an IPv4-mapped form of 127.0.0.1, a loopback address"},
	{"http://[::ffff:7f00:1]/", "::ffff:127.0.0.1", "an IPv4-mapped form of 127.0.0.1, a loopback address"},
	{"http://[0:0:0:0:0:ffff:127.0.0.1]/", "::ffff:127.0.0.1", "an IPv4-mapped form of 127.0.0.1, a loopback address"},
	{"http://[::127.0.0.1]/", "::127.0.0.1", "an IPv4-compatible form of 127.0.0.1, a loopback address"},
	{"http://[::7f00:1]/", "::127.0.0.1", "an IPv4-compatible form of 127.0.0.1, a loopback address"},
	{"http://[::ffff:0:7f00:1]/", "::ffff:0:7f00:1", "an IPv4-translated form of 127.0.0.1, a loopback address"},
	{"http://[64:ff9b::7f00:1]/", "64:ff9b::7f00:1", "a NAT64 form of 127.0.0.1, a loopback address"},
	{"http://[2002:7f00:1::]/", "2002:7f00:1::", "a 6to4 form of 127.0.0.1, a loopback address"},
	// The other ranges.
	{"http://0.0.0.0/", "0.0.0.0", "an unspecified address"},
	{"http://0/", "0.0.0.0", "an unspecified address"},
	{"http://0.1.2.3/", "0.1.2.3", `a "this network" address`},
	{"http://10.0.0.1/", "10.0.0.1", "a private address"},
	{"http://10.255.255.255/", "10.255.255.255", "a private address"},
	{"http://172.16.0.1/", "172.16.0.1", "a private address"},
	{"http://172.31.255.255/", "172.31.255.255", "a private address"},
	{"http://192.168.1.1/", "192.168.1.1", "a private address"},
	{"http://0xc0a80101/", "192.168.1.1", "a private address"},
	{"http://100.64.0.1/", "100.64.0.1", "a shared (CGNAT) address"},
	{"http://100.127.255.254/", "100.127.255.254", "a shared (CGNAT) address"},
	{"http://100.100.100.200/", "100.100.100.200", "a cloud metadata address"},
	{"http://169.254.169.254/latest/meta-data/", "169.254.169.254", "a cloud metadata address"},
	{"http://2852039166/", "169.254.169.254", "a cloud metadata address"},
	{"http://0xa9fea9fe/", "169.254.169.254", "a cloud metadata address"},
	{"http://0251.0376.0251.0376/", "169.254.169.254", "a cloud metadata address"},
	{"http://169.254.43518/", "169.254.169.254", "a cloud metadata address"},
	{"http://[::ffff:169.254.169.254]/", "::ffff:169.254.169.254", "an IPv4-mapped form of 169.254.169.254, a cloud metadata address"},
	{"http://[fd00:ec2::254]/", "fd00:ec2::254", "a cloud metadata address"},
	{"http://169.254.1.1/", "169.254.1.1", "a link-local address"},
	{"http://192.0.0.1/", "192.0.0.1", "an IETF protocol assignment address"},
	{"http://192.0.2.1/", "192.0.2.1", "a documentation address"},
	{"http://198.51.100.1/", "198.51.100.1", "a documentation address"},
	{"http://203.0.113.1/", "203.0.113.1", "a documentation address"},
	{"http://198.18.0.1/", "198.18.0.1", "a benchmarking address"},
	{"http://198.19.255.255/", "198.19.255.255", "a benchmarking address"},
	{"http://224.0.0.1/", "224.0.0.1", "a multicast address"},
	{"http://239.255.255.250/", "239.255.255.250", "a multicast address"},
	{"http://240.0.0.1/", "240.0.0.1", "a reserved address"},
	{"http://255.255.255.254/", "255.255.255.254", "a reserved address"},
	{"http://255.255.255.255/", "255.255.255.255", "a broadcast address"},
	{"http://0xffffffff/", "255.255.255.255", "a broadcast address"},
	{"http://[::]/", "::", "an unspecified address"},
	{"http://[::ffff:10.0.0.1]/", "::ffff:10.0.0.1", "an IPv4-mapped form of 10.0.0.1, a private address"},
	{"http://[::ffff:0.0.0.0]/", "::ffff:0.0.0.0", "an IPv4-mapped form of 0.0.0.0, an unspecified address"},
	{"http://[::10.0.0.1]/", "::10.0.0.1", "an IPv4-compatible form of 10.0.0.1, a private address"},
	{"http://[64:ff9b::10.0.0.1]/", "64:ff9b::a00:1", "a NAT64 form of 10.0.0.1, a private address"},
	{"http://[64:ff9b::a9fe:a9fe]/", "64:ff9b::a9fe:a9fe", "a NAT64 form of 169.254.169.254, a cloud metadata address"},
	{"http://[64:ff9b:1::808:808]/", "64:ff9b:1::808:808", "a local-use NAT64 address"},
	{"http://[2002:a00:1::1]/", "2002:a00:1::1", "a 6to4 form of 10.0.0.1, a private address"},
	{"http://[2002:c0a8:101::]/", "2002:c0a8:101::", "a 6to4 form of 192.168.1.1, a private address"},
	{"http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", "2001:0:4136:e378:8000:63bf:3fff:fdd2", "a Teredo address"},
	{"http://[2001:db8::1]/", "2001:db8::1", "a documentation address"},
	{"http://[3fff::1]/", "3fff::1", "a documentation address"},
	{"http://[2001:2::1]/", "2001:2::1", "a benchmarking address"},
	{"http://[100::1]/", "100::1", "a discard-only address"},
	{"http://[fc00::1]/", "fc00::1", "a unique-local address"},
	{"http://[fd12:3456:789a::1]/", "fd12:3456:789a::1", "a unique-local address"},
	{"http://[fe80::1]/", "fe80::1", "a link-local address"},
	{"http://[fe80::1%25eth0]/", "fe80::1%eth0", "a link-local address"},
	{"http://[febf::1]/", "febf::1", "a link-local address"},
	{"http://[fec0::1]/", "fec0::1", "a site-local address"},
	{"http://[ff02::1]/", "ff02::1", "a multicast address"},
	{"http://[ff05::1:3]/", "ff05::1:3", "a multicast address"},
	{"http://[::2:1:1:1]/", "::2:1:1:1", "a reserved address"},
	{"http://[4000::1]/", "4000::1", "a reserved address"},
	{"http://[e000::1]/", "e000::1", "a reserved address"},
}

// public is literal hosts and names that no policy refuses at submit.
var public = []string{
	"http://8.8.8.8/",
	"https://1.1.1.1:8443/cb",
	"http://134744072/",
	"http://0x08080808/",
	"http://010.010.010.010/",
	"http://8.8.8.8./",
	"http://11.0.0.0/",
	"http://126.255.255.255/",
	"http://128.0.0.0/",
	"http://100.63.255.255/",
	"http://100.128.0.0/",
	"http://169.253.255.255/",
	"http://169.255.0.0/",
	"http://172.15.255.255/",
	"http://172.32.0.0/",
	"http://192.0.1.255/",
	"http://192.0.3.0/",
	"http://192.167.255.255/",
	"http://192.169.0.0/",
	"http://198.17.255.255/",
	"http://198.20.0.0/",
	"http://223.255.255.255/",
	"http://[2606:4700:4700::1111]/",
	"http://[2a00:1450:4001:81b::200e]:8080/",
	"http://[::ffff:8.8.8.8]/",
	"http://[::ffff:808:808]/",
	"http://[64:ff9b::8.8.8.8]/",
	"http://[2002:808:808::1]/",
	"http://[2001:1::1]/",
	"http://[2001:db7::1]/",
	"http://example.com/cb",
	"https://example.com./cb",
	"http://127.0.0.1.nip.io/",
	"http://0x7f.example/",
	"http://localhost/", // a name: refused when dialled, see TestTransportRefusesNames
	"http://xn--mnchen-3ya.de/",
}

func TestCheckURLRefuses(t *testing.T) {
	t.Parallel()
	for _, tt := range refused {
		t.Run(tt.url, func(t *testing.T) {
			t.Parallel()
			err := Policy{}.CheckURL(tt.url)
			e, ok := errors.AsType[*RefusedError](err)
			if !ok {
				t.Fatalf("got %v, want a *RefusedError", err)
			}
			if got, want := e.Addr, netip.MustParseAddr(tt.addr); got != want || e.Kind != tt.kind || e.Name != "" {
				t.Errorf("got %v, %q, name %q; want %v, %q, no name", got, e.Kind, e.Name, want, tt.kind)
			}
			want := "refused: " + e.Addr.String() + " is " + tt.kind + " (set TUNEHOOK_ALLOW_PRIVATE_CALLBACKS=true or TUNEHOOK_CALLBACK_ALLOW_CIDRS to allow it)"
			if err.Error() != want {
				t.Errorf("got %q, want %q", err, want)
			}
		})
	}
}

func TestCheckURLAllowsPublic(t *testing.T) {
	t.Parallel()
	for _, u := range public {
		t.Run(u, func(t *testing.T) {
			t.Parallel()
			if err := (Policy{}).CheckURL(u); err != nil {
				t.Errorf("got %v, want nil", err)
			}
		})
	}
}

// With AllowPrivate every address goes, and so does every public one.
func TestCheckURLAllowPrivate(t *testing.T) {
	t.Parallel()
	p := Policy{AllowPrivate: true}
	for _, tt := range refused {
		if err := p.CheckURL(tt.url); err != nil {
			t.Errorf("%s: got %v, want nil", tt.url, err)
		}
	}
	for _, u := range public {
		if err := p.CheckURL(u); err != nil {
			t.Errorf("%s: got %v, want nil", u, err)
		}
	}
}

// An Allow prefix lets its range through, in every spelling and behind
// every embedding, and nothing else.
func TestCheckURLAllowPrefix(t *testing.T) {
	t.Parallel()
	p := Policy{Allow: []netip.Prefix{
		netip.MustParsePrefix("127.0.0.0/8"),
		netip.MustParsePrefix("10.1.2.0/24"),
		netip.MustParsePrefix("fd00:ec2::/32"),
	}}
	tests := []struct {
		url     string
		allowed bool
	}{
		{"http://127.0.0.1/", true},
		{"http://0x7f000001/", true},
		{"http://127.1/", true},
		{"http://[::ffff:127.0.0.1]/", true},
		{"http://[64:ff9b::7f00:1]/", true},
		{"http://[2002:7f00:1::]/", true},
		{"http://10.1.2.3/", true},
		{"http://10.1.2.255/", true},
		{"http://[::ffff:10.1.2.3]/", true},
		{"http://[fd00:ec2::254]/", true},
		{"http://[::1]/", false},
		{"http://10.1.3.1/", false},
		{"http://10.1.1.255/", false},
		{"http://192.168.1.1/", false},
		{"http://[::ffff:10.1.3.1]/", false},
		{"http://[fd00:ec3::1]/", false},
		{"http://169.254.169.254/", false},
		{"http://8.8.8.8/", true},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			t.Parallel()
			err := p.CheckURL(tt.url)
			_, refused := errors.AsType[*RefusedError](err)
			if tt.allowed && err != nil || !tt.allowed && !refused {
				t.Errorf("got %v, want allowed %v", err, tt.allowed)
			}
		})
	}
}

// URLs that are not http(s) with a valid host are refused whatever the
// policy, with a reason.
func TestCheckURLInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		url         string
		policy      Policy
		wantInError string
	}{
		{"ftp://example.com/", Policy{}, `scheme "ftp"`},
		{"file:///etc/passwd", Policy{AllowPrivate: true}, `scheme "file"`},
		{"gopher://127.0.0.1:6379/_", Policy{AllowPrivate: true}, `scheme "gopher"`},
		{"//example.com/cb", Policy{}, `scheme ""`},
		{"http:///cb", Policy{}, "no host"},
		{"http://:80/cb", Policy{}, "no host"},
		{"http://[::1/", Policy{}, "not a valid URL"},
		{"http://1.2.3.4.5/", Policy{}, "not a valid IPv4 address"},
		{"http://1.2.3.4.5/", Policy{AllowPrivate: true}, "not a valid IPv4 address"},
		{"http://256.0.0.1/", Policy{}, "not a valid IPv4 address"},
		{"http://08.0.0.1/", Policy{}, "not a valid IPv4 address"},
		{"http://4294967296/", Policy{}, "not a valid IPv4 address"},
		{"http://foo.123/", Policy{}, "not a valid IPv4 address"},
		{"http://127..1/", Policy{}, "empty label"},
		{"http://callback..example.com/", Policy{AllowPrivate: true}, "empty label"},
		{"http://１２７.０.０.１/", Policy{}, "not ASCII"},
		{"http://münchen.de/", Policy{AllowPrivate: true}, "xn--"},
		{"http://%25/", Policy{}, "not a valid host name"},
		{"http://127.0.0.1%25eth0/", Policy{AllowPrivate: true}, "not a valid host name"},
		{"http://a!b.example/", Policy{}, "not a valid host name"},
		{"http://①②⑦.0.0.1/", Policy{Allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}, "not ASCII"},
		{"http://example.com/", Policy{RequireHTTPS: true}, "https"},
		{"http://example.com/", Policy{RequireHTTPS: true, AllowPrivate: true}, "https"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			t.Parallel()
			err := tt.policy.CheckURL(tt.url)
			if err == nil || !strings.Contains(err.Error(), tt.wantInError) {
				t.Fatalf("got %v, want an error that mentions %q", err, tt.wantInError)
			}
			if _, ok := errors.AsType[*RefusedError](err); ok {
				t.Errorf("got a *RefusedError %v, want another error", err)
			}
		})
	}
}

func TestCheckURLRequireHTTPS(t *testing.T) {
	t.Parallel()
	p := Policy{RequireHTTPS: true}
	if err := p.CheckURL("http://example.com/cb"); !errors.Is(err, ErrHTTPSRequired) {
		t.Errorf("got %v, want ErrHTTPSRequired", err)
	}
	if err := p.CheckURL("https://example.com/cb"); err != nil {
		t.Errorf("got %v, want nil for https", err)
	}
	if _, ok := errors.AsType[*RefusedError](p.CheckURL("https://10.0.0.1/cb")); !ok {
		t.Error("got no refusal of https://10.0.0.1, want one: RequireHTTPS does not allow addresses")
	}
}

func TestRefusedErrorNamesTheName(t *testing.T) {
	t.Parallel()
	err := &RefusedError{Name: "internal.example", Addr: netip.MustParseAddr("10.0.0.1"), Kind: "a private address"}
	want := "refused: internal.example resolves to 10.0.0.1, a private address (set TUNEHOOK_ALLOW_PRIVATE_CALLBACKS=true or TUNEHOOK_CALLBACK_ALLOW_CIDRS to allow it)"
	if err.Error() != want {
		t.Errorf("got %q, want %q", err, want)
	}
}
