// Package receipt makes and checks run receipts: signed, portable
// statements of what one ccos run did, built from the causal chain and
// checkable by anyone who has the chain's public key.
//
// # Format
//
// A receipt is a DSSE envelope (JSON: payload, payloadType, signatures)
// whose payload is an in-toto Statement v1 and whose payloadType is
// "application/vnd.in-toto+json". The signature is Ed25519 by the chain's
// checkpoint key over PAE(payloadType, payload):
//
//	"DSSEv1" SP len(payloadType) SP payloadType SP len(payload) SP payload
//
// with each length in ASCII decimal; payload and signature are standard
// base64 (readers also accept URL-safe and unpadded base64). The keyid is
// the note key's name, "+" and its key hash in eight hex digits, the first
// two fields of the verifier key ("ccos chain keygen" writes it).
//
// The statement's subjects are the plan ("plan", SHA-256 of its source,
// which is the plan hash) and, when the guest reported one, the plan's
// value ("value", SHA-256 of its canonical RTFS text). Its predicate type
// is PredicateType, "https://github.com/ccos-project/ccos/receipt/v1", and
// the predicate has these fields (JSON names):
//
//	run          session; plan, plan_hash; agent, config_digest (sha256 of
//	             the decoded agent config); security_level, risk_tier,
//	             policy; isolation (the config's mode), provider, sandboxes
//	             (how many were started); started, finished (RFC 3339 host
//	             times of the run's first and last events); ok, failure;
//	             value_sha256; plan_error {type, message} (the guest's report)
//	attestation  the host's last verdict and measurements by artifact
//	steps        per admitted step, in plan order: name; profile
//	             {capabilities, domains, methods, max_time_ms, retry, seed,
//	             dynamic}; outcome (ok, failed, unfinished, not-run);
//	             error; attempts; duration_ms; calls (host capability calls)
//	egress       every proxy decision: seq, step, action, kind, method,
//	             host, port, rule, status. No bodies, headers or reasons.
//	chain        checkpoint (the signed note), first_seq, last_seq, events
//	             (how many of them are the run's), last_leaf_hash (RFC 6962
//	             leaf hash of event last_seq, hex), inclusion_proof (hex
//	             hashes proving that leaf in the checkpoint's tree)
//
// The events of a run are those whose session is the run's id or one of
// its restarts (id-r1, id-r2, ...), below the checkpoint's size. The
// version is in the predicate type: a change to the meaning of a field is
// a new version; readers of v1 reject unknown fields.
//
// # Checking
//
// Open checks what a receipt says about itself: the envelope signature,
// the statement, its subjects against its run, the checkpoint's signature
// (the same key) and the inclusion proof. Verify also reads the chain:
// it verifies the chain, checks that the receipt's checkpoint is one of
// this chain's trees, rebuilds the statement from the run's events and
// names the first field that differs (*MismatchError).
//
// What a receipt proves, and what it does not, is in docs/SECURITY.md: it
// binds the host's key to every claim; it does not make the host honest.
package receipt
