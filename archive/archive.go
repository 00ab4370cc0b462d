package archive

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"syscall"

	"github.com/ccos-project/ccos/internal/atomicfile"
)

// Errors of archive operations, tested with errors.Is.
var (
	// ErrNotFound is a hash (or ref) the archive does not hold.
	ErrNotFound = errors.New("archive: object not found")
	// ErrBadHash is a string that is not 64 lower-case hexadecimal digits.
	ErrBadHash = errors.New("archive: not a SHA-256 hash (64 lower-case hex digits)")
	// ErrNotObject is a value to store that is not a JSON object.
	ErrNotObject = errors.New("archive: only JSON objects are stored")
	// ErrTooLarge is an object larger than MaxObjectSize.
	ErrTooLarge = errors.New("archive: object too large")
	// ErrCorrupt is a stored object whose content no longer has its hash.
	ErrCorrupt = errors.New("archive: stored object does not match its hash")
	// ErrIndex is an index.json that cannot be read.
	ErrIndex = errors.New("archive: index.json unreadable")
	// ErrReadOnly is a write through an Archive opened with OpenReadOnly.
	ErrReadOnly = errors.New("archive: opened read-only")
	// ErrReferenced is a Delete of an object a ref points to.
	ErrReferenced = errors.New("archive: object is the target of a ref")
	// ErrRefConflict is a SetRef whose expected old value is not current.
	ErrRefConflict = errors.New("archive: ref changed concurrently")
	// ErrBadRef is a ref name outside [a-z0-9.-].
	ErrBadRef = errors.New("archive: bad ref name")
)

// MaxObjectSize bounds the canonical size of one stored object.
const MaxObjectSize = 64 << 20

// IndexFormat is the value of the "format" member of index.json.
const IndexFormat = "ccos.archive.index/1"

const (
	indexName = "index.json"
	lockName  = "lock"
)

// Object describes one stored object, as listed by List.
type Object struct {
	Hash string `json:"hash"`
	Kind string `json:"kind,omitempty"` // the object's "kind" member, if a string
	Path string `json:"path"`           // relative to the archive directory
	Size int64  `json:"size"`           // bytes of canonical JSON
}

// indexEntry is one member of index.json's "objects".
type indexEntry struct {
	Kind string `json:"kind,omitempty"`
	Path string `json:"path"`
	Size int64  `json:"size"`
}

// indexFile is the whole of index.json.
type indexFile struct {
	Format  string                `json:"format"`
	Objects map[string]indexEntry `json:"objects"`
	Refs    map[string]string     `json:"refs,omitempty"`
}

// Archive is an open archive directory. Its methods are safe for concurrent
// use by goroutines; other processes are excluded by the lock file.
type Archive struct {
	dir      string
	readOnly bool

	mu    sync.Mutex // guards everything below and orders goroutines
	lk    *fileLock
	idx   *indexFile
	idxID [3]int64 // inode, size, mtime of index.json when idx was read
}

var hashRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// ValidHash reports whether h is a well-formed object hash.
func ValidHash(h string) bool { return hashRE.MatchString(h) }

// Hash returns the object hash of canonical JSON bytes.
func Hash(canonical []byte) string {
	sum := sha256.Sum256(canonical)
	return hex.EncodeToString(sum[:])
}

// ObjectPath returns the path of the object h relative to the archive
// directory: aa/bb/<h>.json.
func ObjectPath(h string) string { return h[0:2] + "/" + h[2:4] + "/" + h + ".json" }

// Open opens the archive in dir, creating the directory if needed, and
// recovers from writers that died: under the exclusive lock it removes
// leftover temp files and indexes any complete object (its file hashes to
// its name) that a writer renamed into place but did not get to index.
func Open(dir string) (*Archive, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	a, err := open(dir, false)
	if err != nil {
		return nil, err
	}
	if err := a.withLock(true, a.recover); err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

// OpenReadOnly opens an existing archive for reading and verification: it
// changes nothing on disk (no recovery), and writes fail with ErrReadOnly.
func OpenReadOnly(dir string) (*Archive, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("archive: %s is not a directory", dir)
	}
	return open(dir, true)
}

func open(dir string, readOnly bool) (*Archive, error) {
	a := &Archive{dir: dir, readOnly: readOnly}
	lp := filepath.Join(dir, lockName)
	if readOnly {
		if _, err := os.Stat(lp); err != nil {
			// Nothing to lock against: an archive never written to.
			return a, nil
		}
	}
	lk, err := openLock(lp)
	if err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	a.lk = lk
	return a, nil
}

