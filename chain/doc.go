// Package chain is the causal chain: the tamper-evident audit trail of a
// ccos run. Every event is encoded canonically, linked to its predecessor by
// hash, appended as a leaf to an RFC 6962 Merkle tree, and the tree is
// anchored from time to time by a checkpoint signed with Ed25519 in the C2SP
// signed-note format.
//
// # Event encoding (version 1)
//
// An event's canonical encoding is a byte string built from its fields in
// this fixed order, with no padding and nothing after the last field:
//
//	magic    4 bytes   "CCEV"
//	version  1 byte    0x01
//	seq      8 bytes   big-endian uint64: the event's position, from 0
//	time     8 bytes   big-endian int64: host time, nanoseconds since the Unix epoch (UTC)
//	origin   1 byte    0x01 host, 0x02 guest
//	parent   32 bytes  SHA-256 hash of the event at seq-1; 32 zero bytes for seq 0
//	type     str       one of the Type constants, at most 64 bytes
//	id       str       event id, 1 to 256 bytes
//	session  str       session id, at most 256 bytes
//	plan     str       plan id, at most 256 bytes
//	intent   str       intent id, at most 256 bytes
//	step     str       step id, at most 256 bytes
//	payload  str       rtfs.Print of the payload value, 1 byte to MaxPayload
//
// where str is a 4-byte big-endian length followed by that many bytes. Every
// str is valid UTF-8; the ids and the type contain no control characters
// (U+0000–U+001F, U+007F). The payload is canonical RTFS text: it reads as
// exactly one form, and rtfs.Print of that form gives the same bytes back
// (so two encodings of one event cannot differ). A nil payload is "nil".
//
// Decoding is strict: a short input, wrong magic or version, unknown origin
// or type, an over-long or invalid field, a non-canonical payload and bytes
// after the payload are each reported with a named error (ErrTruncated,
// ErrMagic, ErrVersion, ErrOrigin, ErrUnknownType, ErrFieldTooLong,
// ErrInvalidText, ErrEmptyID, ErrPayloadSyntax, ErrPayloadNotCanonical,
// ErrTrailingData, ErrEventTooLarge), wrapped in a *DecodeError that names
// the field.
//
// # Hashes and the tree
//
// The event hash is SHA-256 of the canonical encoding, so it covers every
// field, the sequence number and the parent hash included. The hash chain
// is the parent field: event n carries the hash of event n-1. The Merkle
// tree is the RFC 6962 tree (github.com/transparency-dev/merkle) whose leaf
// n is the canonical encoding of event n: leaf hash SHA-256(0x00 || event),
// interior hash SHA-256(0x01 || left || right). An event's sequence number
// is its leaf index.
//
// # Checkpoints
//
// A checkpoint is the C2SP tlog-checkpoint body with one extension line
//
//	<origin>\n
//	<tree size, decimal>\n
//	<base64 (std, padded) of the 32-byte root hash>\n
//	ccos-event <base64 (std, padded) of the 32-byte event binding>\n
//
// signed with golang.org/x/mod/sumdb/note by an Ed25519 key whose name is
// the origin. It is itself recorded in the chain as an event of type
// TypeCheckpoint whose payload is the whole signed note as an RTFS string,
// and whose seq equals the tree size it signs: a checkpoint at seq n
// commits to events 0..n-1, and later checkpoints commit to it.
//
// The event binding (EventBinding) is SHA-256 of the checkpoint event's
// canonical encoding with its payload replaced by nil: the signature thus
// covers the checkpoint event's own fields (seq, time, origin, parent, id,
// session, plan, intent, step), which the tree it signs cannot contain. The
// recorder stamps the event first, signs, then sets the payload. A
// checkpoint event whose body has no binding line (ErrCheckpointUnbound), or
// whose fields do not hash to its binding (ErrCheckpointEvent), fails
// verification. ParseCheckpointBody accepts the three lines alone (a
// checkpoint that binds no event) and refuses every other extension line.
//
// Keys are note key strings: a signer "PRIVATE+KEY+<name>+<hash>+<base64>"
// and a verifier "<name>+<hash>+<base64>" (GenerateKey). A key file holds
// one such string and optional trailing white space.
//
// # Payloads
//
// Each event type has one payload type in this package (payload.go); its
// Encode method gives the RTFS value recorded and DecodePayload decodes it
// strictly: a map whose keys are keywords, every required field present
// with the right kind of value, no field the type does not define (errors
// are a *PayloadError naming the field: ErrPayloadShape, ErrPayloadMissing,
// ErrPayloadKind, ErrPayloadUnknown, ErrPayloadValue). Fields marked
// optional are written only when they are not empty or zero; fields added
// after a type was first recorded are optional, so older chains decode.
//
//	plan.admitted      PlanAdmitted {:name "" :plan-hash "" :risk-tier :kw :policy "" :security-level :kw
//	                     :steps [{:name "" :capabilities [:kw] :domains [""] :max-time-ms N
//	                              ?:methods [""] ?:retry N ?:seed "" ?:dynamic true}]
//	                     ?:agent "" ?:config-digest "sha256:<hex>" ?:isolation :kw}
//	plan.rejected      PlanRejected {:error ""}
//	plan.finished      PlanFinished {:ok bool ?:failure "" ?:value-sha256 "<hex>"}
//	attestation        Attestation {:verdict :kw :measurements {:artifact ""}
//	                     ?:artifact "" ?:expected "" ?:actual "" ?:error ""}
//	step.started       StepStarted nil (first attempt) | {:attempt N>=2 :cause ""}
//	step.finished      StepFinished {:ok bool :error "" :duration-ms N}
//	capability.call    CapabilityCall {:capability :kw :args [value...] ?:ordinal N ?:key ""}
//	capability.result  CapabilityResult {:capability :kw :ok true ?:replayed "" :value v}
//	                     | {:capability :kw :ok false ?:replayed "" :error ""}
//	proxy.decision     ProxyDecision {:action :kw :kind "" :method "" :host "" :port N :rule "" :reason ""
//	                     ?:addr "" ?:status N ?:dlp [""] ?:error "" ?:secrets [""]}
//	sandbox.lifecycle  SandboxLifecycle {:event :kw ?:provider "" ?:sandbox "" ?:error ""
//	                     ?:reason (:exited | "") ?:total-ms N ?:detail ""
//	                     ?:limit "" ?:value N ?:unit ""}
//	guest.event        GuestEvent {:done :value :value v} | {:done :error :type "" :message "" :where ""}
//	                     | {:replayed :kw :key ""}
//	checkpoint         CheckpointNote "<signed note>"
//
// The host records the arguments of a capability it runs for the guest as
// the strings of their RTFS text, exactly as the guest sent them; the guest
// records the values of the calls it runs itself. A payload whose text is
// larger than the recorder's bound is replaced by {:truncated true :bytes N
// :sha256 "<hex of the text>"}, which decodes as *Truncated for any type.
// Guest claims (capability.call, capability.result, guest.event from the
// guest) must decode as their type's payload, or the host refuses them.
//
// # Stores
//
// A Store keeps the encoded events in order: in memory (StorageInMemory),
// in an append-only file (StorageAppendFile) or in SQLite
// (StorageSQLite). The append file is
//
//	header   8 bytes  "CCOSCHN1"
//	record*  length (4 bytes, big-endian, 1 to MaxEventSize)
//	         event (length bytes, the canonical encoding)
//	         crc (4 bytes, big-endian CRC-32C (Castagnoli) of length and event)
//
// A record that runs past the end of the file, a bad checksum on the last
// record, or a zero-filled end of the file is a torn tail: the write it
// belongs to never returned. Opening
// for writing truncates it and reports how many bytes were dropped; opening
// read-only reports it as an error. A bad checksum with records after it is
// corruption and is never truncated. The SQLite store keeps one table,
// events(seq INTEGER PRIMARY KEY, data BLOB NOT NULL), in WAL mode with
// synchronous=FULL.
//
// Both durable stores commit in groups: concurrent appends queued while a
// write is in progress are written together and made durable by one
// fdatasync (one transaction for SQLite); each Append returns only after the
// sync (commit) that covers it.
//
// # Recording and verifying
//
// A Recorder (NewRecorder) numbers events, links and hashes them, grows the
// tree, signs checkpoints (every N events, at the first event T after the
// last one, and whenever Checkpoint is called) and appends through a Store.
// Verify recomputes everything from a store's bytes and names the first bad
// sequence number; Tree gives inclusion and consistency proofs and
// CheckCheckpoint compares a chain with a checkpoint kept elsewhere.
//
// The events after the latest checkpoint event (all of them when there is
// none) are the unsigned tail: their hashes and links verify, but whoever
// can write the store can append such events, so they are protected by the
// hash chain only. Verify does not call them damage; its Report counts them
// (UnsignedTail), and `ccos chain verify` fails on them unless told
// --allow-unsigned-tail.
package chain
