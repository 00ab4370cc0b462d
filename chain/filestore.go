package chain

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/ccos-project/ccos/internal/groupcommit"
	"golang.org/x/sys/unix"

	"github.com/ccos-project/ccos/internal/atomicfile"
)

const fileMagic = "CCOSCHN1"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// FileOptions tune an append file store. The zero value is the durable
// default.
type FileOptions struct {
	// ReadOnly opens an existing file for reading only; a torn tail is then
	// reported as ErrTornTail instead of being truncated.
	ReadOnly bool
	// MaxBatch bounds how many records one write and fsync covers (0: no
	// bound). 1 gives one fsync per event, the baseline of the benchmarks.
	MaxBatch int

	// writeChunk, when positive, splits every write(2) into pieces of this
	// many bytes. Only the crash test sets it, so that kills land inside
	// records and leave torn tails to recover from.
	writeChunk int
}

// Recovery describes what opening an append file did to its tail.
type Recovery struct {
	Records       uint64 // complete records kept
	TruncatedFrom int64  // offset where a torn tail started (-1: none)
	DroppedBytes  int64  // bytes removed from the end
}

// FileStore is the append_file store (see the package comment for the
// file format).
type FileStore struct {
	path     string
	f        *os.File
	readOnly bool
	recovery Recovery
	commit   *groupcommit.Committer[[]byte]
	chunk    int

	mu   sync.Mutex // guards size and n against Records during appends
	size int64      // end of the last durable record
	n    uint64     // durable records
}

// RecordError is a damaged record of an append file: Seq is the sequence
// number of the first record that cannot be read, Offset its file offset.
type RecordError struct {
	Seq    uint64
	Offset int64
	Err    error // ErrCorrupt or ErrTornTail
}

func (e *RecordError) Error() string {
	return fmt.Sprintf("seq %d (offset %d): %v", e.Seq, e.Offset, e.Err)
}
func (e *RecordError) Unwrap() error { return e.Err }

// OpenFile opens the append file at path, creating it unless read-only.
func OpenFile(path string, opts FileOptions) (*FileStore, error) {
	flag := os.O_RDWR | os.O_CREATE
	if opts.ReadOnly {
		flag = os.O_RDONLY
	}
	f, err := os.OpenFile(path, flag, 0o644)
	if err != nil {
		return nil, fmt.Errorf("chain: %w", err)
	}
	s := &FileStore{path: path, f: f, readOnly: opts.ReadOnly, chunk: opts.writeChunk}
	if err := s.open(); err != nil {
		f.Close()
		return nil, err
	}
	if !opts.ReadOnly {
		s.commit = groupcommit.New(opts.MaxBatch, ErrClosed, s.flush)
	}
	return s, nil
}

func (s *FileStore) open() error {
	st, err := s.f.Stat()
	if err != nil {
		return fmt.Errorf("chain: %w", err)
	}
	if st.Size() == 0 && !s.readOnly {
		if _, err := s.f.Write([]byte(fileMagic)); err != nil {
			return fmt.Errorf("chain: writing header: %w", err)
		}
		if err := s.f.Sync(); err != nil {
			return fmt.Errorf("chain: %w", err)
		}
		if err := atomicfile.SyncDir(filepath.Dir(s.path)); err != nil {
			return fmt.Errorf("chain: %w", err)
		}
		st, _ = s.f.Stat()
	}
	var hdr [len(fileMagic)]byte
	if _, err := s.f.ReadAt(hdr[:], 0); err != nil || string(hdr[:]) != fileMagic {
		return fmt.Errorf("%w: %s", ErrNotChain, s.path)
	}
	s.recovery.TruncatedFrom = -1
	end, n, scanErr := scanRecords(s.f, st.Size(), nil)
	s.size, s.n = end, n
	s.recovery.Records = n
	var re *RecordError
	if errors.As(scanErr, &re) && errors.Is(re.Err, ErrTornTail) && !s.readOnly {
		s.recovery.TruncatedFrom = end
		s.recovery.DroppedBytes = st.Size() - end
		if err := s.f.Truncate(end); err != nil {
			return fmt.Errorf("chain: truncating torn tail: %w", err)
		}
		if err := s.f.Sync(); err != nil {
			return fmt.Errorf("chain: %w", err)
		}
		return nil
	}
	if s.readOnly && errors.As(scanErr, &re) {
		// Records reports the damage in order, after the good records, so
		// that a verifier can name the first bad event.
		return nil
	}
	return scanErr
}

