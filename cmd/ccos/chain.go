package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/ccos-project/ccos/chain"
	"github.com/ccos-project/ccos/internal/input"
	"github.com/ccos-project/ccos/rtfs"
	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"
)

func init() {
	cmd := &cobra.Command{
		Use:   "chain",
		Short: "Inspect, verify and anchor a causal chain (the audit log)",
		Long: "chain works on a causal chain file: an append_file chain, or a sqlite one\n" +
			"when the name ends in .db or .sqlite. Checkpoint signatures are checked\n" +
			"with --key VERIFIER (a verifier key or a file holding one), or with the\n" +
			"verifier stored beside the chain in FILE.pub.",
	}
	cmd.AddCommand(chainVerifyCmd(), chainShowCmd(), chainProveCmd(), chainCheckpointCmd(), chainKeygenCmd())
	rootCmd.AddCommand(cmd)
}

func chainVerifyCmd() *cobra.Command {
	var key, external string
	var witnesses []string
	var asJSON, allowTail bool
	cmd := &cobra.Command{
		Use:   "verify FILE [--witness KEY]...",
		Short: "Recompute every hash, the hash chain, the Merkle root and every checkpoint signature",
		Long: "verify reads the whole chain read-only and recomputes each event's hash,\n" +
			"the parent links, the Merkle tree and every checkpoint (signature, size,\n" +
			"root, and the checkpoint event's own fields). On damage it exits 1 naming\n" +
			"the first bad sequence number. Events after the latest checkpoint are\n" +
			"covered by no signature (anyone who can write the file can append them):\n" +
			"verify exits 1 for such an unsigned tail unless --allow-unsigned-tail is\n" +
			"given, and --json reports it in \"unsigned_tail\" either way.\n" +
			"--checkpoint NOTE checks the chain against a signed checkpoint kept\n" +
			"elsewhere: a chain cut short or rewritten before that size fails.\n" +
			"--witness KEY (repeatable) requires the cosigned checkpoint (FILE.witnessed,\n" +
			"from `ccos chain checkpoint --witness`, or --checkpoint) to carry a valid\n" +
			"cosignature of that witness, and the chain to be consistent with it.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := args[0]
			v, err := chainVerifier(path, key)
			if err != nil {
				return rejected(err.Error())
			}
			s, err := chain.OpenReadOnly(chain.ModeForPath(path), path)
			if err != nil {
				return rejected(err.Error())
			}
			defer s.Close()
			tree, rep, verr := chain.VerifyTree(s, v)
			if verr == nil && external != "" {
				verr = checkExternalCheckpoint(tree, external, v)
			}
			if verr == nil && len(witnesses) > 0 {
				verr = checkWitnessed(tree, path, external, v, witnesses)
			}
			tailRefused := verr == nil && rep.UnsignedTail > 0 && !allowTail
			if asJSON {
				doc := map[string]any{"file": path, "ok": verr == nil && !tailRefused, "events": rep.Events,
					"checkpoints": rep.Checkpoints, "root": b64(rep.Root),
					"unsigned_tail": rep.UnsignedTail, "signed_events": rep.Events - rep.UnsignedTail}
				if tailRefused {
					doc["error"] = unsignedTailMessage(rep)
				}
				if verr != nil {
					doc["error"] = verr.Error()
					if seq, ok := chain.BadSeq(verr); ok {
						doc["bad_seq"] = seq
					}
				}
				if err := writeJSON(cmd.OutOrStdout(), doc); err != nil {
					return err
				}
			}
			if verr != nil {
				msg := fmt.Sprintf("%s: damaged: %v", path, verr)
				if seq, ok := chain.BadSeq(verr); ok {
					msg = fmt.Sprintf("%s: first bad event: seq %d: %v", path, seq, errors.Unwrap(verr))
				}
				return rejected(msg)
			}
			if tailRefused {
				return rejected(fmt.Sprintf("%s: %s", path, unsignedTailMessage(rep)))
			}
			if !asJSON {
				w := cmd.OutOrStdout()
				fmt.Fprintf(w, "%s: ok: %d events, %d checkpoints, root %s\n", path, rep.Events, rep.Checkpoints, b64(rep.Root))
				if rep.Last != nil {
					fmt.Fprintf(w, "latest checkpoint: %s size %d root %s\n", rep.Last.Origin, rep.Last.Size, b64(rep.Last.Root))
				}
				if rep.UnsignedTail > 0 {
					fmt.Fprintf(w, "accepted with --allow-unsigned-tail: %s\n", unsignedTail(rep))
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&allowTail, "allow-unsigned-tail", false, "exit 0 even when events follow the latest checkpoint (they are protected by the hash chain only)")
	cmd.Flags().StringVar(&key, "key", "", "verifier key (or a file holding it) for checkpoint signatures")
	cmd.Flags().StringVar(&external, "checkpoint", "", "file holding a signed checkpoint kept elsewhere")
	cmd.Flags().StringArrayVar(&witnesses, "witness", nil, "require a cosignature of the witness with this verifier key (or a file holding it); repeatable")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

// unsignedTail says which events no signature covers.
func unsignedTail(rep *chain.Report) string {
	first := rep.Events - rep.UnsignedTail
	switch {
	case rep.Last == nil:
		return fmt.Sprintf("the chain has no checkpoint: no signature covers its %d events, only the hash chain", rep.Events)
	case rep.UnsignedTail == 1:
		return fmt.Sprintf("event %d follows the latest checkpoint: no signature covers it, only the hash chain", first)
	}
	return fmt.Sprintf("events %d to %d follow the latest checkpoint: no signature covers them, only the hash chain", first, rep.Events-1)
}

// unsignedTailMessage is the refusal of an unsigned tail.
func unsignedTailMessage(rep *chain.Report) string {
	return unsignedTail(rep) + " (sign them with ccos chain checkpoint, or pass --allow-unsigned-tail)"
}

// checkExternalCheckpoint checks the chain's tree against a signed
// checkpoint note in a file.
func checkExternalCheckpoint(tree *chain.Tree, path string, v note.Verifier) error {
	if v == nil {
		return fmt.Errorf("--checkpoint: %w", chain.ErrNoVerifier)
	}
	msg, err := input.ReadFile(path, input.MaxSmall)
	if err != nil {
		return err
	}
	c, err := chain.OpenCheckpoint(msg, v)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := chain.CheckCheckpoint(tree, c); err != nil {
		return fmt.Errorf("against %s: %w", path, err)
	}
	return nil
}

func chainShowCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show FILE",
		Short: "Print the events of a chain, one per line (or as JSON)",
		Long: "show prints every event: sequence number, host time, origin (host, or guest\n" +
			"for what the guest claims), type, ids and the payload in canonical RTFS.\n" +
			"It checks hashes and links as it reads and exits 1 at the first damage.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := args[0]
			s, err := chain.OpenReadOnly(chain.ModeForPath(path), path)
			if err != nil {
				return rejected(err.Error())
			}
			defer s.Close()
			events, _, _, lerr := chain.Load(s, nil)
			w := cmd.OutOrStdout()
			if asJSON {
				list := make([]map[string]any, 0, len(events))
				for _, e := range events {
					list = append(list, eventJSON(e))
				}
				doc := map[string]any{"file": path, "events": list}
				if lerr != nil {
					doc["error"] = lerr.Error()
				}
				if err := writeJSON(w, doc); err != nil {
					return err
				}
			} else {
				for _, e := range events {
					writeEventLine(w, e)
				}
			}
			if lerr != nil {
				return rejected(fmt.Sprintf("%s: %v", path, lerr))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the events as JSON")
	return cmd
}

func writeEventLine(w io.Writer, e *chain.Event) {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s %s %s", e.Seq, e.Time.Format("2006-01-02T15:04:05.000000000Z"), e.Origin, e.Type)
	for _, f := range []struct{ k, v string }{{"session", e.Session}, {"plan", e.Plan}, {"intent", e.Intent}, {"step", e.Step}} {
		if f.v != "" {
			fmt.Fprintf(&b, " %s=%s", f.k, f.v)
		}
	}
	if e.Type == chain.TypeCheckpoint {
		if c, ok := checkpointOf(e); ok {
			fmt.Fprintf(&b, " origin=%s size=%d root=%s", c.Origin, c.Size, b64(c.Root))
		}
	} else {
		b.WriteString(" " + rtfs.Print(e.Payload))
	}
	fmt.Fprintln(w, b.String())
}

// checkpointOf parses (without checking the signature) the checkpoint a
// checkpoint event carries.
func checkpointOf(e *chain.Event) (*chain.Checkpoint, bool) {
	s, ok := e.Payload.(rtfs.String)
	if !ok {
		return nil, false
	}
	i := strings.LastIndex(s.V, "\n\n")
	if i < 0 {
		return nil, false
	}
	c, err := chain.ParseCheckpointBody(s.V[:i+1])
	return c, err == nil
}

func eventJSON(e *chain.Event) map[string]any {
	data, _ := chain.Encode(e)
	return map[string]any{
		"seq": e.Seq, "id": e.ID, "time": e.Time.Format("2006-01-02T15:04:05.000000000Z"),
		"origin": e.Origin.String(), "type": string(e.Type),
		"session": e.Session, "plan": e.Plan, "intent": e.Intent, "step": e.Step,
		"parent": e.Parent.String(), "hash": chain.HashOf(data).String(),
		"payload": rtfs.Print(e.Payload),
	}
}

func chainProveCmd() *cobra.Command {
	var key string
	var index uint64
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "prove FILE --index N",
		Short: "Print and check an inclusion proof of event N against the latest checkpoint",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := args[0]
			v, err := chainVerifier(path, key)
			if err != nil {
				return rejected(err.Error())
			}
			s, err := chain.OpenReadOnly(chain.ModeForPath(path), path)
			if err != nil {
				return rejected(err.Error())
			}
			defer s.Close()
			inc, err := chain.ProveInclusion(s, v, index)
			switch {
			case errors.Is(err, chain.ErrNotCovered):
				return rejected(fmt.Sprintf("%s: %v; run ccos chain checkpoint", path, err))
			case err != nil:
				return rejected(fmt.Sprintf("%s: %v", path, err))
			}
			cp, leaf, proof := inc.Checkpoint, inc.LeafHash, inc.Proof
			hashes := make([]string, len(proof))
			for i, h := range proof {
				hashes[i] = b64(h)
			}
			w := cmd.OutOrStdout()
			if asJSON {
				return writeJSON(w, map[string]any{
					"index": index, "leaf_hash": b64(leaf), "checkpoint": string(cp.Note),
					"tree_size": cp.Size, "root": b64(cp.Root), "proof": hashes,
					"signature_checked": v != nil, "verified": true,
				})
			}
			fmt.Fprintf(w, "event %d leaf hash %s\n", index, b64(leaf))
			fmt.Fprintf(w, "checkpoint %s size %d root %s\n", cp.Origin, cp.Size, b64(cp.Root))
			fmt.Fprintf(w, "inclusion proof (%d hashes):\n", len(hashes))
			for _, h := range hashes {
				fmt.Fprintln(w, "  "+h)
			}
			if v == nil {
				fmt.Fprintln(w, "verified against the checkpoint root (signature not checked: no verifier key)")
			} else {
				fmt.Fprintln(w, "verified against the signed checkpoint")
			}
			return nil
		},
	}
	cmd.Flags().Uint64Var(&index, "index", 0, "sequence number of the event to prove")
	cmd.Flags().StringVar(&key, "key", "", "verifier key (or a file holding it) for the checkpoint signature")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the proof as JSON")
	if err := cmd.MarkFlagRequired("index"); err != nil {
		panic(err)
	}
	return cmd
}

func chainCheckpointCmd() *cobra.Command {
	var key string
	var witnesses []string
	cmd := &cobra.Command{
		Use:   "checkpoint FILE --key SIGNER_FILE [--witness URL]...",
		Short: "Sign the chain's current tree, append the checkpoint and print it",
		Long: "checkpoint opens the chain for writing (a torn tail is truncated and\n" +
			"reported), signs its tree with the key in SIGNER_FILE, appends the\n" +
			"checkpoint event and prints the signed note. The verifier is stored in\n" +
			"FILE.pub when that file does not exist yet. With --witness URL (repeatable)\n" +
			"each witness (C2SP tlog-witness, e.g. `ccos witness`) is asked to cosign it;\n" +
			"the note with every cosignature is kept in FILE.witnessed and printed.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := args[0]
			b, err := input.ReadFile(key, input.MaxSmall)
			if err != nil {
				return rejected(err.Error())
			}
			signer, err := chain.ParseSigner(string(b))
			if err != nil {
				return rejected(err.Error())
			}
			vkey, err := chain.VerifierOf(string(b))
			if err != nil {
				return rejected(err.Error())
			}
			if err := storeVerifierBeside(path, vkey); err != nil {
				return rejected(err.Error())
			}
			s, err := chain.Open(chain.ModeForPath(path), path)
			if err != nil {
				return rejected(err.Error())
			}
			rec, err := chain.NewRecorder(s, signer, chain.Options{})
			if err != nil {
				s.Close()
				return rejected(fmt.Sprintf("%s: %v", path, err))
			}
			if rc := rec.Recovered(); rc.DroppedBytes > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "%s: truncated a torn tail of %d bytes at offset %d\n", path, rc.DroppedBytes, rc.TruncatedFrom)
			}
			c, err := rec.Checkpoint(context.Background())
			if cerr := rec.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return rejected(fmt.Sprintf("%s: %v", path, err))
			}
			out := c.Note
			if len(witnesses) > 0 {
				if out, err = witnessCheckpoint(path, c, witnesses); err != nil {
					return rejected(fmt.Sprintf("%s: %v", path, err))
				}
			}
			_, err = cmd.OutOrStdout().Write(out)
			return err
		},
	}
	cmd.Flags().StringVar(&key, "key", "", "file holding the signer key (PRIVATE+KEY+...)")
	cmd.Flags().StringArrayVar(&witnesses, "witness", nil, "ask the witness at this URL to cosign the checkpoint (repeatable)")
	if err := cmd.MarkFlagRequired("key"); err != nil {
		panic(err)
	}
	return cmd
}

