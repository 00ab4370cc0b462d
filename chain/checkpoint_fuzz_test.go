package chain

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzParseCheckpointBody: any text either parses into a checkpoint whose
// Body gives the same text back (the format has one spelling), or fails
// with ErrCheckpointFormat; it never panics.
func FuzzParseCheckpointBody(f *testing.F) {
	root := "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc="
	for _, s := range []string{
		"ccos.test/chain\n5\n" + root + "\n",
		"ccos.test/chain\n5\n" + root + "\nccos-event " + root + "\n",
		"o\n0\n" + root + "\n",
		"o\n05\n" + root + "\n",
		"o\n18446744073709551616\n" + root + "\n",
		"o\n5\n" + root + "\next\n",
		"o\n5\n" + root + "\nccos-event AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
		"o\n5\n" + root + "\nccos-event " + root + "\nmore\n",
		"o\n5\n" + root,
		"",
		"\n\n\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		c, err := ParseCheckpointBody(text)
		if err != nil {
			if !errors.Is(err, ErrCheckpointFormat) {
				t.Fatalf("error %v is not ErrCheckpointFormat", err)
			}
			return
		}
		if got := c.Body(); got != text {
			t.Fatalf("Body() = %q, parsed from %q", got, text)
		}
		if c.Origin == "" || len(c.Root) != HashSize || bytes.Contains([]byte(c.Origin), []byte("\n")) {
			t.Fatalf("parsed %+v", c)
		}
	})
}
