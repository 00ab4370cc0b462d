package egress

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// ErrInvalidHost is wrapped by every error about a malformed destination.
var ErrInvalidHost = errors.New("invalid host")

// ErrInvalidPattern is wrapped by every error about a malformed domain pattern.
var ErrInvalidPattern = errors.New("invalid domain pattern")

// idnaProfile maps and validates names the way a browser's address bar
// would, without the check for STD3 rules that would refuse underscores in
// labels (some API hosts use them).
var idnaProfile = idna.New(
	idna.MapForLookup(),
	idna.Transitional(false),
	idna.StrictDomainName(false),
	idna.BidiRule(),
)

// maxHostLen bounds a name before it reaches IDNA processing; DNS names are
// at most 253 octets, and a Unicode label may be longer before encoding.
const maxHostLen = 1024

// NormalizeHost returns the canonical form of a destination host: an IP
// literal in its netip form (brackets removed; zones refused), or a DNS name
// mapped through IDNA to ASCII, lower case, without a trailing dot.
func NormalizeHost(h string) (string, error) {
	if h == "" {
		return "", fmt.Errorf("%w: empty", ErrInvalidHost)
	}
	if len(h) > maxHostLen {
		return "", fmt.Errorf("%w: %d bytes long", ErrInvalidHost, len(h))
	}
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		a, err := netip.ParseAddr(h[1 : len(h)-1])
		if err != nil || !a.Is6() || a.Zone() != "" {
			return "", fmt.Errorf("%w: %q is not an IPv6 literal", ErrInvalidHost, h)
		}
		return a.String(), nil
	}
	if a, err := netip.ParseAddr(h); err == nil {
		if a.Zone() != "" {
			return "", fmt.Errorf("%w: %q has a zone", ErrInvalidHost, h)
		}
		return a.String(), nil
	}
	h = strings.TrimSuffix(h, ".")
	if h == "" || strings.HasSuffix(h, ".") {
		return "", fmt.Errorf("%w: empty label", ErrInvalidHost)
	}
	if isPlainLDH(h) {
		// Lower-case ASCII without A-labels: IDNA would return it unchanged.
		if err := checkDNSName(h); err != nil {
			return "", fmt.Errorf("%w: %q: %v", ErrInvalidHost, h, err)
		}
		return h, nil
	}
	if !utf8.ValidString(h) {
		return "", fmt.Errorf("%w: %q is not UTF-8", ErrInvalidHost, h)
	}
	a, err := idnaProfile.ToASCII(h)
	if err != nil {
		return "", fmt.Errorf("%w: %q: %v", ErrInvalidHost, h, err)
	}
	a = strings.ToLower(a)
	if a != h && strings.Contains(a, "xn--") {
		// The A-label form must be accepted as it is, or the name would
		// match differently the next time it is seen.
		if again, err := idnaProfile.ToASCII(a); err != nil || strings.ToLower(again) != a {
			return "", fmt.Errorf("%w: %q does not have a stable IDNA form", ErrInvalidHost, h)
		}
	}
	if err := checkDNSName(a); err != nil {
		return "", fmt.Errorf("%w: %q: %v", ErrInvalidHost, h, err)
	}
	return a, nil
}

// isPlainLDH reports whether h has only lower-case letters, digits, '-',
// '_' and '.', and no label starting "xn--".
func isPlainLDH(h string) bool {
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return !strings.HasPrefix(h, "xn--") && !strings.Contains(h, ".xn--")
}

// checkDNSName checks an ASCII name: labels of 1 to 63 letters, digits,
// hyphens or underscores, at most 253 octets in all. A name made only of
// digits and dots is refused: resolvers would treat it as an IPv4 address in
// a form netip does not accept (such as 0x7f.1 or 2130706433).
func checkDNSName(a string) error {
	if len(a) > 253 {
		return fmt.Errorf("name longer than 253 octets")
	}
	allNumeric := true
	for _, label := range strings.Split(a, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("label %q must have 1 to 63 octets", label)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			switch {
			case c >= 'a' && c <= 'z', c == '-', c == '_':
				allNumeric = false
			case c >= '0' && c <= '9':
			default:
				return fmt.Errorf("label %q has the character %q", label, c)
			}
		}
	}
	last := a[strings.LastIndexByte(a, '.')+1:]
	if allNumeric || isNumericLike(last) {
		return fmt.Errorf("a numeric name is not a DNS name; write an IP literal")
	}
	return nil
}

// isNumericLike reports whether a top-level label looks like a number
// (decimal or 0x hexadecimal), which no real top-level domain is.
func isNumericLike(l string) bool {
	if strings.HasPrefix(l, "0x") {
		l = l[2:]
		for i := 0; i < len(l); i++ {
			if !strings.ContainsRune("0123456789abcdef", rune(l[i])) {
				return false
			}
		}
		return true
	}
	_, err := strconv.ParseUint(l, 10, 64)
	return err == nil
}