// scanRecords reads records from the header to size, calling fn (if not
// nil) with each. It returns the end offset of the last good record, the
// number of good records and a *RecordError for a damaged one.
func scanRecords(f io.ReaderAt, size int64, fn func(uint64, []byte) error) (int64, uint64, error) {
	off := int64(len(fileMagic))
	r := bufio.NewReaderSize(io.NewSectionReader(f, off, size-off), 1<<16)
	var seq uint64
	var lenb [4]byte
	for off < size {
		if _, err := io.ReadFull(r, lenb[:]); err != nil {
			return off, seq, &RecordError{seq, off, ErrTornTail}
		}
		n := int64(binary.BigEndian.Uint32(lenb[:]))
		switch {
		case n == 0 && zeroFrom(f, off, size):
			// A tail the file system extended but never wrote.
			return off, seq, &RecordError{seq, off, ErrTornTail}
		case n == 0 || n > MaxEventSize:
			return off, seq, &RecordError{seq, off, fmt.Errorf("%w: length %d", ErrCorrupt, n)}
		case off+4+n+4 > size:
			return off, seq, &RecordError{seq, off, ErrTornTail}
		}
		buf := make([]byte, n+4)
		if _, err := io.ReadFull(r, buf); err != nil {
			return off, seq, &RecordError{seq, off, fmt.Errorf("%w: %v", ErrCorrupt, err)}
		}
		crc := crc32.Update(crc32.Checksum(lenb[:], castagnoli), castagnoli, buf[:n])
		if crc != binary.BigEndian.Uint32(buf[n:]) {
			if end := off + 4 + n + 4; end == size || zeroFrom(f, end, size) {
				// The last record: a write that did not complete.
				return off, seq, &RecordError{seq, off, ErrTornTail}
			}
			return off, seq, &RecordError{seq, off, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)}
		}
		if fn != nil {
			if err := fn(seq, buf[:n]); err != nil {
				return off, seq, err
			}
		}
		off += 4 + n + 4
		seq++
	}
	return off, seq, nil
}

// Recovered reports what opening did to the file's tail.
func (s *FileStore) Recovered() Recovery { return s.recovery }

// Path returns the file's path.
func (s *FileStore) Path() string { return s.path }

// Append queues a record; the channel reports when its fsync is done.
func (s *FileStore) Append(data []byte) <-chan error {
	if s.readOnly {
		return errChan(ErrReadOnly)
	}
	return s.commit.Append(data)
}

// flush writes a batch of records with one write and one fsync.
func (s *FileStore) flush(batch [][]byte) error {
	total := 0
	for _, d := range batch {
		total += 8 + len(d)
	}
	buf := make([]byte, 0, total)
	for _, d := range batch {
		start := len(buf)
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(d)))
		buf = append(buf, d...)
		buf = binary.BigEndian.AppendUint32(buf, crc32.Checksum(buf[start:], castagnoli))
	}
	s.mu.Lock()
	off := s.size
	s.mu.Unlock()
	for len(buf) > 0 {
		n := len(buf)
		if s.chunk > 0 {
			n = min(n, s.chunk)
		}
		if _, err := s.f.WriteAt(buf[:n], off); err != nil {
			return fmt.Errorf("chain: writing %s: %w", s.path, err)
		}
		buf, off = buf[n:], off+int64(n)
	}
	if err := datasync(s.f); err != nil {
		return fmt.Errorf("chain: fsync %s: %w", s.path, err)
	}
	s.mu.Lock()
	s.size = off
	s.n += uint64(len(batch))
	s.mu.Unlock()
	return nil
}

// Records calls fn with every durable record in order. On a damaged record
// it returns a *RecordError naming its sequence number.
func (s *FileStore) Records(fn func(uint64, []byte) error) error {
	s.mu.Lock()
	size := s.size
	s.mu.Unlock()
	if s.readOnly {
		st, err := s.f.Stat()
		if err != nil {
			return fmt.Errorf("chain: %w", err)
		}
		size = st.Size()
	}
	_, _, err := scanRecords(s.f, size, fn)
	return err
}

// Close waits for queued records and closes the file.
func (s *FileStore) Close() error {
	var err error
	if s.commit != nil {
		err = s.commit.Close()
	}
	if cerr := s.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("chain: %w", cerr)
	}
	return err
}

// zeroFrom reports whether every byte of f from off to size is zero.
func zeroFrom(f io.ReaderAt, off, size int64) bool {
	buf := make([]byte, 1<<16)
	for off < size {
		n := min(int64(len(buf)), size-off)
		if _, err := f.ReadAt(buf[:n], off); err != nil {
			return false
		}
		for _, c := range buf[:n] {
			if c != 0 {
				return false
			}
		}
		off += n
	}
	return true
}

// datasync makes a file's data and the metadata needed to read it (its
// size) durable: fdatasync(2), which skips the timestamps fsync would also
// write.
func datasync(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for {
			serr = unix.Fdatasync(int(fd))
			if serr != unix.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	return serr
}
