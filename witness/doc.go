// Package witness is a C2SP tlog-witness for ccos causal chains, and the
// client a chain uses to get its checkpoints cosigned.
//
// A witness knows a set of logs, each by its origin and Ed25519 note key
// (a chain's checkpoint key). For each log it remembers the size and root
// of the last checkpoint it cosigned, and it cosigns a new checkpoint only
// when that checkpoint extends it: so two different histories of one log
// can never both carry its cosignature, and a log that shows one history
// to some and another to others is caught by anyone who checks for the
// cosignature of a witness both sides used.
//
// # Protocol (C2SP tlog-witness)
//
//	POST <prefix>/add-checkpoint
//
//	old <size>\n                 decimal, no leading zeros
//	<base64 hash>\n              0 to 63 lines: the RFC 6962 consistency
//	...                          proof from <size> to the checkpoint's size
//	\n
//	<signed checkpoint note>     origin, size, root, [extension lines],
//	                             blank line, signature lines
//
// Answers: 200 with the witness's cosignature line(s) ("— <name>
// <base64>\n", cosignature/v1: the Ed25519 signature over "cosignature/v1\n
// time <unix seconds>\n" and the checkpoint body, prefixed by the 8-byte
// time); 404 for a log the witness does not know; 403 when no known log
// key's signature verifies; 400 for a malformed request or an old size
// above the checkpoint's; 409 with Content-Type text/x.tlog.size and body
// "<size>\n" when the old size is not the last size the witness cosigned
// (the client sends again from that size), and 409 when the sizes are
// equal but the roots differ (a fork); 422 when the consistency proof
// does not verify (a fork, or a tree that is not a prefix).
//
// # State
//
// The state is one SQLite database (WAL, synchronous=FULL): table logs
// (origin, size, root) with the last cosigned checkpoint of each log,
// updated in the same critical section as the check and before the
// cosignature is returned; table refused (time, origin, reason, request)
// keeps every refused request that a known log key signed, as evidence.
// Losing the database makes the witness forget what it cosigned: a
// witness whose state is lost must be retired with its key, not restarted.
//
// # Cosignatures and keys
//
// Cosignatures follow C2SP tlog-cosignature (cosignature/v1), made and
// checked with github.com/transparency-dev/formats/note. A witness key is
// an Ed25519 note key (`ccos chain keygen`); its verifier for clients is
// the cosignature/v1 form of the verifier key (NewVerifier accepts both).
// OpenCosigned checks a checkpoint that carries cosignatures.
package witness
