package egress

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// Test secrets, made up; they only have the shapes of real ones.
const (
	awsKey     = "AKIAQYLPMN5HHHFPZAM2"
	githubPAT  = "ghp_8Rq2ZkTn4VbWc7LmXp1Yd9Hs3Jf6Ga0Ke5Ut"
	privateKey = "-----BEGIN RSA PRIVATE KEY-----\n" +
		"MIIEowIBAAKCAQEAvK3l8b4x9QzT0mWcP2sJk7YfR1nHdL6uVgE5tXoZa3qBwN8c\n" +
		"Yp4rM2sD9fG1hJ6kL0zX7cV3bN5mQ8wE2rT4yU1iO9pA6sD3fG7hJ0kL2zX5cV8b\n" +
		"-----END RSA PRIVATE KEY-----\n"
)

func TestScanSecrets(t *testing.T) {
	s, err := newScanner(DLPConfig{Action: DLPBlock, Secrets: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, text, rule string }{
		{"aws", `{"key": "` + awsKey + `"}`, "aws-access-token"},
		{"github", "token=" + githubPAT, "github-pat"},
		{"private key", "here:\n" + privateKey, "private-key"},
	} {
		t.Run(c.name, func(t *testing.T) {
			fs := s.scan(c.text)
			if !containsRule(fs, c.rule) {
				t.Fatalf("findings %+v, want %s", fs, c.rule)
			}
		})
	}
	if fs := s.scan("just a plain sentence about keys and tokens"); len(fs) != 0 {
		t.Errorf("false positive: %+v", fs)
	}
}

func containsRule(fs []Finding, rule string) bool {
	for _, f := range fs {
		if f.Rule == rule {
			return true
		}
	}
	return false
}

func TestScanPII(t *testing.T) {
	for _, c := range []struct {
		text string
		rule string // "" for none
	}{
		{"mail me at jane.doe@example.org today", "pii-email"},
		{"card 4111 1111 1111 1111 exp 12/30", "pii-card"},
		{"card 4111-1111-1111-1112", ""}, // fails Luhn
		{"IBAN GB82 WEST 1234 5698 7654 32", "pii-iban"},
		{"IBAN GB82WEST12345698765433", ""}, // fails mod 97
		{"call +44 20 7946 0958", "pii-phone"},
		{"call (415) 555-2671", "pii-phone"},
		{"timestamp 1700000000 and id 42", ""},
	} {
		fs := scanPII(c.text)
		if c.rule == "" && len(fs) != 0 {
			t.Errorf("%q: unexpected %+v", c.text, fs)
		}
		if c.rule != "" && !containsRule(fs, c.rule) {
			t.Errorf("%q: findings %+v, want %s", c.text, fs, c.rule)
		}
	}
}

func TestRedact(t *testing.T) {
	s, err := newScanner(DLPConfig{Action: DLPRedact, PII: true, Patterns: map[string]string{"ticket": `TICKET-\d+`}})
	if err != nil {
		t.Fatal(err)
	}
	in := "from jane@example.org about TICKET-42, card 4111111111111111."
	out, ok := redact(in, s.scan(in))
	want := "from [REDACTED:pii-email] about [REDACTED:pattern-ticket], card [REDACTED:pii-card]."
	if !ok || out != want {
		t.Errorf("got %q, want %q", out, want)
	}
}

func TestDLPProxy(t *testing.T) {
	o := newOrigin(t)
	url_ := fmt.Sprintf("http://allowed.example:%d/upload", o.port())
	policy := func(a DLPAction) Policy {
		p := basePolicy()
		p.DLP = DLPConfig{Action: a, Secrets: true, PII: true}
		return p
	}
	t.Run("strict blocks secrets", func(t *testing.T) {
		h := newHarness(t, policy(DLPBlock), Options{})
		for _, body := range []string{"aws_access_key_id=" + awsKey, `{"token":"` + githubPAT + `"}`, privateKey} {
			status, _, rule := h.do(t, "POST", url_, body)
			if status != 403 || Rule(rule) != RuleDLP {
				t.Errorf("%.30q: %d %s", body, status, rule)
			}
		}
		// In the query too, even percent-encoded.
		status, _, rule := h.do(t, "GET", url_+"?k="+strings.ReplaceAll(url.QueryEscape(githubPAT), "_", "%5F"), "")
		if status != 403 || Rule(rule) != RuleDLP {
			t.Errorf("query: %d %s", status, rule)
		}
		// In a header or the path too, but not in the credentials meant
		// for the origin.
		req, _ := http.NewRequest("GET", url_, nil)
		req.Header.Set("X-Debug", "creds "+awsKey)
		if resp, err := h.client(nil).Do(req); err != nil || resp.StatusCode != 403 {
			t.Errorf("header: %v %v", resp, err)
		} else {
			resp.Body.Close()
		}
		if status, _, _ := h.do(t, "GET", url_+"/"+githubPAT, ""); status != 403 {
			t.Errorf("path: %d", status)
		}
		if o.count() != 0 {
			t.Fatalf("the origin received %d requests", o.count())
		}
		if d := h.lastDecision(t); len(d.DLP) == 0 || d.DLP[0] != "github-pat" {
			t.Errorf("decision %+v", d)
		}
		// In a header name too, though HTTP folds its case on the way.
		req, _ = http.NewRequest("GET", url_, nil)
		req.Header["X-"+awsKey] = []string{"1"}
		if resp, err := h.client(nil).Do(req); err != nil || resp.StatusCode != 403 {
			t.Errorf("header name: %v %v", resp, err)
		} else {
			resp.Body.Close()
			if d := h.lastDecision(t); d.Rule != RuleDLP || len(d.DLP) == 0 || d.DLP[0] != "aws-access-token" {
				t.Errorf("header name decision %+v", d)
			}
		}
		req, _ = http.NewRequest("GET", url_, nil)
		req.Header.Set("Authorization", "token "+githubPAT)
		if resp, err := h.client(nil).Do(req); err != nil || resp.StatusCode != 200 {
			t.Errorf("Authorization header: %v %v", resp, err)
		} else {
			resp.Body.Close()
		}
	})
	t.Run("moderate redacts PII", func(t *testing.T) {
		h := newHarness(t, policy(DLPRedact), Options{})
		status, _, _ := h.do(t, "POST", url_+"?email=jane%40example.org&q=ok", "name=Jane, mail jane@example.org, card 4111 1111 1111 1111")
		if status != 200 {
			t.Fatalf("status %d", status)
		}
		got := o.last()
		if got.Body != "name=Jane, mail [REDACTED:pii-email], card [REDACTED:pii-card]" {
			t.Errorf("origin body %q", got.Body)
		}
		if got.Query != "email=%5BREDACTED%3Apii-email%5D&q=ok" {
			t.Errorf("origin query %q", got.Query)
		}
		req, _ := http.NewRequest("GET", url_+"/to/jane@example.org", nil)
		req.Header.Set("X-Contact", "jane@example.org")
		resp, err := h.client(nil).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := o.last(); got.Path != "/upload/to/[REDACTED:pii-email]" || got.Header != "[REDACTED:pii-email]" {
			t.Errorf("origin saw path %q, X-Contact %q", got.Path, got.Header)
		}
		if d := h.lastDecision(t); d.Action != ActionReport || d.Rule != RuleDLP {
			t.Errorf("decision %+v", d)
		}
		// A header name cannot be redacted in place: the request is refused.
		before := o.count()
		req, _ = http.NewRequest("GET", url_, nil)
		req.Header["X-"+awsKey] = []string{"1"}
		if resp, err := h.client(nil).Do(req); err != nil || resp.StatusCode != 403 {
			t.Errorf("header name in redact mode: %v %v", resp, err)
		} else {
			resp.Body.Close()
		}
		if o.count() != before {
			t.Errorf("the origin received the request with the secret in a header name")
		}
	})
	t.Run("lenient reports", func(t *testing.T) {
		h := newHarness(t, policy(DLPLog), Options{})
		body := "key " + awsKey
		status, _, _ := h.do(t, "POST", url_, body)
		if status != 200 || o.last().Body != body {
			t.Fatalf("status %d, origin got %q", status, o.last().Body)
		}
		if d := h.lastDecision(t); d.Action != ActionReport || d.DLP[0] != "aws-access-token" {
			t.Errorf("decision %+v", d)
		}
	})
}

func TestScanEncoded(t *testing.T) {
	s, err := newScanner(DLPConfig{Action: DLPRedact, Secrets: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, enc := range []string{
		base64.StdEncoding.EncodeToString([]byte("token " + githubPAT)),
		base64.RawURLEncoding.EncodeToString([]byte("key=" + awsKey + "&x=1")),
		hex.EncodeToString([]byte("aws " + awsKey)),
		url.QueryEscape("k=" + githubPAT),
	} {
		fs := s.scan(`{"blob":"` + enc + `"}`)
		if len(fs) == 0 {
			t.Errorf("%s: nothing found", enc)
			continue
		}
		if _, ok := redact(enc, fs); ok && fs[0].Start < 0 {
			t.Errorf("%s: a decoded finding was redacted in place", enc)
		}
	}
}
