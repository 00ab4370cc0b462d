package chain

import (
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ccos-project/ccos/rtfs"
	"golang.org/x/mod/sumdb/note"
)

// writeTestChain writes an append file of n events with a checkpoint every
// 4 and one at the end, and returns its path and bytes.
func writeTestChain(t *testing.T, signer note.Signer, n int) (string, []byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "c.chain")
	s, err := OpenFile(path, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := NewRecorder(s, signer, Options{CheckpointEvery: 4})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if _, err := rec.Append(context.Background(), testEvent(i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := rec.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, b
}

// verifyFile verifies an append file read-only.
func verifyFile(path string, v note.Verifier) (*Report, error) {
	s, err := OpenFile(path, FileOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer s.Close()
	return Verify(s, v)
}

// recordOffsets returns the file offset of every record.
func recordOffsets(b []byte) []int {
	var offs []int
	for off := len(fileMagic); off < len(b); {
		offs = append(offs, off)
		off += 8 + int(binary.BigEndian.Uint32(b[off:]))
	}
	return offs
}

// TestFlippedByteDetected flips every bit pattern 0xFF into each byte of a
// small chain: verify must fail every time, naming the damaged record (or,
// for the header, refusing the file).
func TestFlippedByteDetected(t *testing.T) {
	signer, verifier := testKey(t)
	path, orig := writeTestChain(t, signer, 10)
	if _, err := verifyFile(path, verifier); err != nil {
		t.Fatalf("intact chain: %v", err)
	}
	offs := recordOffsets(orig)
	seqAt := func(pos int) uint64 {
		var seq uint64
		for i, o := range offs {
			if o <= pos {
				seq = uint64(i)
			}
		}
		return seq
	}
	damaged := filepath.Join(t.TempDir(), "d.chain")
	for pos := range orig {
		b := append([]byte(nil), orig...)
		b[pos] ^= 0xFF
		if err := os.WriteFile(damaged, b, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := verifyFile(damaged, verifier)
		if err == nil {
			t.Fatalf("flipped byte at %d not detected", pos)
		}
		if pos < len(fileMagic) {
			if !errors.Is(err, ErrNotChain) {
				t.Fatalf("header byte %d: %v", pos, err)
			}
			continue
		}
		var re *RecordError
		if !errors.As(err, &re) || re.Seq != seqAt(pos) {
			t.Fatalf("byte %d (seq %d): %v", pos, seqAt(pos), err)
		}
	}
}

// TestTamperWithValidChecksum rewrites an event with a correct checksum,
// as an attacker would: the hash chain names the next event, and a
// rewritten checkpoint fails its signature.
func TestTamperWithValidChecksum(t *testing.T) {
	signer, verifier := testKey(t)
	_, orig := writeTestChain(t, signer, 10)
	offs := recordOffsets(orig)
	other, _ := testKey(t)
	rewrite := func(seq int, edit func(e *Event)) []byte {
		off := offs[seq]
		n := int(binary.BigEndian.Uint32(orig[off:]))
		e, err := Decode(orig[off+4 : off+4+n])
		if err != nil {
			t.Fatal(err)
		}
		edit(e)
		data := mustEncode(t, e)
		var rec []byte
		rec = binary.BigEndian.AppendUint32(rec, uint32(len(data)))
		rec = append(rec, data...)
		rec = binary.BigEndian.AppendUint32(rec, crc32.Checksum(rec, castagnoli))
		out := append([]byte(nil), orig[:off]...)
		out = append(out, rec...)
		return append(out, orig[off+8+n:]...)
	}
	tests := []struct {
		name string
		file []byte
		seq  uint64
		want error
	}{
		{"payload", rewrite(2, func(e *Event) { e.Payload = rtfs.Int{V: 666} }), 3, ErrParent},
		{"origin", rewrite(6, func(e *Event) { e.Origin = OriginGuest }), 7, ErrParent},
		{"seq", rewrite(2, func(e *Event) { e.Seq = 9 }), 2, ErrSeq},
		{"checkpoint body", rewrite(4, func(e *Event) { e.Payload = rtfs.String{V: "x"} }), 4, ErrBadSignature},
		{"checkpoint re-signed by another key", rewrite(4, func(e *Event) {
			msg := e.Payload.(rtfs.String).V
			body := msg[:strings.LastIndex(msg, "\n\n")+1]
			signed, err := note.Sign(&note.Note{Text: body}, other)
			if err != nil {
				t.Fatal(err)
			}
			e.Payload = rtfs.String{V: string(signed)}
		}), 4, ErrBadSignature},
		{"dropped event", append(append([]byte(nil), orig[:offs[3]]...), orig[offs[4]:]...), 3, ErrSeq},
	}
	dir := t.TempDir()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name)
			os.WriteFile(p, tc.file, 0o644)
			_, err := verifyFile(p, verifier)
			var ve *VerifyError
			if !errors.As(err, &ve) || ve.Seq != tc.seq || !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want seq %d: %v", err, tc.seq, tc.want)
			}
		})
	}
}

// TestTornTailTruncated cuts the file at every offset inside its last
// record: a read-only open names the torn record, a writable open
// truncates it and reports the dropped bytes, and the rest verifies.
func TestTornTailTruncated(t *testing.T) {
	signer, verifier := testKey(t)
	_, orig := writeTestChain(t, signer, 5)
	offs := recordOffsets(orig)
	last := offs[len(offs)-1]
	dir := t.TempDir()
	for cut := last + 1; cut < len(orig); cut++ {
		p := filepath.Join(dir, "torn.chain")
		os.WriteFile(p, orig[:cut], 0o644)
		_, err := verifyFile(p, verifier)
		var re *RecordError
		if !errors.As(err, &re) || !errors.Is(err, ErrTornTail) || re.Seq != uint64(len(offs)-1) {
			t.Fatalf("cut %d: read-only verify: %v", cut, err)
		}
		s, err := OpenFile(p, FileOptions{})
		if err != nil {
			t.Fatalf("cut %d: open: %v", cut, err)
		}
		rc := s.Recovered()
		s.Close()
		if rc.TruncatedFrom != int64(last) || rc.DroppedBytes != int64(cut-last) || rc.Records != uint64(len(offs)-1) {
			t.Fatalf("cut %d: recovery %+v", cut, rc)
		}
		if _, err := verifyFile(p, verifier); err != nil {
			t.Fatalf("cut %d: verify after recovery: %v", cut, err)
		}
	}
	// A zero-filled tail (the file system extended the file but the data
	// never landed) is a torn tail too.
	p := filepath.Join(dir, "zero.chain")
	os.WriteFile(p, append(append([]byte(nil), orig...), make([]byte, 100)...), 0o644)
	s, err := OpenFile(p, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rc := s.Recovered(); rc.DroppedBytes != 100 {
		t.Fatalf("zero tail: %+v", rc)
	}
	s.Close()
	// Damage before the tail is never truncated.
	b := append([]byte(nil), orig...)
	b[offs[1]+10] ^= 1
	os.WriteFile(p, b, 0o644)
	if _, err := OpenFile(p, FileOptions{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("mid-file damage on open: %v", err)
	}
}
