// Package archive is ccos's content-addressed store of JSON objects (plans,
// intents, checkpoints) and of the intent graph, with backup and restore.
//
// # Canonical JSON
//
// Objects are stored in the canonical form of RFC 8785 (JSON
// Canonicalization Scheme): object members sorted by the UTF-16 code units
// of their names, no white space, strings as UTF-8 with only '"', '\' and
// the control characters escaped (\b \f \n \r \t by their short escapes,
// the others as \u00xx in lower case), numbers spelled by the ECMAScript
// Number::toString rule over binary64 (so 1.0 is 1, 1e21 is 1e+21, 0.000001
// is 0.000001, 1e-7 is 1e-7, -0 is 0). The reader refuses, beyond invalid
// JSON: duplicate member names, invalid UTF-8 and lone surrogates, numbers
// that are not finite binary64 values, integer literals (no fraction or
// exponent) whose value the canonical spelling would change, such as
// 9007199254740993 (2^53+1, which a binary64 rounds to 2^53: write such
// numbers as strings), and nesting deeper than MaxDepth. Integers up to
// 2^53 in magnitude are always exact. Only objects are
// stored. An object's hash is the lower-case hex SHA-256 of its canonical
// bytes.
//
// # On-disk layout
//
//	DIR/lock                       flock(2) lock file (empty)
//	DIR/index.json                 the index, canonical JSON
//	DIR/aa/bb/<hash>.json          an object; aa and bb are the first four hex digits
//	DIR/.tmp-*, DIR/aa/bb/.tmp-*   temp files of a write in progress
//
// index.json is
//
//	{"format":"ccos.archive.index/1",
//	 "objects":{"<hash>":{"kind":"ccos.plan","path":"aa/bb/<hash>.json","size":123},...},
//	 "refs":{"intent-graph":"<hash>"}}
//
// where kind is the object's own "kind" member when it is a string (omitted
// otherwise), path is always aa/bb/<hash>.json (any other path makes the
// index unreadable: it is never followed) and size is the byte length.
// Refs are named pointers to objects, changed by compare-and-swap.
//
// # Writing
//
// Put canonicalizes and hashes outside the lock, then, under the exclusive
// flock of DIR/lock: re-reads index.json if another writer replaced it; if
// the index lists the object and its file exists, returns (a no-op);
// otherwise creates aa/ and aa/bb/ if needed (fsyncing each parent), writes
// a temp file in aa/bb/, fsyncs and closes it, renames it to <hash>.json,
// fsyncs aa/bb/; then writes the new index the same way (temp file in DIR,
// fsync, rename over index.json, fsync DIR). When Put returns, both are
// durable. A reader never sees a partial object or index, because both only
// appear by rename.
//
// A writer that dies leaves at worst a temp file and an object renamed into
// place but not indexed. Open recovers under the exclusive lock: it removes
// temp files (no live writer can own one: temp files exist only while their
// writer holds the lock) and indexes every unindexed object file whose
// content is canonical and hashes to its name; damaged files are left for
// Verify to report. OpenReadOnly changes nothing. Delete persists the index
// without the entry before removing the file, so a crash in between leaves
// an unindexed complete object that the next Open indexes again.
//
// # Verification
//
// Verify re-reads index.json and every file and reports every problem, each
// a Mismatch: an unreadable index, an indexed object whose file is missing,
// whose content does not hash to its name, is not JSON, is not canonical, or
// whose size or kind disagrees with the index; an object file not in the
// index; a temp file; any other file; a ref or intent graph member naming an
// object that is not indexed.
//
// # Typed objects and the intent graph
//
// Plan, Checkpoint, Receipt and Intent are stored with a "kind" member
// (KindPlan, KindCheckpoint, KindReceipt, KindIntent, the intent wrapped as
// {"kind":..,"intent":..}
// so its own members never collide). The intent graph is a KindIntentGraph
// object {"kind":..,"intents":{id: intent hash},"edges":[...]} named by the
// ref GraphRef.
//
// # Backup format 1.1
//
// A backup is one JSON object: "version" ("1.1"; any "1.x" is read, other
// majors are refused with ErrBackupVersion), "timestamp" (Unix seconds),
// "intents" (id to intent), "edges" (array of {"from","to","edge_type",
// "weight","metadata"}; "type" is read as "edge_type"), "manifest"
// (optional object) and "rtfs" (optional string: the same graph as RTFS,
// see Snapshot). Unknown members of the backup, of intents and of edges are
// kept. The JSON is authoritative; a snapshot must read with rtfs.Read and
// name the same intents and edges (ErrSnapshotMismatch otherwise).
package archive
