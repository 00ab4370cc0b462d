// Package domain is ccos's one notion of a domain name and of an allowlist
// of them: the IDNA profile that maps a name to its ASCII form, the
// patterns of allowlists (an exact name, or "*." and a name for every name
// strictly below it), and the coverage rules between them. Config
// validation, governance admission, capability contracts and the egress
// proxy all decide with it, so a name one of them allows is the name the
// others allow.
package domain

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

// Error is every error of the package: Kind is ErrInvalidHost or
// ErrInvalidPattern (errors.Is finds it), Reason says what is wrong with
// Name.
type Error struct {
	Kind   error
	Name   string
	Reason string
}

func (e *Error) Error() string {
	if e.Name == "" {
		return fmt.Sprintf("%v: %s", e.Kind, e.Reason)
	}
	return fmt.Sprintf("%v: %q: %s", e.Kind, e.Name, e.Reason)
}

func (e *Error) Unwrap() error { return e.Kind }

func hostErr(h, format string, args ...any) error {
	return &Error{Kind: ErrInvalidHost, Name: h, Reason: fmt.Sprintf(format, args...)}
}

func patternErr(s, format string, args ...any) error {
	return &Error{Kind: ErrInvalidPattern, Name: s, Reason: fmt.Sprintf(format, args...)}
}

// idnaProfile maps and validates names the way a browser's address bar
// would (UTS #46 nontransitional mapping, bidi rule), without the check for
// STD3 rules that would refuse underscores in labels (some API hosts use
// them); checkDNSName then holds the ASCII form to DNS rules. It is the one
// IDNA profile of ccos.
var idnaProfile = idna.New(
	idna.MapForLookup(),
	idna.Transitional(false),
	idna.StrictDomainName(false),
	idna.BidiRule(),
)

// maxHostLen bounds a name before it reaches IDNA processing; DNS names are
// at most 253 octets, and a Unicode label may be longer before encoding.
const maxHostLen = 1024

// Normalize returns the canonical form of a destination host: an IP
// literal in its netip form (brackets removed; zones refused), or a DNS name
// mapped through IDNA to ASCII, lower case, without a trailing dot.
func Normalize(h string) (string, error) {
	if h == "" {
		return "", hostErr("", "empty")
	}
	if len(h) > maxHostLen {
		return "", hostErr("", "%d bytes long", len(h))
	}
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		a, err := netip.ParseAddr(h[1 : len(h)-1])
		if err != nil || !a.Is6() || a.Zone() != "" {
			return "", hostErr(h, "not an IPv6 literal")
		}
		return a.String(), nil
	}
	if a, err := netip.ParseAddr(h); err == nil {
		if a.Zone() != "" {
			return "", hostErr(h, "has a zone")
		}
		return a.String(), nil
	}
	h = strings.TrimSuffix(h, ".")
	if h == "" || strings.HasSuffix(h, ".") {
		return "", hostErr(h, "empty label")
	}
	if isPlainLDH(h) {
		// Lower-case ASCII without A-labels: IDNA would return it unchanged.
		if err := checkDNSName(h); err != nil {
			return "", hostErr(h, "%v", err)
		}
		return h, nil
	}
	if !utf8.ValidString(h) {
		return "", hostErr(h, "not UTF-8")
	}
	a, err := idnaProfile.ToASCII(h)
	if err != nil {
		return "", hostErr(h, "%v", err)
	}
	a = strings.ToLower(a)
	if a != h && strings.Contains(a, "xn--") {
		// The A-label form must be accepted as it is, or the name would
		// match differently the next time it is seen.
		if again, err := idnaProfile.ToASCII(a); err != nil || strings.ToLower(again) != a {
			return "", hostErr(h, "does not have a stable IDNA form")
		}
	}
	if err := checkDNSName(a); err != nil {
		return "", hostErr(h, "%v", err)
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
// hyphens or underscores, neither starting nor ending with a hyphen, at most
// 253 octets in all. A name made only of
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
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("label %q starts or ends with '-'", label)
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
		return Pattern{}, patternErr(s, "'*' is allowed only as a leading \"*.\"")
	}
	name, err := Normalize(rest)
	if err != nil {
		reason := err.Error()
		var he *Error
		if errors.As(err, &he) {
			reason = he.Reason
		}
		return Pattern{}, patternErr(s, "%s", reason)
	}
	if _, err := netip.ParseAddr(name); err == nil {
		return Pattern{}, patternErr(s, "an IP literal; allow its address range instead")
	}
	if p.Wildcard && !strings.Contains(name, ".") {
		return Pattern{}, patternErr(s, "would match a whole top-level domain")
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

// Set is an allowlist of patterns with coverage checks in time linear in
// the length of the name checked, whatever the size of the list.
type Set struct {
	exact map[string]bool // names allowed as themselves
	wild  map[string]bool // names whose strict subdomains are allowed
}

// NewSet returns the set of patterns.
func NewSet(patterns []Pattern) Set {
	s := Set{exact: map[string]bool{}, wild: map[string]bool{}}
	for _, p := range patterns {
		if p.Wildcard {
			s.wild[p.Name] = true
		} else {
			s.exact[p.Name] = true
		}
	}
	return s
}

// ParseSet parses each entry of an allowlist; an entry that does not parse
// is returned in invalid and covers nothing.
func ParseSet(entries []string) (s Set, invalid []error) {
	ps := make([]Pattern, 0, len(entries))
	for _, e := range entries {
		p, err := ParsePattern(e)
		if err != nil {
			invalid = append(invalid, err)
			continue
		}
		ps = append(ps, p)
	}
	return NewSet(ps), invalid
}

// Match reports whether the normalized host is allowed by a pattern of the
// set (Pattern.Match).
func (s Set) Match(host string) bool { return s.Covers(Pattern{Name: host}) }

// Covers reports whether a pattern of the set covers q (Pattern.Covers):
// every name q matches is allowed.
func (s Set) Covers(q Pattern) bool {
	if q.Wildcard && s.wild[q.Name] || !q.Wildcard && s.exact[q.Name] {
		return true
	}
	// A wildcard covers every name, and every wildcard, strictly below it.
	for i := 0; i < len(q.Name); i++ {
		if q.Name[i] == '.' && s.wild[q.Name[i+1:]] {
			return true
		}
	}
	return false
}

// Covered reports whether the name or pattern d is covered by one of the
// patterns in allow, all compared in their normalized (IDNA ASCII, lower
// case) form. An entry that is not a valid pattern covers nothing, and an
// invalid d is covered by nothing. For many checks against one list, parse
// it once with ParseSet.
func Covered(d string, allow []string) bool {
	q, err := ParsePattern(d)
	if err != nil {
		return false
	}
	s, _ := ParseSet(allow)
	return s.Covers(q)
}
