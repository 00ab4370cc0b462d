package archive

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
)

// Problem names the kind of a Mismatch.
type Problem string

// The problems Verify reports.
const (
	// ProblemIndex: index.json is unreadable or malformed.
	ProblemIndex Problem = "index-unreadable"
	// ProblemMissing: the index lists an object whose file is absent.
	ProblemMissing Problem = "missing"
	// ProblemHash: the file's content does not hash to its name.
	ProblemHash Problem = "hash-mismatch"
	// ProblemUnparsable: the content is not JSON the archive accepts.
	ProblemUnparsable Problem = "unparsable"
	// ProblemNotCanonical: the content is JSON but not in canonical form.
	ProblemNotCanonical Problem = "not-canonical"
	// ProblemEntry: the index entry's size or kind disagrees with the file.
	ProblemEntry Problem = "index-entry"
	// ProblemUnindexed: an object file that the index does not list.
	ProblemUnindexed Problem = "unindexed"
	// ProblemTemp: a temp file a writer left behind (Open removes these).
	ProblemTemp Problem = "temp-file"
	// ProblemUnexpected: a file that is neither an object, nor index.json,
	// nor the lock file.
	ProblemUnexpected Problem = "unexpected-file"
	// ProblemDanglingRef: a ref, or an intent graph member, naming an
	// object the index does not list.
	ProblemDanglingRef Problem = "dangling-ref"
)

// Mismatch is one problem Verify found.
type Mismatch struct {
	Problem Problem `json:"problem"`
	Hash    string  `json:"hash,omitempty"`
	Path    string  `json:"path,omitempty"` // relative to the archive directory
	Detail  string  `json:"detail"`
}

// String formats the mismatch as "problem path: detail".
func (m Mismatch) String() string {
	s := string(m.Problem)
	if m.Path != "" {
		s += " " + m.Path
	}
	return s + ": " + m.Detail
}

// Verify reads every file of the archive, recomputes every hash and returns
// every problem it finds (nil when the archive is sound). It holds a shared
// lock, so writers wait for it. err is set only when the directory itself
// cannot be read.
func (a *Archive) Verify() (ms []Mismatch, err error) {
	err = a.withLock(false, func() error {
		ms, err = verifyDir(a.dir)
		return err
	})
	return ms, err
}

func verifyDir(dir string) ([]Mismatch, error) {
	var ms []Mismatch
	add := func(p Problem, h, path, format string, args ...any) {
		ms = append(ms, Mismatch{Problem: p, Hash: h, Path: path, Detail: fmt.Sprintf(format, args...)})
	}
	idx, err := readIndex(filepath.Join(dir, indexName))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		idx = newIndex()
	case err != nil:
		add(ProblemIndex, "", indexName, "%v", err)
		idx = newIndex()
	}
	hashes := make([]string, 0, len(idx.Objects))
	for h := range idx.Objects {
		hashes = append(hashes, h)
	}
	slices.Sort(hashes)
	for _, found := range verifyObjects(dir, hashes, idx) {
		ms = append(ms, found...)
	}
	if err := verifyFiles(dir, idx, add); err != nil {
		return ms, err
	}
	verifyRefs(dir, idx, add)
	return ms, nil
}

type addFunc func(p Problem, h, path, format string, args ...any)

// verifyObjects checks the objects on GOMAXPROCS goroutines (reading and
// hashing overlap with other files' I/O) and returns each object's
// mismatches in the order of hashes.
func verifyObjects(dir string, hashes []string, idx *indexFile) [][]Mismatch {
	found := make([][]Mismatch, len(hashes))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for {
				n := int(next.Add(1)) - 1
				if n >= len(hashes) {
					return
				}
				h := hashes[n]
				verifyObject(dir, h, idx.Objects[h], func(p Problem, h, path, format string, args ...any) {
					found[n] = append(found[n], Mismatch{Problem: p, Hash: h, Path: path, Detail: fmt.Sprintf(format, args...)})
				})
			}
		})
	}
	wg.Wait()
	return found
}

