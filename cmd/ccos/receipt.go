package main

import (
	"context"
	"fmt"

	"github.com/ccos-project/ccos/chain"
	"github.com/ccos-project/ccos/internal/atomicfile"
	"github.com/ccos-project/ccos/internal/input"
	"github.com/ccos-project/ccos/receipt"
	"github.com/spf13/cobra"
)

func init() {
	cmd := &cobra.Command{
		Use:   "receipt",
		Short: "Make and check signed run receipts (in-toto statements in DSSE envelopes)",
		Long: "A run receipt is an in-toto Statement v1 in a DSSE envelope, signed with the\n" +
			"chain's key: the plan and its value as subjects, and as predicate what the\n" +
			"run did as the chain recorded it (see docs/SECURITY.md for what it proves).",
	}
	cmd.AddCommand(receiptVerifyCmd(), receiptCreateCmd())
	rootCmd.AddCommand(cmd)
}

func receiptVerifyCmd() *cobra.Command {
	var key, chainPath string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "verify RECEIPT --key PUB [--chain FILE]",
		Short: "Check a receipt's signature, statement and proof; with --chain, every fact against the chain",
		Long: "verify checks the envelope's signature with PUB (the chain's verifier key, or\n" +
			"a file holding it), the statement, its subjects, the checkpoint's signature and\n" +
			"the inclusion proof of the run's last event. With --chain it also verifies the\n" +
			"chain and compares every fact of the receipt with the run's events. It exits 1\n" +
			"naming the first thing that does not hold.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := chainVerifier("", key)
			if err != nil || v == nil {
				return rejected(fmt.Sprintf("ccos receipt verify: --key: %v", err))
			}
			env, err := input.ReadFile(args[0], input.MaxSource)
			if err != nil {
				return rejected("ccos receipt verify: " + err.Error())
			}
			var st *receipt.Statement
			if chainPath == "" {
				st, err = receipt.Open(env, v)
			} else {
				s, oerr := chain.OpenReadOnly(chain.ModeForPath(chainPath), chainPath)
				if oerr != nil {
					return rejected("ccos receipt verify: " + oerr.Error())
				}
				defer s.Close()
				st, err = receipt.Verify(env, v, s)
			}
			if asJSON {
				doc := map[string]any{"receipt": args[0], "ok": err == nil, "checked_against_chain": chainPath != ""}
				if err != nil {
					doc["error"] = err.Error()
				} else {
					doc["statement"] = st
				}
				if jerr := writeJSON(cmd.OutOrStdout(), doc); jerr != nil {
					return jerr
				}
			}
			if err != nil {
				return rejected(fmt.Sprintf("%s: %v", args[0], err))
			}
			if !asJSON {
				r := st.Predicate.Run
				against := "signature, statement and inclusion proof"
				if chainPath != "" {
					against += "; every fact matches " + chainPath
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: ok (%s)\nrun %s: plan %q %s, ok=%v, provider %s, %d steps, %d egress decisions\n",
					args[0], against, r.Session, r.Plan, r.PlanHash, r.OK, r.Provider, len(st.Predicate.Steps), len(st.Predicate.Egress))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&key, "key", "", "the chain's verifier key, or a file holding it")
	cmd.Flags().StringVar(&chainPath, "chain", "", "the causal chain the run was recorded in")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result (and the statement) as JSON")
	if err := cmd.MarkFlagRequired("key"); err != nil {
		panic(err)
	}
	return cmd
}

func receiptCreateCmd() *cobra.Command {
	var key, chainPath, runID, out string
	cmd := &cobra.Command{
		Use:   "create --chain FILE --run ID --key SIGNER_FILE [--out FILE]",
		Short: "Make the signed receipt of a run recorded in a chain",
		Long: "create reads the chain, takes the events of run ID (its session id, and its\n" +
			"restarts) and the first signed checkpoint after them, and writes the receipt\n" +
			"signed with the chain's key (to --out, or standard output).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			signer, err := chain.ReadSignerFile(key)
			if err != nil {
				return rejected("ccos receipt create: " + err.Error())
			}
			s, err := chain.OpenReadOnly(chain.ModeForPath(chainPath), chainPath)
			if err != nil {
				return rejected("ccos receipt create: " + err.Error())
			}
			defer s.Close()
			env, err := receipt.ForRun(context.Background(), s, runID, signer)
			if err != nil {
				return rejected(fmt.Sprintf("ccos receipt create: %s: %v", chainPath, err))
			}
			env = append(env, '\n')
			if out == "" {
				_, err = cmd.OutOrStdout().Write(env)
				return err
			}
			if err := atomicfile.Write(out, env, 0o644); err != nil {
				return rejected("ccos receipt create: " + err.Error())
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&key, "key", "", "file holding the chain's signer key (PRIVATE+KEY+...)")
	cmd.Flags().StringVar(&chainPath, "chain", "", "the causal chain file")
	cmd.Flags().StringVar(&runID, "run", "", "the run's session id")
	cmd.Flags().StringVar(&out, "out", "", "write the receipt here instead of standard output")
	for _, f := range []string{"key", "chain", "run"} {
		if err := cmd.MarkFlagRequired(f); err != nil {
			panic(err)
		}
	}
	return cmd
}