// Dir returns the archive directory.
func (a *Archive) Dir() string { return a.dir }

// Close releases the lock file. The Archive must not be used afterwards.
func (a *Archive) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.lk == nil {
		return nil
	}
	err := a.lk.close()
	a.lk = nil
	return err
}

// withLock runs fn holding the goroutine mutex and the file lock.
func (a *Archive) withLock(exclusive bool, fn func() error) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.lk != nil {
		if err := a.lk.lock(exclusive); err != nil {
			return err
		}
		defer a.lk.unlock()
	}
	return fn()
}

// refresh re-reads index.json if another Archive replaced it since it was
// last read. Every writer replaces it by rename, so a new file has a new
// inode; size and mtime are compared as well for safety.
func (a *Archive) refresh() error {
	p := filepath.Join(a.dir, indexName)
	st, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		a.idx, a.idxID = newIndex(), [3]int64{}
		return nil
	}
	if err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	id := fileID(st)
	if a.idx != nil && id == a.idxID {
		return nil
	}
	idx, err := readIndex(p)
	if err != nil {
		return err
	}
	a.idx, a.idxID = idx, id
	return nil
}

func newIndex() *indexFile {
	return &indexFile{Format: IndexFormat, Objects: map[string]indexEntry{}}
}

func readIndex(path string) (*indexFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrIndex, err)
	}
	idx := newIndex()
	if err := json.Unmarshal(data, idx); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrIndex, err)
	}
	if idx.Format != IndexFormat {
		return nil, fmt.Errorf("%w: format %q, want %q", ErrIndex, idx.Format, IndexFormat)
	}
	if idx.Objects == nil {
		idx.Objects = map[string]indexEntry{}
	}
	for h, e := range idx.Objects {
		if !ValidHash(h) || e.Path != ObjectPath(h) {
			return nil, fmt.Errorf("%w: entry %q has path %q, want aa/bb/<hash>.json", ErrIndex, h, e.Path)
		}
	}
	return idx, nil
}

// writeIndex persists a.idx atomically (canonical JSON, temp + fsync +
// rename + directory fsync) and remembers the new file's identity. On
// failure it drops the cached index, whose change did not reach the disk.
func (a *Archive) writeIndex() (err error) {
	defer func() {
		if err != nil {
			a.idx = nil
		}
	}()
	raw, err := json.Marshal(a.idx)
	if err != nil {
		return fmt.Errorf("archive: encoding index: %w", err)
	}
	canon, err := Canonicalize(raw)
	if err != nil {
		return fmt.Errorf("archive: encoding index: %w", err)
	}
	if err := writeAtomic(a.dir, indexName, canon, "index"); err != nil {
		return fmt.Errorf("archive: writing index: %w", err)
	}
	st, err := os.Stat(filepath.Join(a.dir, indexName))
	if err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	a.idxID = fileID(st)
	return nil
}

// fileID identifies one version of index.json: every writer replaces the
// file by rename, so a new version has a new inode; size and modification
// time are compared as well.
func fileID(st fs.FileInfo) [3]int64 {
	id := [3]int64{0, st.Size(), st.ModTime().UnixNano()}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		id[0] = int64(sys.Ino)
	}
	return id
}

// Put stores the JSON object data in canonical form and returns its hash.
// It is a no-op when the archive already holds the object. When Put
// returns nil, the object and its index entry are on stable storage.
func (a *Archive) Put(data []byte) (string, error) {
	canon, err := Canonicalize(data)
	if err != nil {
		return "", err
	}
	if canon[0] != '{' {
		return "", ErrNotObject
	}
	if len(canon) > MaxObjectSize {
		return "", fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(canon), MaxObjectSize)
	}
	h := Hash(canon)
	return h, a.store(h, canon, kindOf(canon))
}

// PutValue stores v encoded by encoding/json (which must give an object)
// and returns its hash.
func (a *Archive) PutValue(v any) (string, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("archive: encoding %T: %w", v, err)
	}
	return a.Put(raw)
}

func kindOf(canon []byte) string {
	var k struct{ Kind any }
	if json.Unmarshal(canon, &k) == nil {
		if s, ok := k.Kind.(string); ok {
			return s
		}
	}
	return ""
}

