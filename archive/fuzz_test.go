package archive

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// FuzzCanonicalize checks that the canonical reader never panics, that its
// output is canonical (a fixed point), is JSON that encoding/json accepts,
// and that canonicalizing is insensitive to the input's white space.
func FuzzCanonicalize(f *testing.F) {
	for _, s := range []string{`{"b":1,"a":[1.5,-0,1e21,"\u00e9\ud83d\ude00"]}`, `[]`, `"\u0000"`, `{"a":{"b":{}}}`, `1E-7`, `{"a":1,"a":2}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Canonicalize(data)
		if err != nil {
			return
		}
		again, err := Canonicalize(c)
		if err != nil || !bytes.Equal(again, c) {
			t.Fatalf("not a fixed point: %q -> %q -> %q (%v)", data, c, again, err)
		}
		if !json.Valid(c) {
			t.Fatalf("canonical output is not JSON: %q", c)
		}
		var indented bytes.Buffer
		if json.Indent(&indented, data, "", "  ") == nil {
			c2, err := Canonicalize(indented.Bytes())
			if err != nil || !bytes.Equal(c2, c) {
				t.Fatalf("white space changed the canonical form: %q vs %q (%v)", c, c2, err)
			}
		}
	})
}

// FuzzBackup checks that the backup reader never panics and that a backup
// it accepts encodes to a backup it accepts again with the same content.
func FuzzBackup(f *testing.F) {
	for _, name := range []string{"backup_v1_1.json", "backup_v1_0.json"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"version":"1.1","intents":{"a":{"Goal":"x","goal":"y"}},"edges":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := ReadBackup(data)
		if err != nil {
			return
		}
		enc, err := b.Encode()
		if err != nil {
			t.Fatalf("accepted backup does not encode: %v", err)
		}
		b2, err := ReadBackup(enc)
		if err != nil {
			t.Fatalf("re-encoded backup refused: %v\n%s", err, enc)
		}
		enc2, err := b2.Encode()
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("backup changed on a second round trip:\n%s\n%s", enc, enc2)
		}
		if _, err := Snapshot(b.Graph()); err != nil {
			t.Fatalf("no snapshot for an accepted backup: %v", err)
		}
	})
}

// FuzzIntent checks that an intent read from any JSON object writes back
// to JSON that reads as the same intent (unknown members included).
func FuzzIntent(f *testing.F) {
	f.Add([]byte(`{"id":"a","goal":"g","constraints":{"x":1},"status":"active","created":5,"metadata":{},"more":[1]}`))
	f.Add([]byte(`{"ID":"a","id":"b"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var i Intent
		if json.Unmarshal(data, &i) != nil {
			return
		}
		enc, err := json.Marshal(i)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		var j Intent
		if err := json.Unmarshal(enc, &j); err != nil {
			t.Fatalf("re-read: %v\n%s", err, enc)
		}
		enc2, _ := json.Marshal(j)
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("intent changed:\n%s\n%s", enc, enc2)
		}
	})
}