// SplitHostPort parses the authority of a request ("host", "host:port",
// "[v6]:port") into a normalized host and a port; defaultPort is used when
// the port is absent. User information, empty hosts and ports outside
// 1..65535 are refused.
func SplitHostPort(authority string, defaultPort int) (string, int, error) {
	if strings.ContainsAny(authority, "@/?#\\ \t\r\n") {
		return "", 0, fmt.Errorf("%w: %q is not an authority", ErrInvalidHost, authority)
	}
	host, portStr := authority, ""
	if strings.HasPrefix(authority, "[") {
		end := strings.IndexByte(authority, ']')
		if end < 0 {
			return "", 0, fmt.Errorf("%w: %q lacks ']'", ErrInvalidHost, authority)
		}
		host, rest := authority[:end+1], authority[end+1:]
		if rest != "" {
			if rest[0] != ':' {
				return "", 0, fmt.Errorf("%w: %q has text after ']'", ErrInvalidHost, authority)
			}
			portStr = rest[1:]
			if portStr == "" {
				return "", 0, fmt.Errorf("%w: %q has an empty port", ErrInvalidHost, authority)
			}
		}
		return finishHostPort(host, portStr, defaultPort)
	}
	if i := strings.LastIndexByte(authority, ':'); i >= 0 {
		if strings.IndexByte(authority[:i], ':') >= 0 {
			return "", 0, fmt.Errorf("%w: %q: an IPv6 literal needs brackets", ErrInvalidHost, authority)
		}
		host, portStr = authority[:i], authority[i+1:]
		if portStr == "" {
			return "", 0, fmt.Errorf("%w: %q has an empty port", ErrInvalidHost, authority)
		}
	}
	return finishHostPort(host, portStr, defaultPort)
}

func finishHostPort(host, portStr string, defaultPort int) (string, int, error) {
	port := defaultPort
	if portStr != "" {
		p, err := strconv.ParseUint(portStr, 10, 16)
		if err != nil || p == 0 || portStr[0] == '+' {
			return "", 0, fmt.Errorf("%w: port %q must be 1 to 65535", ErrInvalidHost, portStr)
		}
		port = int(p)
	}
	if port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("%w: port %d must be 1 to 65535", ErrInvalidHost, port)
	}
	h, err := NormalizeHost(host)
	if err != nil {
		return "", 0, err
	}
	return h, port, nil
}

// Pattern is a domain pattern of an ACL: an exact name, or "*." followed by a
// name, which matches every name below it (at any depth) but not the name
// itself.
type Pattern struct {
	Name     string // normalized, without the "*."
	Wildcard bool
}

// ParsePattern parses a domain pattern. The only wildcard is a leading "*.";
// IP literals are not patterns (allow them with an address range).
func ParsePattern(s string) (Pattern, error) {
	p := Pattern{}
	rest := s
	if strings.HasPrefix(s, "*.") {
		p.Wildcard = true
		rest = s[2:]
	}
	if strings.Contains(rest, "*") {
		return Pattern{}, fmt.Errorf("%w: %q: '*' is allowed only as a leading \"*.\"", ErrInvalidPattern, s)
	}
	name, err := NormalizeHost(rest)
	if err != nil {
		return Pattern{}, fmt.Errorf("%w: %q: %v", ErrInvalidPattern, s, err)
	}
	if _, err := netip.ParseAddr(name); err == nil {
		return Pattern{}, fmt.Errorf("%w: %q is an IP literal; allow its address range instead", ErrInvalidPattern, s)
	}
	if p.Wildcard && !strings.Contains(name, ".") {
		return Pattern{}, fmt.Errorf("%w: %q would match a whole top-level domain", ErrInvalidPattern, s)
	}
	p.Name = name
	return p, nil
}

// String returns the pattern as written in a config.
func (p Pattern) String() string {
	if p.Wildcard {
		return "*." + p.Name
	}
	return p.Name
}

// Match reports whether the normalized host matches the pattern.
func (p Pattern) Match(host string) bool {
	if !p.Wildcard {
		return host == p.Name
	}
	return len(host) > len(p.Name)+1 && strings.HasSuffix(host, p.Name) && host[len(host)-len(p.Name)-1] == '.'
}

// Covers reports whether every name q matches is also matched by p.
func (p Pattern) Covers(q Pattern) bool {
	if !p.Wildcard {
		return !q.Wildcard && q.Name == p.Name
	}
	// *.a covers b.a, *.b.a, but not a nor *.a's parent.
	return p.Match(q.Name) || (q.Wildcard && q.Name == p.Name)
}
