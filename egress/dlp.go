package egress

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/zricethezav/gitleaks/v8/detect"
)

// Finding is one DLP match in a request.
type Finding struct {
	Rule  string // gitleaks rule id, "pii-email", "pii-card", "pii-iban", "pii-phone" or "pattern-<name>"
	Start int    // byte offsets in the scanned text
	End   int
}

// scanner finds secrets, PII and configured patterns in text.
type scanner struct {
	action   DLPAction
	secrets  bool
	pii      bool
	patterns []namedRE
}

type namedRE struct {
	rule string
	re   *regexp.Regexp
}

var (
	gitleaksOnce sync.Once
	gitleaksDet  *detect.Detector
	gitleaksErr  error
)

// gitleaksDetector loads the gitleaks default rule set once; Detect on it is
// safe for concurrent use (it keeps no state but an atomic byte counter).
func gitleaksDetector() (*detect.Detector, error) {
	gitleaksOnce.Do(func() {
		gitleaksDet, gitleaksErr = detect.NewDetectorDefaultConfig()
		if gitleaksErr == nil {
			// gitleaks' own decoding pass runs a regular expression over
			// all the text; encodedViews finds the same encodings with a
			// byte scan instead.
			gitleaksDet.MaxDecodeDepth = 0
		}
	})
	return gitleaksDet, gitleaksErr
}

func newScanner(c DLPConfig) (*scanner, error) {
	switch c.Action {
	case DLPOff:
		return nil, nil
	case DLPBlock, DLPRedact, DLPLog:
	default:
		return nil, fmt.Errorf("DLP action %q: want block, redact or report", c.Action)
	}
	s := &scanner{action: c.Action, secrets: c.Secrets, pii: c.PII}
	if c.Secrets {
		if _, err := gitleaksDetector(); err != nil {
			return nil, fmt.Errorf("loading the gitleaks rules: %w", err)
		}
	}
	names := make([]string, 0, len(c.Patterns))
	for n := range c.Patterns {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		re, err := regexp.Compile(c.Patterns[n])
		if err != nil {
			return nil, fmt.Errorf("DLP pattern %s: %w", n, err)
		}
		s.patterns = append(s.patterns, namedRE{"pattern-" + n, re})
	}
	return s, nil
}

