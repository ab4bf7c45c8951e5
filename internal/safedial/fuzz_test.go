package safedial

import (
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// numberLabel is what the WHATWG URL standard reads as a number: a host
// whose last label matches is an IPv4 address, never a name.
var numberLabel = regexp.MustCompile(`^([0-9]+|0[xX][0-9a-fA-F]*)$`)

// hostName is a name: labels of ASCII letters, digits, "-" and "_".
var hostName = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?$`)

// Whatever CheckURL allows is an http(s) URL whose host is either a public
// address (by the standard library's own predicates, which are coarser than
// the policy's table) or an ASCII name no resolver reads as an address.
func FuzzCheckURL(f *testing.F) {
	for _, tt := range refused {
		f.Add(tt.url)
	}
	for _, u := range public {
		f.Add(u)
	}
	for _, u := range []string{
		"http://1.2.3.4.5/", "http://0x/", "http://0x.0x.0x.0x/", "http://[::ffff:0x7f.1]/",
		"http://[fe80::1%25en0]:80/", "http://１２７.０.０.１/", "http://a..b/", "http://%31%32%37.0.0.1/",
		"https://user:pass@10.0.0.1/", "http://127.0.0.1%2f@example.com/",
	} {
		f.Add(u)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if (Policy{}).CheckURL(raw) != nil {
			return
		}
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("allowed %q, which does not parse: %v", raw, err)
		}
		host := u.Hostname()
		if (u.Scheme != "http" && u.Scheme != "https") || host == "" {
			t.Fatalf("allowed %q: scheme %q, host %q", raw, u.Scheme, host)
		}
		labels := strings.Split(strings.TrimSuffix(host, "."), ".")
		if strings.Contains(host, ":") || numberLabel.MatchString(labels[len(labels)-1]) {
			// An address, in some spelling (TestParseHost holds the
			// spellings' values).
			a, isAddr, err := parseHost(host)
			if err != nil || !isAddr {
				t.Fatalf("allowed %q, whose host %q is no address: %v", raw, host, err)
			}
			if a = a.WithZone("").Unmap(); !a.IsGlobalUnicast() || a.IsPrivate() {
				t.Fatalf("allowed %q, whose address %v is not public", raw, a)
			}
			return
		}
		if !hostName.MatchString(host) {
			t.Fatalf("allowed %q, whose host %q is not an ASCII host name", raw, host)
		}
	})
}