// storeVerifierBeside writes vkey to FILE.pub unless it exists; an existing
// one must hold the same key.
func storeVerifierBeside(path, vkey string) error {
	pub := path + ".pub"
	b, err := input.ReadFile(pub, input.MaxSmall)
	switch {
	case err == nil:
		if strings.TrimSpace(string(b)) != vkey {
			return fmt.Errorf("%s holds another verifier than this key's (%s)", pub, vkey)
		}
		return nil
	case errors.Is(err, os.ErrNotExist):
		return chain.WriteKeyFile(pub, vkey, 0o644)
	}
	return err
}

func chainKeygenCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "keygen NAME --out FILE",
		Short: "Generate an Ed25519 checkpoint key: signer in FILE, verifier in FILE.pub",
		Long: "keygen writes a signed-note signer key (PRIVATE+KEY+NAME+...) to FILE with\n" +
			"mode 0600 and its verifier to FILE.pub, and prints the verifier. NAME is the\n" +
			"checkpoint origin, for example ccos.example.com/agent-1.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := os.Stat(out); err == nil {
				return rejected(fmt.Sprintf("%s exists; not overwriting a key", out))
			}
			skey, vkey, err := chain.GenerateKey(args[0])
			if err != nil {
				return rejected(err.Error())
			}
			if err := chain.WriteKeyFile(out, skey, 0o600); err != nil {
				return rejected(err.Error())
			}
			if err := chain.WriteKeyFile(out+".pub", vkey, 0o644); err != nil {
				return rejected(err.Error())
			}
			fmt.Fprintln(cmd.OutOrStdout(), vkey)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "file to write the signer key to")
	if err := cmd.MarkFlagRequired("out"); err != nil {
		panic(err)
	}
	return cmd
}

// chainVerifier resolves --key (a verifier key, or a file holding one) or
// else FILE.pub; it returns nil when there is neither.
func chainVerifier(path, key string) (note.Verifier, error) {
	if key != "" {
		if v, err := chain.ParseVerifier(key); err == nil {
			return v, nil
		}
		return chain.ReadVerifierFile(key)
	}
	v, err := chain.ReadVerifierFile(path + ".pub")
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return v, err
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
