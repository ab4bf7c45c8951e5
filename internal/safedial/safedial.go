// Package safedial keeps callbacks from reaching the operator's own network.
// A callBackUrl is chosen by the client, so without a check tunehook would
// POST to whatever it names: loopback services, private networks, cloud
// metadata endpoints. A Policy refuses such targets twice: at submit, for
// URLs that spell an address (CheckURL), and at dial time, for every
// address a name resolves to (Transport), connecting only to an address it
// has checked, so that a name that changes its answer between the two
// (DNS rebinding) gains nothing.
package safedial

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Policy says which callback targets are allowed. The zero Policy refuses
// every address that is not public and allows plain http.
type Policy struct {
	// AllowPrivate allows every address (development).
	AllowPrivate bool
	// Allow lists ranges allowed even though they are not public, such as
	// an internal receiver's 10.1.2.0/24.
	Allow []netip.Prefix
	// RequireHTTPS refuses plain http URLs, at submit and when sending.
	RequireHTTPS bool
}

// ErrHTTPSRequired is returned for a plain http URL when the Policy
// requires https.
var ErrHTTPSRequired = errors.New("plain http is refused, this server requires https")

// allowHint tells an operator who sees a refusal how to lift it.
const allowHint = "set TUNEHOOK_ALLOW_PRIVATE_CALLBACKS=true or TUNEHOOK_CALLBACK_ALLOW_CIDRS to allow it"

// RefusedError is a target address the Policy forbids.
type RefusedError struct {
	// Name is the host name that resolved to Addr; empty when the URL
	// spelled the address itself.
	Name string
	// Addr is the forbidden address.
	Addr netip.Addr
	// Kind says what Addr is, such as "a loopback address" or "an
	// IPv4-mapped form of 10.0.0.1, a private address".
	Kind string
}

func (e *RefusedError) Error() string {
	if e.Name != "" {
		return fmt.Sprintf("refused: %s resolves to %s, %s (%s)", e.Name, e.Addr, e.Kind, allowHint)
	}
	return fmt.Sprintf("refused: %s is %s (%s)", e.Addr, e.Kind, allowHint)
}

// CheckURL checks a callback URL before it is accepted: an http or https
// URL (https only under RequireHTTPS) with a valid host, and, when the host
// is an address in any spelling, an address the Policy allows, or else a
// *RefusedError. A host name is checked when it is dialled, since what it
// resolves to may change until then. The text of every other error
// completes the sentence "callBackUrl is not accepted: ...".
func (p Policy) CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("not a valid URL")
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("scheme %q is not http or https", u.Scheme)
	case u.Scheme == "http" && p.RequireHTTPS:
		return ErrHTTPSRequired
	case u.Hostname() == "":
		return errors.New("no host")
	}
	addr, isAddr, err := parseHost(u.Hostname())
	if err != nil || !isAddr {
		return err
	}
	if kind := p.refusal(addr); kind != "" {
		return &RefusedError{Addr: addr, Kind: kind}
	}
	return nil
}

// refusal returns what addr is when the Policy forbids it, or "" when it
// is allowed.
func (p Policy) refusal(addr netip.Addr) string {
	if p.AllowPrivate {
		return ""
	}
	a := addr.WithZone("")
	if p.allowed(a) {
		return ""
	}
	r := firstRange(a)
	if r.embeds == nil {
		return r.kind
	}
	// The address carries an IPv4 address, and that is where the packets
	// end up.
	v4 := r.embeds(a)
	if p.allowed(v4) {
		return ""
	}
	if kind := firstRange(v4).kind; kind != "" {
		return fmt.Sprintf("%s of %s, %s", r.kind, v4, kind)
	}
	return ""
}

func (p Policy) allowed(a netip.Addr) bool {
	for _, allow := range p.Allow {
		if allow.Contains(a) {
			return true
		}
	}
	return false
}

// An addrRange is a range callbacks may not reach unless allowed.
type addrRange struct {
	prefix netip.Prefix
	// kind says what an address of the range is.
	kind string
	// embeds, when set, returns the IPv4 address an address of the range
	// stands for; the range is then forbidden only when that is.
	embeds func(netip.Addr) netip.Addr
}