func verifyObject(dir, h string, e indexEntry, add addFunc) {
	rel := ObjectPath(h)
	data, err := os.ReadFile(filepath.Join(dir, rel))
	if errors.Is(err, fs.ErrNotExist) {
		add(ProblemMissing, h, rel, "listed in index.json but the file is absent")
		return
	}
	if err != nil {
		add(ProblemMissing, h, rel, "unreadable: %v", err)
		return
	}
	if got := Hash(data); got != h {
		detail := "content hashes to " + got
		if _, perr := Canonicalize(data); perr != nil {
			detail += " and does not parse: " + perr.Error()
		}
		add(ProblemHash, h, rel, "%s", detail)
		return
	}
	canon, err := Canonicalize(data)
	if err != nil {
		add(ProblemUnparsable, h, rel, "%v", err)
		return
	}
	if !bytes.Equal(canon, data) {
		add(ProblemNotCanonical, h, rel, "the content is JSON but not canonical")
		return
	}
	if kind := kindOf(data); e.Size != int64(len(data)) || e.Kind != kind {
		add(ProblemEntry, h, rel, "index says size %d kind %q, file has size %d kind %q", e.Size, e.Kind, len(data), kind)
	}
}

func verifyFiles(dir string, idx *indexFile, add addFunc) error {
	tops, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	for _, t := range tops {
		switch name := t.Name(); {
		case name == indexName || name == lockName:
		case isTemp(name):
			add(ProblemTemp, "", name, "temp file left by a writer that did not finish")
		case t.IsDir() && shardRE.MatchString(name):
		default:
			add(ProblemUnexpected, "", name, "not part of the archive layout")
		}
	}
	return walkShards(dir, func(rel string, isDir bool) {
		name := filepath.Base(rel)
		h, ok := hashOfName(rel)
		switch {
		case isTemp(name):
			add(ProblemTemp, "", rel, "temp file left by a writer that did not finish")
		case ok && !isDir:
			if _, in := idx.Objects[h]; !in {
				add(ProblemUnindexed, h, rel, "object file not listed in index.json")
			}
		default:
			add(ProblemUnexpected, "", rel, "not part of the archive layout")
		}
	})
}

// walkShards calls fn for every entry inside aa/ and aa/bb/ other than the
// well-formed shard directories themselves.
func walkShards(dir string, fn func(rel string, isDir bool)) error {
	tops, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	for _, t := range tops {
		if !t.IsDir() || !shardRE.MatchString(t.Name()) {
			continue
		}
		subs, err := os.ReadDir(filepath.Join(dir, t.Name()))
		if err != nil {
			return fmt.Errorf("archive: %w", err)
		}
		for _, s := range subs {
			rel := t.Name() + "/" + s.Name()
			if !s.IsDir() || !shardRE.MatchString(s.Name()) {
				fn(rel, s.IsDir())
				continue
			}
			files, err := os.ReadDir(filepath.Join(dir, rel))
			if err != nil {
				return fmt.Errorf("archive: %w", err)
			}
			for _, f := range files {
				fn(rel+"/"+f.Name(), f.IsDir())
			}
		}
	}
	return nil
}

// verifyRefs checks that every ref names an indexed object, and that every
// member of the intent graph a ref points to is indexed too.
func verifyRefs(dir string, idx *indexFile, add addFunc) {
	names := make([]string, 0, len(idx.Refs))
	for n := range idx.Refs {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, name := range names {
		h := idx.Refs[name]
		e, ok := idx.Objects[h]
		if !ok {
			add(ProblemDanglingRef, h, indexName, "ref %q names an object the index does not list", name)
			continue
		}
		if e.Kind != KindIntentGraph {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, ObjectPath(h)))
		if err != nil || Hash(data) != h {
			continue // already reported as missing or corrupt
		}
		var g graphRecord
		if err := json.Unmarshal(data, &g); err != nil {
			add(ProblemUnparsable, h, ObjectPath(h), "intent graph of ref %q: %v", name, err)
			continue
		}
		for _, id := range sortedKeys(g.Intents) {
			if _, ok := idx.Objects[g.Intents[id]]; !ok {
				add(ProblemDanglingRef, g.Intents[id], ObjectPath(h), "intent %q of ref %q is not in the archive", id, name)
			}
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
