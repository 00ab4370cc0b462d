package main

import (
	"context"
	"fmt"

	"github.com/ccos-project/ccos/chain"
	"github.com/ccos-project/ccos/replay"
	"github.com/ccos-project/ccos/rtfs"
	"github.com/ccos-project/ccos/sandbox"
	"github.com/spf13/cobra"
)

func init() {
	var chainPath, runID, key string
	var asJSON bool
	var af admitFlags
	var ag agentFlags
	var ef engineFlags
	cmd := &cobra.Command{
		Use:   "replay --chain FILE --run ID PLAN",
		Short: "Run a recorded plan again, host calls answered from the chain, and compare",
		Long: "replay verifies the chain (with --key, or FILE.pub), admits PLAN again under\n" +
			"the config, and runs it in a fresh sandbox with every host capability\n" +
			"answered from run ID's recorded results, in order: nothing leaves the host.\n" +
			"It reports whether every step outcome, every host call and the value are the\n" +
			"same, and exits 1 naming the first divergence (step and call). PLAN must be\n" +
			"the plan the run recorded (same plan hash).",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := chainVerifier(chainPath, key)
			if err != nil {
				return rejected("ccos replay: " + err.Error())
			}
			if v == nil {
				return rejected(fmt.Sprintf("ccos replay: the chain's verifier key is needed to trust its record (--key, or %s.pub)", chainPath))
			}
			s, err := chain.OpenReadOnly(chain.ModeForPath(chainPath), chainPath)
			if err != nil {
				return rejected("ccos replay: " + err.Error())
			}
			events, _, _, err := chain.Load(s, v)
			s.Close()
			if err != nil {
				return rejected(fmt.Sprintf("ccos replay: %s does not verify, nothing was replayed: %v", chainPath, err))
			}
			eng, closeEng, err := ef.open(nil)
			if err != nil {
				return err
			}
			defer closeEng()
			// The replay records into a chain of its own, never the agent's.
			ag.chainPath, ag.chainKey, ag.archiveDir = "", "", ""
			a, err := openAgent(eng, cmd.ErrOrStderr(), af, ag)
			if err != nil {
				return err
			}
			in, err := planInput(args[0], af.approvals)
			if err != nil {
				return err
			}
			ad, err := a.Admit(in)
			if err != nil {
				return admissionError(err)
			}
			prov, err := a.Provider(ad.Context.Isolation)
			if err != nil {
				return rejected("ccos replay: " + err.Error())
			}
			rep, err := replay.Run(context.Background(), replay.Request{Events: events, Run: runID, Plan: ad.Plan,
				Admission: ad.Admission, Caps: a.Capabilities(), Provider: prov, Spec: sandbox.Spec{}})
			if err != nil {
				return rejected("ccos replay: " + err.Error())
			}
			return printReplay(cmd, rep, runID, asJSON)
		},
	}
	af.register(cmd)
	ef.register(cmd)
	cmd.Flags().StringVar(&ag.provider, "provider", "auto", "sandbox provider for the replay (as for ccos run)")
	cmd.Flags().BoolVar(&ag.allowWeaker, "allow-weaker", false, "allow --provider to give weaker isolation than the config asks for")
	cmd.Flags().StringVar(&chainPath, "chain", "", "the causal chain the run was recorded in")
	cmd.Flags().StringVar(&runID, "run", "", "the run's session id")
	cmd.Flags().StringVar(&key, "key", "", "the chain's verifier key, or a file holding it (default FILE.pub)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	for _, f := range []string{"chain", "run"} {
		if err := cmd.MarkFlagRequired(f); err != nil {
			panic(err)
		}
	}
	rootCmd.AddCommand(cmd)
}

func printReplay(cmd *cobra.Command, rep *replay.Report, runID string, asJSON bool) error {
	if asJSON {
		doc := map[string]any{"run": runID, "same": rep.Same, "provider": rep.Provider,
			"observations": rep.Observations, "calls_from_record": rep.Calls}
		if rep.Value != nil {
			doc["value"] = rtfs.Print(rep.Value)
		}
		if d := rep.Divergence; d != nil {
			doc["failure"] = rep.Failure
			doc["divergence"] = map[string]any{"index": d.Index, "step": d.Step, "call": d.Call,
				"recorded": d.Recorded, "replayed": d.Replayed}
		}
		if err := writeJSON(cmd.OutOrStdout(), doc); err != nil {
			return err
		}
	} else if rep.Same {
		fmt.Fprintf(cmd.OutOrStdout(), "run %s replayed in %s: the same (%d observations, %d host calls answered from the record)\n",
			runID, rep.Provider, rep.Observations, rep.Calls)
	}
	if !rep.Same {
		msg := fmt.Sprintf("run %s replayed in %s: diverged at %s", runID, rep.Provider, rep.Divergence)
		if rep.Failure != "" {
			msg += "\nthe replay's guest failed: " + rep.Failure
		}
		return rejected(msg)
	}
	return nil
}