// forbidden is every range callbacks may not reach unless allowed, the
// most specific first: the first range that contains an address says what
// it is. IPv6 outside global unicast (2000::/3) is refused as reserved.
var forbidden = []addrRange{
	{prefix: pfx("0.0.0.0/32"), kind: "an unspecified address"},
	{prefix: pfx("0.0.0.0/8"), kind: `a "this network" address`},
	{prefix: pfx("10.0.0.0/8"), kind: "a private address"},
	{prefix: pfx("100.100.100.200/32"), kind: "a cloud metadata address"}, // Alibaba Cloud
	{prefix: pfx("100.64.0.0/10"), kind: "a shared (CGNAT) address"},
	{prefix: pfx("127.0.0.0/8"), kind: "a loopback address"},
	{prefix: pfx("169.254.169.254/32"), kind: "a cloud metadata address"},
	{prefix: pfx("169.254.0.0/16"), kind: "a link-local address"},
	{prefix: pfx("172.16.0.0/12"), kind: "a private address"},
	{prefix: pfx("192.0.0.0/24"), kind: "an IETF protocol assignment address"},
	{prefix: pfx("192.0.2.0/24"), kind: "a documentation address"},
	{prefix: pfx("192.168.0.0/16"), kind: "a private address"},
	{prefix: pfx("198.18.0.0/15"), kind: "a benchmarking address"},
	{prefix: pfx("198.51.100.0/24"), kind: "a documentation address"},
	{prefix: pfx("203.0.113.0/24"), kind: "a documentation address"},
	{prefix: pfx("224.0.0.0/4"), kind: "a multicast address"},
	{prefix: pfx("255.255.255.255/32"), kind: "a broadcast address"},
	{prefix: pfx("240.0.0.0/4"), kind: "a reserved address"},

	{prefix: pfx("::/128"), kind: "an unspecified address"},
	{prefix: pfx("::1/128"), kind: "a loopback address"},
	{prefix: pfx("::ffff:0:0/96"), kind: "an IPv4-mapped form", embeds: last32},
	{prefix: pfx("::ffff:0:0:0/96"), kind: "an IPv4-translated form", embeds: last32},
	{prefix: pfx("::/96"), kind: "an IPv4-compatible form", embeds: last32},
	{prefix: pfx("64:ff9b::/96"), kind: "a NAT64 form", embeds: last32},
	// A local-use NAT64 prefix may be any length from /48 to /96, which
	// moves the embedded address; it translates into the operator's own
	// network, so it is refused whole.
	{prefix: pfx("64:ff9b:1::/48"), kind: "a local-use NAT64 address"},
	{prefix: pfx("100::/64"), kind: "a discard-only address"},
	// Teredo hides the client address (inverted), and its relays are
	// anyone's: refused whole.
	{prefix: pfx("2001::/32"), kind: "a Teredo address"},
	{prefix: pfx("2001:2::/48"), kind: "a benchmarking address"},
	{prefix: pfx("2001:db8::/32"), kind: "a documentation address"},
	{prefix: pfx("2002::/16"), kind: "a 6to4 form", embeds: sixToFour},
	{prefix: pfx("3fff::/20"), kind: "a documentation address"},
	{prefix: pfx("fd00:ec2::254/128"), kind: "a cloud metadata address"}, // AWS
	{prefix: pfx("fc00::/7"), kind: "a unique-local address"},
	{prefix: pfx("fe80::/10"), kind: "a link-local address"},
	{prefix: pfx("fec0::/10"), kind: "a site-local address"},
	{prefix: pfx("ff00::/8"), kind: "a multicast address"},
	{prefix: pfx("::/3"), kind: "a reserved address"},
	{prefix: pfx("4000::/2"), kind: "a reserved address"},
	{prefix: pfx("8000::/1"), kind: "a reserved address"},
}

