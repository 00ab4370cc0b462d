package guest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"

	"github.com/ccos-project/ccos/rtfs"
)

// WAL is the guest's write-ahead log of the side-effecting calls it runs
// itself, by idempotency key (see control.CallKey): "started" is written
// and synced before such a call runs, its outcome after. A retried step
// looks its calls up: a recorded outcome is returned instead of running
// the call again, and a call started without a recorded outcome is in
// doubt (it may or may not have taken effect) and is not run again.
//
// The file lives in the sandbox's tmpfs workdir, under a name the ccos.io
// capabilities refuse (capability.ReservedPrefix), so it lasts as long as
// the sandbox and the effects it records. It is a sequence of lines:
//
//	<CRC-32C of the JSON, 8 lower-case hex digits> SP <JSON record> LF
//
// The first line is {"key": SESSION, "state": "session"}: the log of
// another session (a workdir that is not fresh) is discarded on open. The
// other records are {"key": K, "state": "started", "capability": C,
// "args": A} (A the hex SHA-256 of the arguments' canonical text) or
// {"key": K, "state": "done", "value": V} (V canonical RTFS text) or
// {"key": K, "state": "done", "error": E}. A guest that died while writing
// leaves a torn last line: reading stops at the first line that is
// incomplete, fails its checksum or does not decode, and the file is cut
// there before anything is appended.
type WAL struct {
	f    *os.File // nil: in memory only
	size int64
	recs map[string]*WALEntry
}

// WALEntry is what the log says of one key.
type WALEntry struct {
	Capability string
	// Args is the digest of the call's arguments (see ArgsDigest).
	Args string
	// Done is set once the outcome is recorded: Value (canonical RTFS
	// text) or Error.
	Done  bool
	Value string
	Error string
}

// MaxWALBytes bounds the log; a side-effecting call that cannot be logged
// does not run.
const MaxWALBytes = 8 << 20

type walRecord struct {
	Key        string  `json:"key"`
	State      string  `json:"state"`
	Capability string  `json:"capability,omitempty"`
	Args       string  `json:"args,omitempty"`
	Value      *string `json:"value,omitempty"`
	Error      string  `json:"error,omitempty"`
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrWALFull is returned when the log has no room for a record.
var ErrWALFull = errors.New("the guest's write-ahead log is full")

// OpenWAL opens (creating it if needed) the log of session at path and
// reads what it holds, cutting a torn tail; path "" keeps the log in
// memory.
func OpenWAL(path, session string) (*WAL, error) {
	w := &WAL{recs: map[string]*WALEntry{}}
	if path == "" {
		return w, nil
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxWALBytes+1))
	if err != nil {
		f.Close()
		return nil, err
	}
	good := w.replay(data, session)
	if good < int64(len(data)) {
		if err := f.Truncate(good); err != nil {
			f.Close()
			return nil, fmt.Errorf("cutting the torn tail of %s: %w", path, err)
		}
	}
	if _, err := f.Seek(good, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	w.f, w.size = f, good
	if good == 0 {
		if err := w.append(walRecord{Key: session, State: "session"}); err != nil {
			f.Close()
			return nil, err
		}
	}
	return w, nil
}

// replay applies the complete, intact records of data, if they are the
// session's, and returns the length they span.
func (w *WAL) replay(data []byte, session string) int64 {
	var off int64
	for len(data) > 0 {
		nl := bytes.IndexByte(data, '\n')
		if nl < 0 {
			break
		}
		rec, ok := parseWALLine(data[:nl])
		if !ok || (off == 0) != (rec.State == "session") || (off == 0 && rec.Key != session) {
			break
		}
		w.apply(rec)
		off += int64(nl + 1)
		data = data[nl+1:]
	}
	return off
}

func parseWALLine(line []byte) (walRecord, bool) {
	var rec walRecord
	if len(line) < 10 || line[8] != ' ' {
		return rec, false
	}
	var sum [4]byte
	if _, err := hex.Decode(sum[:], line[:8]); err != nil {
		return rec, false
	}
	body := line[9:]
	want := uint32(sum[0])<<24 | uint32(sum[1])<<16 | uint32(sum[2])<<8 | uint32(sum[3])
	if crc32.Checksum(body, castagnoli) != want {
		return rec, false
	}
	if err := json.Unmarshal(body, &rec); err != nil || rec.Key == "" || (rec.State != "started" && rec.State != "done" && rec.State != "session") {
		return rec, false
	}
	return rec, true
}

func (w *WAL) apply(rec walRecord) {
	switch rec.State {
	case "started":
		w.recs[rec.Key] = &WALEntry{Capability: rec.Capability, Args: rec.Args}
	case "done":
		e := w.recs[rec.Key]
		if e == nil {
			e = &WALEntry{}
			w.recs[rec.Key] = e
		}
		e.Done, e.Error = true, rec.Error
		if rec.Value != nil {
			e.Value = *rec.Value
		}
	}
}

// Lookup returns what the log holds for key.
func (w *WAL) Lookup(key string) (WALEntry, bool) {
	e, ok := w.recs[key]
	if !ok {
		return WALEntry{}, false
	}
	return *e, true
}

// Started records, durably, that the call with key is about to run.
func (w *WAL) Started(key, capability, args string) error {
	return w.append(walRecord{Key: key, State: "started", Capability: capability, Args: args})
}

// ArgsDigest is the digest of a call's arguments the log keeps: the hex
// SHA-256 of their canonical RTFS text, as a vector.
func ArgsDigest(args []rtfs.Value) string {
	sum := sha256.Sum256([]byte(rtfs.Print(rtfs.NewVector(args...))))
	return hex.EncodeToString(sum[:])
}

// Finished records, durably, the call's outcome: its value (canonical
// RTFS text) or its error.
func (w *WAL) Finished(key, value string, callErr error) error {
	rec := walRecord{Key: key, State: "done"}
	if callErr != nil {
		rec.Error = callErr.Error()
		if rec.Error == "" {
			rec.Error = "error"
		}
	} else {
		rec.Value = &value
	}
	return w.append(rec)
}

func (w *WAL) append(rec walRecord) error {
	body, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	line := []byte(frame(string(body)))
	if w.f != nil {
		if w.size+int64(len(line)) > MaxWALBytes {
			return ErrWALFull
		}
		if _, err := w.f.Write(line); err != nil {
			return fmt.Errorf("writing the guest's write-ahead log: %w", err)
		}
		if err := w.f.Sync(); err != nil {
			return fmt.Errorf("syncing the guest's write-ahead log: %w", err)
		}
		w.size += int64(len(line))
	}
	w.apply(rec)
	return nil
}

// Close closes the log's file.
func (w *WAL) Close() error {
	if w.f == nil {
		return nil
	}
	return w.f.Close()
}

// frame makes one line of the log of a record's JSON.
func frame(body string) string {
	return fmt.Sprintf("%08x %s\n", crc32.Checksum([]byte(body), castagnoli), body)
}