// scan returns the findings in text, sorted by position.
func (s *scanner) scan(text string) []Finding {
	if s == nil || text == "" {
		return nil
	}
	var out []Finding
	if s.secrets {
		d, _ := gitleaksDetector()
		for _, f := range d.DetectString(text) {
			out = append(out, locate(text, f.Secret, f.RuleID)...)
		}
		for _, v := range encodedViews(text) {
			for _, f := range d.DetectString(v) {
				out = append(out, Finding{Rule: f.RuleID, Start: -1, End: -1})
			}
		}
	}
	if s.pii {
		out = append(out, scanPII(text)...)
	}
	for _, p := range s.patterns {
		for _, m := range p.re.FindAllStringIndex(text, -1) {
			if m[1] > m[0] {
				out = append(out, Finding{Rule: p.rule, Start: m[0], End: m[1]})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Start != out[j].Start {
			return out[i].Start < out[j].Start
		}
		return out[i].End > out[j].End
	})
	return out
}

// minEncodedRun is the shortest base64 run worth decoding: a 12-byte
// secret prefix and more.
const minEncodedRun = 20

// encodedViews returns the decoded forms of what in text looks encoded: runs
// of base64 (standard or URL alphabet) or hexadecimal that decode to
// printable text, and the percent-decoded text when it has escapes. A secret
// found in a view has no span in the raw text.
func encodedViews(text string) []string {
	var views []string
	if strings.Contains(text, "%") {
		if u, err := url.QueryUnescape(text); err == nil && u != text {
			views = append(views, u)
		}
	}
	var decoded strings.Builder
	for i := 0; i < len(text); {
		if !isBase64Byte(text[i]) {
			i++
			continue
		}
		j := i
		for j < len(text) && isBase64Byte(text[j]) {
			j++
		}
		for j < len(text) && j-i < 4096 && text[j] == '=' {
			j++
		}
		if j-i >= minEncodedRun {
			if b, ok := decodeRun(text[i:j]); ok {
				decoded.Write(b)
				decoded.WriteByte('\n')
			}
		}
		i = j
	}
	if decoded.Len() > 0 {
		views = append(views, decoded.String())
	}
	return views
}

func isBase64Byte(c byte) bool {
	return isDigit(c) || isUpper(c) || (c >= 'a' && c <= 'z') || c == '+' || c == '/' || c == '-' || c == '_'
}

// decodeRun decodes a run as hexadecimal or base64 and keeps it when the
// result is mostly printable text.
func decodeRun(run string) ([]byte, bool) {
	var b []byte
	var err error
	if len(run)%2 == 0 && strings.Trim(run, "0123456789abcdefABCDEF") == "" {
		b, err = hex.DecodeString(run)
	} else {
		trimmed := strings.TrimRight(run, "=")
		enc := base64.RawStdEncoding
		if strings.ContainsAny(trimmed, "-_") {
			enc = base64.RawURLEncoding
		}
		b, err = enc.DecodeString(trimmed)
	}
	if err != nil || len(b) == 0 {
		return nil, false
	}
	printable := 0
	for _, c := range b {
		if c == '\n' || c == '\r' || c == '\t' || (c >= 0x20 && c < 0x7f) {
			printable++
		}
	}
	return b, printable*10 >= len(b)*9
}

// locate finds every occurrence of a secret gitleaks reported (it reports
// lines and columns of the possibly decoded text, not byte offsets). A
// secret found only in decoded text is not in the raw text: the finding is
// kept with an empty span, which blocks and reports but cannot be redacted
// in place, so redact mode blocks it instead.
func locate(text, secret, rule string) []Finding {
	if secret == "" {
		return []Finding{{Rule: rule, Start: -1, End: -1}}
	}
	var out []Finding
	for off := 0; ; {
		i := strings.Index(text[off:], secret)
		if i < 0 {
			break
		}
		out = append(out, Finding{Rule: rule, Start: off + i, End: off + i + len(secret)})
		off += i + len(secret)
	}
	if len(out) == 0 {
		out = append(out, Finding{Rule: rule, Start: -1, End: -1})
	}
	return out
}

// redact replaces every finding by [REDACTED:<rule>]; overlapping findings
// are merged under the first one's rule. It reports false when a finding
// has no span in text (see locate).
func redact(text string, fs []Finding) (string, bool) {
	var b strings.Builder
	last := 0
	for _, f := range fs {
		if f.Start < 0 {
			return "", false
		}
		if f.Start < last {
			continue
		}
		b.WriteString(text[last:f.Start])
		b.WriteString("[REDACTED:" + f.Rule + "]")
		last = f.End
	}
	b.WriteString(text[last:])
	return b.String(), true
}

func ruleNames(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		if !slices.Contains(out, f.Rule) {
			out = append(out, f.Rule)
		}
	}
	return out
}

var (
	emailRE = regexp.MustCompile(`[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*\.[A-Za-z]{2,24}`)
	cardRE  = regexp.MustCompile(`\b\d(?:[ -]?\d){12,18}\b`)
	ibanRE  = regexp.MustCompile(`\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b`)
	phoneRE = regexp.MustCompile(`(?:\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){1,4}|\(\d{3}\)[ .-]?\d{3}[ .-]\d{4}|\b\d{3}[.-]\d{3}[.-]\d{4})\b`)
)