// firstRange returns the first forbidden range that contains a, or the
// zero addrRange.
func firstRange(a netip.Addr) addrRange {
	for _, r := range forbidden {
		if r.prefix.Contains(a) {
			return r
		}
	}
	return addrRange{}
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// last32 returns the IPv4 address in the last 32 bits of a.
func last32(a netip.Addr) netip.Addr {
	b := a.As16()
	return netip.AddrFrom4([4]byte(b[12:16]))
}

// sixToFour returns the IPv4 address of a 6to4 address, 2002:AABB:CCDD::.
func sixToFour(a netip.Addr) netip.Addr {
	b := a.As16()
	return netip.AddrFrom4([4]byte(b[2:6]))
}

// parseHost returns the address host spells, with isAddr false when host
// is a name. IPv4 is read the way inet_aton reads it, as resolvers and
// HTTP clients do: one to four parts, each decimal, octal (a leading 0) or
// hex (0x), the last filling the remaining bytes, so "127.1", "0x7f000001"
// and "017700000001" are all 127.0.0.1. As in the WHATWG URL standard, a
// host whose last label is such a number is an address or invalid, never a
// name. A host with an empty label or a character outside letters,
// digits, "-", "_" and "." is invalid: resolvers disagree on it.
func parseHost(host string) (addr netip.Addr, isAddr bool, err error) {
	if strings.Contains(host, ":") {
		a, err := netip.ParseAddr(host)
		if err != nil {
			return netip.Addr{}, false, fmt.Errorf("host %q is not a valid IPv6 address", host)
		}
		return a, true, nil
	}
	for _, r := range host {
		switch {
		case r >= utf8.RuneSelf:
			// The HTTP client maps such a host to ASCII (IDNA) before
			// dialling, and full-width or circled digits map to an address:
			// "１２７.０.０.１" is 127.0.0.1. Only the ASCII form can be
			// classified.
			return netip.Addr{}, false, fmt.Errorf("host %q is not ASCII: write an internationalized name in its xn-- form", host)
		case !isNameByte(byte(r)):
			return netip.Addr{}, false, fmt.Errorf("host %q is not a valid host name", host)
		}
	}
	parts := strings.Split(strings.TrimSuffix(host, "."), ".")
	if slices.Contains(parts, "") {
		return netip.Addr{}, false, fmt.Errorf("host %q has an empty label", host)
	}
	if !isNumber(parts[len(parts)-1]) {
		return netip.Addr{}, false, nil
	}
	invalid := fmt.Errorf("host %q ends in a number but is not a valid IPv4 address", host)
	if len(parts) > 4 {
		return netip.Addr{}, false, invalid
	}
	var v uint64
	for i, part := range parts {
		n, ok := parseNumber(part)
		// Every part but the last is one byte; the last fills the rest.
		limit := uint64(255)
		if i == len(parts)-1 {
			limit = 1<<(8*(5-len(parts))) - 1
		}
		if !ok || n > limit {
			return netip.Addr{}, false, invalid
		}
		if i < len(parts)-1 {
			v |= n << (8 * (3 - i))
		} else {
			v |= n
		}
	}
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true, nil
}

// isNumber reports whether s has the form of a part of an IPv4 address,
// whatever its value: decimal digits, or hex digits after 0x.
func isNumber(s string) bool {
	if rest, ok := strings.CutPrefix(strings.ToLower(s), "0x"); ok {
		return strings.Trim(rest, "0123456789abcdef") == ""
	}
	return s != "" && strings.Trim(s, "0123456789") == ""
}

// parseNumber reads one part of an IPv4 address: decimal, octal after a
// leading 0, or hex after 0x (where no digits at all are 0, as in WHATWG).
func parseNumber(s string) (uint64, bool) {
	base := 10
	switch {
	case len(s) >= 2 && (s[:2] == "0x" || s[:2] == "0X"):
		base, s = 16, s[2:]
		if s == "" {
			return 0, true
		}
	case len(s) >= 2 && s[0] == '0':
		base, s = 8, s[1:]
	}
	n, err := strconv.ParseUint(s, base, 32)
	return n, err == nil
}

// isNameByte reports whether b may appear in a host name: letters,
// digits, hyphens, underscores (found in real names) and dots.
func isNameByte(b byte) bool {
	return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || b == '-' || b == '_' || b == '.'
}