func (a *Archive) store(h string, canon []byte, kind string) error {
	if a.readOnly {
		return ErrReadOnly
	}
	return a.withLock(true, func() error {
		if err := a.refresh(); err != nil {
			return err
		}
		rel := ObjectPath(h)
		full := filepath.Join(a.dir, rel)
		if _, ok := a.idx.Objects[h]; ok {
			if _, err := os.Stat(full); err == nil {
				return nil
			}
		}
		if err := ensureDir(filepath.Dir(full)); err != nil {
			return fmt.Errorf("archive: %w", err)
		}
		if err := writeAtomic(filepath.Dir(full), filepath.Base(full), canon, "object"); err != nil {
			return fmt.Errorf("archive: writing %s: %w", rel, err)
		}
		a.idx.Objects[h] = indexEntry{Kind: kind, Path: rel, Size: int64(len(canon))}
		return a.writeIndex()
	})
}

// Get returns the canonical JSON of the object h, after checking that it
// still hashes to h (ErrCorrupt otherwise).
func (a *Archive) Get(h string) ([]byte, error) {
	if !ValidHash(h) {
		return nil, fmt.Errorf("%w: %q", ErrBadHash, h)
	}
	data, err := os.ReadFile(filepath.Join(a.dir, ObjectPath(h)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, h)
	}
	if err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	if Hash(data) != h {
		return nil, fmt.Errorf("%w: %s", ErrCorrupt, h)
	}
	return data, nil
}

// GetValue decodes the object h into v with encoding/json.
func (a *Archive) GetValue(h string, v any) error {
	data, err := a.Get(h)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("archive: decoding %s into %T: %w", h, v, err)
	}
	return nil
}

// Has reports whether the index lists h and its file exists.
func (a *Archive) Has(h string) (bool, error) {
	if !ValidHash(h) {
		return false, fmt.Errorf("%w: %q", ErrBadHash, h)
	}
	var ok bool
	err := a.withLock(false, func() error {
		if err := a.refresh(); err != nil {
			return err
		}
		if _, in := a.idx.Objects[h]; in {
			_, serr := os.Stat(filepath.Join(a.dir, ObjectPath(h)))
			ok = serr == nil
		}
		return nil
	})
	return ok, err
}

// Delete removes the object h: first its index entry (index.json is
// persisted), then its file. A crash between the two leaves a complete
// unindexed object, which the next Open indexes again, so a Delete that did
// not return may be undone but never leaves the archive inconsistent.
// Deleting an object that a ref points to fails with ErrReferenced.
func (a *Archive) Delete(h string) error {
	if !ValidHash(h) {
		return fmt.Errorf("%w: %q", ErrBadHash, h)
	}
	if a.readOnly {
		return ErrReadOnly
	}
	return a.withLock(true, func() error {
		if err := a.refresh(); err != nil {
			return err
		}
		for name, target := range a.idx.Refs {
			if target == h {
				return fmt.Errorf("%w: %s is ref %q", ErrReferenced, h, name)
			}
		}
		full := filepath.Join(a.dir, ObjectPath(h))
		if _, in := a.idx.Objects[h]; in {
			delete(a.idx.Objects, h)
			if err := a.writeIndex(); err != nil {
				return err
			}
			step("delete-index-written")
		} else if _, err := os.Stat(full); err != nil {
			return fmt.Errorf("%w: %s", ErrNotFound, h)
		}
		if err := os.Remove(full); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("archive: %w", err)
		}
		return atomicfile.SyncDir(filepath.Dir(full))
	})
}

