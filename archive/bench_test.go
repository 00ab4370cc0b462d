package archive

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// benchObject returns the i-th benchmark object: about 1 KiB of JSON.
func benchObject(i int) []byte {
	return fmt.Appendf(nil, `{"kind":"bench","i":%d,"text":%q}`, i, strings.Repeat("lorem ipsum ", 80))
}

// BenchmarkPutDurable stores new objects with the full durability protocol
// (two fsynced files and two directory fsyncs per object).
func BenchmarkPutDurable(b *testing.B) {
	a, err := Open(filepath.Join(b.TempDir(), "arc"))
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	b.SetBytes(int64(len(benchObject(0))))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := a.Put(benchObject(i)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPutExisting stores an object the archive already holds (the
// no-op path: canonicalize, hash, lock, stat).
func BenchmarkPutExisting(b *testing.B) {
	a, err := Open(filepath.Join(b.TempDir(), "arc"))
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	obj := benchObject(0)
	if _, err := a.Put(obj); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(obj)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := a.Put(obj); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBaselineWriteFile is the baseline for Put: the same bytes to the
// same aa/bb/<hash>.json layout with os.WriteFile, no canonicalization, no
// fsync, no index.
func BenchmarkBaselineWriteFile(b *testing.B) {
	dir := b.TempDir()
	b.SetBytes(int64(len(benchObject(0))))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		obj := benchObject(i)
		h := Hash(obj)
		p := filepath.Join(dir, ObjectPath(h))
		os.MkdirAll(filepath.Dir(p), 0o700)
		if err := os.WriteFile(p, obj, 0o600); err != nil {
			b.Fatal(err)
		}
	}
}

var (
	benchOnce   sync.Once
	benchDir    string
	benchHashes []string
	benchErr    error
)

// benchArchive opens the shared 1000-object archive of the read
// benchmarks, filling it with durable Puts the first time.
func benchArchive(b *testing.B) (*Archive, []string) {
	b.Helper()
	benchOnce.Do(func() {
		if benchDir, benchErr = os.MkdirTemp("", "archive-bench-"); benchErr != nil {
			return
		}
		a, err := Open(benchDir)
		if err != nil {
			benchErr = err
			return
		}
		defer a.Close()
		for i := 0; i < benchObjects; i++ {
			h, err := a.Put(benchObject(i))
			if err != nil {
				benchErr = err
				return
			}
			benchHashes = append(benchHashes, h)
		}
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	a, err := Open(benchDir)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { a.Close() })
	return a, benchHashes
}

const benchObjects = 1000

// BenchmarkGet reads and hash-checks objects of a 1000-object archive.
func BenchmarkGet(b *testing.B) {
	a, hashes := benchArchive(b)
	b.SetBytes(int64(len(benchObject(0))))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := a.Get(hashes[i%len(hashes)]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBaselineReadFile is the baseline for Get: os.ReadFile of the
// same files without the hash check.
func BenchmarkBaselineReadFile(b *testing.B) {
	a, hashes := benchArchive(b)
	b.SetBytes(int64(len(benchObject(0))))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := os.ReadFile(filepath.Join(a.Dir(), ObjectPath(hashes[i%len(hashes)]))); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerify verifies a whole 1000-object archive per iteration and
// reports objects/s; MB/s counts the object bytes read.
func BenchmarkVerify(b *testing.B) {
	a, _ := benchArchive(b)
	b.SetBytes(int64(benchObjects * len(benchObject(0))))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ms, err := a.Verify()
		if err != nil || len(ms) != 0 {
			b.Fatal(ms, err)
		}
	}
	b.ReportMetric(float64(benchObjects*b.N)/b.Elapsed().Seconds(), "objects/s")
}

// BenchmarkBaselineHashFiles is the baseline for Verify: read every object
// file named in the index and SHA-256 it, nothing else (no parse, no
// canonical check, no directory walk).
func BenchmarkBaselineHashFiles(b *testing.B) {
	a, hashes := benchArchive(b)
	b.SetBytes(int64(benchObjects * len(benchObject(0))))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, h := range hashes {
			data, err := os.ReadFile(filepath.Join(a.Dir(), ObjectPath(h)))
			if err != nil {
				b.Fatal(err)
			}
			sha256.Sum256(data)
		}
	}
	b.ReportMetric(float64(benchObjects*b.N)/b.Elapsed().Seconds(), "objects/s")
}

// BenchmarkCanonicalize measures the canonical JSON codec on 1 KiB objects.
func BenchmarkCanonicalize(b *testing.B) {
	obj := benchObject(1)
	b.SetBytes(int64(len(obj)))
	for i := 0; i < b.N; i++ {
		if _, err := Canonicalize(obj); err != nil {
			b.Fatal(err)
		}
	}
}
