package rtfs

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/ccos-project/ccos/internal/testenv"
)

// addCorpusSeeds adds every corpus and test-data file, whole and split at
// blank lines, as fuzz seeds.
func addCorpusSeeds(f *testing.F) {
	var files []string
	if dir, err := testenv.SharedPath(corpusRel); err == nil {
		files, _ = filepath.Glob(filepath.Join(dir, "*.rtfs"))
	}
	more, _ := filepath.Glob("testdata/*.rtfs")
	for _, name := range append(files, more...) {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{"", "(", ")", "\"\\u", "#(% %1 %&)", "^:a ^{:b 1} [x]", "{:a 1 :a 2 :b}", "x:[:vector :int]", ":[:union :int]", "##NaN", "'`~@@x"} {
		f.Add([]byte(s))
	}
}

// FuzzRead checks that the reader never panics and that every error it
// reports points inside the input.
func FuzzRead(f *testing.F) {
	addCorpusSeeds(f)
	f.Fuzz(func(t *testing.T, src []byte) {
		s, err := Read(src, "fuzz", ReadOptions{MaxDepth: 200})
		if s == nil {
			t.Fatal("Read returned no Source")
		}
		var list ErrorList
		if err != nil && !errors.As(err, &list) {
			t.Fatalf("error of type %T: %v", err, err)
		}
		for _, e := range list {
			if e.Pos.Line < 1 || e.Pos.Col < 1 || e.Pos.Offset > len(src) {
				t.Fatalf("error outside the input: %v (offset %d of %d)", e, e.Pos.Offset, len(src))
			}
		}
		for _, v := range s.Forms {
			sp := v.Span()
			if sp.Start.Offset > sp.End.Offset || sp.End.Offset > len(src) {
				t.Fatalf("bad span %+v for %s", sp, Print(v))
			}
		}
	})
}

// FuzzPrintRead checks the printer contracts on every input that reads:
// canonical and pretty forms read back to equal values, and formatting is
// idempotent and keeps comments.
func FuzzPrintRead(f *testing.F) {
	addCorpusSeeds(f)
	f.Fuzz(func(t *testing.T, src []byte) {
		checkRoundTrip(t, "fuzz", src)
	})
}