// List returns every indexed object, sorted by hash.
func (a *Archive) List() ([]Object, error) {
	var out []Object
	err := a.withLock(false, func() error {
		if err := a.refresh(); err != nil {
			return err
		}
		out = make([]Object, 0, len(a.idx.Objects))
		for h, e := range a.idx.Objects {
			out = append(out, Object{Hash: h, Kind: e.Kind, Path: e.Path, Size: e.Size})
		}
		return nil
	})
	slices.SortFunc(out, func(x, y Object) int { return cmpString(x.Hash, y.Hash) })
	return out, err
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

var refRE = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{0,63}$`)

// Ref returns the hash the named ref points to, or ErrNotFound.
func (a *Archive) Ref(name string) (string, error) {
	var h string
	err := a.withLock(false, func() error {
		if err := a.refresh(); err != nil {
			return err
		}
		var ok bool
		if h, ok = a.idx.Refs[name]; !ok {
			return fmt.Errorf("%w: ref %q", ErrNotFound, name)
		}
		return nil
	})
	return h, err
}

// SetRef points the named ref at the stored object h ("" removes the ref),
// provided it currently points at old ("" for a ref that does not exist);
// otherwise it fails with ErrRefConflict. Refs live in index.json and are
// persisted with it.
func (a *Archive) SetRef(name, old, h string) error {
	if !refRE.MatchString(name) {
		return fmt.Errorf("%w: %q", ErrBadRef, name)
	}
	if a.readOnly {
		return ErrReadOnly
	}
	return a.withLock(true, func() error {
		if err := a.refresh(); err != nil {
			return err
		}
		cur := a.idx.Refs[name]
		if cur != old {
			return fmt.Errorf("%w: %q is %q, expected %q", ErrRefConflict, name, cur, old)
		}
		if cur == h {
			return nil
		}
		if h == "" {
			delete(a.idx.Refs, name)
			return a.writeIndex()
		}
		if _, ok := a.idx.Objects[h]; !ok {
			return fmt.Errorf("%w: %s", ErrNotFound, h)
		}
		if a.idx.Refs == nil {
			a.idx.Refs = map[string]string{}
		}
		a.idx.Refs[name] = h
		return a.writeIndex()
	})
}

// recover runs under the exclusive lock at Open: it removes temp files left
// by writers that died (no live writer can own one, since writers hold the
// lock while a temp file exists) and indexes complete unindexed objects.
func (a *Archive) recover() error {
	if err := a.refresh(); err != nil {
		return err
	}
	if err := removeTemps(a.dir); err != nil {
		return err
	}
	changed := false
	err := walkObjects(a.dir, func(rel, name string) error {
		if isTemp(name) {
			dir := filepath.Join(a.dir, filepath.Dir(rel))
			if err := os.Remove(filepath.Join(a.dir, rel)); err != nil {
				return err
			}
			return atomicfile.SyncDir(dir)
		}
		h, ok := hashOfName(rel)
		if !ok {
			return nil // reported by Verify, never touched
		}
		if _, in := a.idx.Objects[h]; in {
			return nil
		}
		data, err := os.ReadFile(filepath.Join(a.dir, rel))
		if err != nil {
			return err
		}
		canon, err := Canonicalize(data)
		if err != nil || !bytes.Equal(canon, data) || Hash(data) != h {
			return nil // damaged: left for Verify to report
		}
		a.idx.Objects[h] = indexEntry{Kind: kindOf(data), Path: rel, Size: int64(len(data))}
		changed = true
		return nil
	})
	if err != nil {
		return fmt.Errorf("archive: recovering %s: %w", a.dir, err)
	}
	if changed {
		return a.writeIndex()
	}
	return nil
}

func removeTemps(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	removed := false
	for _, e := range ents {
		if isTemp(e.Name()) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return fmt.Errorf("archive: %w", err)
			}
			removed = true
		}
	}
	if removed {
		return atomicfile.SyncDir(dir)
	}
	return nil
}

var shardRE = regexp.MustCompile(`^[0-9a-f]{2}$`)

// walkObjects calls fn for every file inside the shard directories aa/bb,
// with its path relative to dir (slash-separated) and its name.
func walkObjects(dir string, fn func(rel, name string) error) error {
	tops, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, t := range tops {
		if !t.IsDir() || !shardRE.MatchString(t.Name()) {
			continue
		}
		subs, err := os.ReadDir(filepath.Join(dir, t.Name()))
		if err != nil {
			return err
		}
		for _, s := range subs {
			if !s.IsDir() || !shardRE.MatchString(s.Name()) {
				continue
			}
			files, err := os.ReadDir(filepath.Join(dir, t.Name(), s.Name()))
			if err != nil {
				return err
			}
			for _, f := range files {
				if err := fn(t.Name()+"/"+s.Name()+"/"+f.Name(), f.Name()); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// hashOfName returns the hash of an object path aa/bb/<hash>.json, if rel
// is one with the right shard.
func hashOfName(rel string) (string, bool) {
	if len(rel) != 6+64+5 {
		return "", false
	}
	h := rel[6 : 6+64]
	if !ValidHash(h) || rel != ObjectPath(h) {
		return "", false
	}
	return h, true
}
