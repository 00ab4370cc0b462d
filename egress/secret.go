package egress

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ccos-project/ccos/config"
	"github.com/ccos-project/ccos/domain"
)

// Secret is a credential the proxy adds to the requests a step is allowed
// to send to Domain, as the header Header: Prefix+Value. The agent's
// plans never hold it: a request that carries it anywhere (any header,
// the URL, the body, plainly or encoded), to any domain, is refused
// (RuleSecretLeak), and a response that carries it back is refused too
// (RuleSecretEcho), so it cannot reach a plan through an origin that
// echoes what it received.
type Secret struct {
	// Name names the secret in decisions, logs and the causal chain; the
	// value never appears in them.
	Name   string
	Domain string
	Header string
	Prefix string
	Value  string
}

// MinSecretBytes is the shortest credential the proxy accepts: a shorter
// one would be found in ordinary text.
const MinSecretBytes = 8

// Rules of the secrets.
const (
	RuleSecretLeak Rule = "secret_leak"
	RuleSecretEcho Rule = "secret_echo"
)

type compiledSecret struct {
	Secret
	pattern domain.Pattern
}

// compileSecrets checks the policy's secrets: each bound to a domain the
// agent may reach, in a header it may set.
func (c *compiled) compileSecrets() error {
	for _, s := range c.Secrets {
		if s.Name == "" {
			return errors.New("a secret has no name")
		}
		if len(s.Value) < MinSecretBytes {
			return fmt.Errorf("secret %s is shorter than %d bytes; the proxy could not tell it from ordinary text", s.Name, MinSecretBytes)
		}
		if strings.ContainsAny(s.Value+s.Prefix, "\r\n\x00") {
			return fmt.Errorf("secret %s holds a line break or NUL; a header value cannot", s.Name)
		}
		if s.Header == "" || !validHeaderName(s.Header) {
			return fmt.Errorf("secret %s: %q is not a header name", s.Name, s.Header)
		}
		p, err := domain.ParsePattern(s.Domain)
		if err != nil {
			return fmt.Errorf("secret %s: %w", s.Name, err)
		}
		if !c.domains.Covers(p) {
			return fmt.Errorf("%w: secret %s is bound to %s, which agent %s's domains do not cover", ErrWiden, s.Name, p, c.Agent)
		}
		c.secrets = append(c.secrets, compiledSecret{Secret: s, pattern: p})
	}
	return nil
}

func validHeaderName(h string) bool {
	for _, r := range h {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", r)) {
			return false
		}
	}
	return true
}

// secretIn returns the name of the first secret text holds, plainly or in
// an encoded form (percent, base64, hex), or "".
func (c *compiled) secretIn(text string) string {
	if len(c.secrets) == 0 || text == "" {
		return ""
	}
	views := append([]string{text}, encodedViews(text)...)
	for _, s := range c.secrets {
		for _, v := range views {
			if strings.Contains(v, s.Value) {
				return s.Name
			}
		}
	}
	return ""
}

// requestSecret returns the name of a secret the request carries: in the
// path, the query, a header's name or value (every header, credentials
// included) or the body.
func (c *compiled) requestSecret(path, rawQuery string, h http.Header, body []byte) string {
	if len(c.secrets) == 0 {
		return ""
	}
	parts := []string{path, rawQuery, queryText(rawQuery), string(body)}
	if u, err := url.PathUnescape(path); err == nil {
		parts = append(parts, u)
	}
	for k, vs := range h {
		parts = append(parts, k)
		parts = append(parts, vs...)
	}
	for _, p := range parts {
		if name := c.secretIn(p); name != "" {
			return name
		}
	}
	return ""
}

// inject adds the secrets bound to host to the outgoing header and
// returns their names.
func (c *compiled) inject(host string, h http.Header) []string {
	var names []string
	for _, s := range c.secrets {
		if s.pattern.Match(host) {
			h.Set(s.Header, s.Prefix+s.Value)
			names = append(names, s.Name)
		}
	}
	return names
}

// checkEcho reads a response to a request that carried secrets (within
// the response cap) and refuses it when it carries one of them back.
func (p *Proxy) checkEcho(d *Decision, st *agentState, resp *http.Response) error {
	limit := st.pol.Limits.MaxResponseBytes
	b, err := readResponse(d, resp, limit)
	if err != nil {
		return err
	}
	if enc := resp.Header.Get("Content-Encoding"); enc != "" && !strings.EqualFold(enc, "identity") {
		d.deny(RuleSecretEcho, "the response to a request carrying secret %s is %s-encoded and cannot be checked for it", strings.Join(d.Secrets, ","), enc)
		return errors.New("encoded response")
	}
	name := st.pol.secretIn(string(b))
	for k, vs := range resp.Header {
		for _, v := range append([]string{k}, vs...) {
			if name == "" {
				name = st.pol.secretIn(v)
			}
		}
	}
	if name != "" {
		d.deny(RuleSecretEcho, "the response from %s carries secret %s back; it never reaches the agent", d.Host, name)
		return errors.New("secret echoed")
	}
	p.metrics.addBytes(d.Agent, "received", int64(len(b)))
	resp.Body = io.NopCloser(strings.NewReader(string(b)))
	resp.ContentLength = int64(len(b))
	resp.Header.Set("Content-Length", strconv.Itoa(len(b)))
	resp.TransferEncoding = nil
	return nil
}

// MaxSecretFileBytes bounds a secret's file.
const MaxSecretFileBytes = 64 << 10

// SecretsFromConfig reads the credentials of the config's :secrets on the
// host: from the environment variable (lookupEnv; os.LookupEnv when nil)
// or the file (relative to dir, the config file's directory; a regular
// file, one trailing line break removed). A credential that is unset,
// empty or unreadable is an error naming the secret and where it was
// looked for, never its value.
func SecretsFromConfig(cfg *config.Config, dir string, lookupEnv func(string) (string, bool)) ([]Secret, error) {
	if lookupEnv == nil {
		lookupEnv = os.LookupEnv
	}
	var out []Secret
	for _, cs := range cfg.Secrets {
		s := Secret{Name: cs.Name, Domain: cs.Domain, Header: cs.Header, Prefix: cs.Prefix}
		switch {
		case cs.Env != "":
			v, ok := lookupEnv(cs.Env)
			if !ok || v == "" {
				return nil, fmt.Errorf("secret %s: the environment variable %s is not set (the host reads the credential from it when it loads the agent)", cs.Name, cs.Env)
			}
			s.Value = v
		case cs.File != "":
			p := cs.File
			if !filepath.IsAbs(p) {
				p = filepath.Join(dir, p)
			}
			v, err := readSecretFile(p)
			if err != nil {
				return nil, fmt.Errorf("secret %s: %w", cs.Name, err)
			}
			s.Value = v
		default:
			return nil, fmt.Errorf("secret %s has no :env or :file to read it from", cs.Name)
		}
		out = append(out, s)
	}
	return out, nil
}

func readSecretFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return "", fmt.Errorf("cannot read %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxSecretFileBytes+1))
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", path, err)
	}
	if len(b) > MaxSecretFileBytes {
		return "", fmt.Errorf("%s is larger than %d bytes", path, MaxSecretFileBytes)
	}
	v := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if v == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return v, nil
}