// scanPII finds e-mail addresses, card numbers that pass the Luhn check,
// IBANs that pass the mod-97 check, and phone numbers (international with a
// leading +, or North American with separators) of 8 to 15 digits. The
// regular expressions run only on candidate windows a byte scan finds (an
// '@', a run of digits and separators, two capitals and two digits), which
// keeps a body without PII cheap to scan.
func scanPII(text string) []Finding {
	var out []Finding
	add := func(rule string, re *regexp.Regexp, lo, hi int, ok func(string) bool) {
		for _, m := range re.FindAllStringIndex(text[lo:hi], -1) {
			if ok == nil || ok(text[lo+m[0]:lo+m[1]]) {
				out = append(out, Finding{Rule: rule, Start: lo + m[0], End: lo + m[1]})
			}
		}
	}
	// E-mail: a window around each '@' that holds the longest address the
	// expression accepts on either side.
	for off := 0; off < len(text); {
		i := strings.IndexByte(text[off:], '@')
		if i < 0 {
			break
		}
		at := off + i
		lo, hi := max(0, at-65), min(len(text), at+1+300)
		if lo < off {
			lo = off
		}
		before := len(out)
		add("pii-email", emailRE, lo, hi, nil)
		off = at + 1
		if len(out) > before {
			off = max(off, out[len(out)-1].End)
		}
	}
	// Cards and phone numbers: runs of digits and separators with 8 or
	// more digits.
	for _, r := range digitRuns(text, 8) {
		add("pii-card", cardRE, r[0], r[1], luhnValid)
		add("pii-phone", phoneRE, r[0], r[1], func(s string) bool {
			n := countDigits(s)
			return n >= 8 && n <= 15
		})
	}
	// IBAN: two capitals and two digits start a candidate.
	for i := 0; i+4 <= len(text); i++ {
		if isUpper(text[i]) && isUpper(text[i+1]) && isDigit(text[i+2]) && isDigit(text[i+3]) && (i == 0 || !isWordByte(text[i-1])) {
			hi := min(len(text), i+34+8) // 34 characters and up to 8 spaces
			before := len(out)
			for _, m := range ibanRE.FindAllStringIndex(text[i:hi], 1) {
				if m[0] == 0 && ibanValid(text[i:i+m[1]]) {
					out = append(out, Finding{Rule: "pii-iban", Start: i, End: i + m[1]})
				}
			}
			if len(out) > before {
				i = out[len(out)-1].End - 1
			}
		}
	}
	return out
}

// digitRuns returns the spans of runs of digits, spaces and the separators
// of phone and card numbers that hold at least minDigits digits; a run may
// start one byte early to keep a leading '+' or '('.
func digitRuns(text string, minDigits int) [][2]int {
	var out [][2]int
	start, digits := -1, 0
	flush := func(end int) {
		if start >= 0 && digits >= minDigits {
			out = append(out, [2]int{start, end})
		}
		start, digits = -1, 0
	}
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch {
		case isDigit(c):
			if start < 0 {
				start = i
			}
			digits++
		case c == ' ' || c == '-' || c == '.' || c == '(' || c == ')' || c == '+':
			if start < 0 && (c == '+' || c == '(') {
				start = i
			}
		default:
			flush(i)
		}
	}
	flush(len(text))
	return out
}

func isDigit(c byte) bool    { return c >= '0' && c <= '9' }
func isUpper(c byte) bool    { return c >= 'A' && c <= 'Z' }
func isWordByte(c byte) bool { return isDigit(c) || isUpper(c) || (c >= 'a' && c <= 'z') || c == '_' }

func countDigits(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			n++
		}
	}
	return n
}

// luhnValid reports whether the digits of s (separators ignored) are 13 to
// 19 digits long and pass the Luhn check.
func luhnValid(s string) bool {
	sum, n := 0, 0
	for i := len(s) - 1; i >= 0; i-- {
		c := s[i]
		if c < '0' || c > '9' {
			continue
		}
		d := int(c - '0')
		if n%2 == 1 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		n++
	}
	return n >= 13 && n <= 19 && sum%10 == 0
}

// ibanValid applies ISO 13616's check: move the first four characters to
// the end, turn letters into 10..35, and the number mod 97 must be 1.
func ibanValid(s string) bool {
	s = strings.ReplaceAll(s, " ", "")
	if len(s) < 15 || len(s) > 34 {
		return false
	}
	rem := 0
	for _, c := range s[4:] + s[:4] {
		switch {
		case c >= '0' && c <= '9':
			rem = (rem*10 + int(c-'0')) % 97
		case c >= 'A' && c <= 'Z':
			rem = (rem*100 + int(c-'A'+10)) % 97
		default:
			return false
		}
	}
	return rem == 1
}
