package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/ccos-project/ccos/engine"
	"github.com/ccos-project/ccos/governance"
	"github.com/ccos-project/ccos/internal/input"
	"github.com/ccos-project/ccos/plan"
	"github.com/spf13/cobra"
)

func init() {
	cmd := &cobra.Command{Use: "plan", Short: "Check, hash and approve plans without running them"}
	var af admitFlags
	var asJSON bool
	check := &cobra.Command{
		Use:   "check PLAN",
		Short: "Admit PLAN under the config and print each step's profile; runs nothing",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			adm, err := checkPlan(cmd.ErrOrStderr(), args[0], af)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), adm)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintf(w, "plan %s admitted at the %s level: risk tier :%s, policy %q, budget $%.4g / %d tokens / %d ms\n",
				adm.PlanHash, adm.Level, adm.Tier, adm.Policy, adm.Budget.CostUSD, adm.Budget.Tokens, adm.Budget.TimeMS)
			fmt.Fprintln(w, "STEP\tCAPABILITIES\tNETWORK\tFS PATHS\tENV\tTIME/RANDOM\tLIMIT ms\tRETRY")
			for _, p := range adm.Profiles {
				caps := strings.Join(p.Capabilities, ",")
				if p.Dynamic {
					caps += " (+declared)"
				}
				net := "none"
				if len(p.Network.Domains) > 0 {
					net = strings.Join(p.Network.Domains, ",") + " " + strings.Join(p.Network.Methods, ",")
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s/%s\t%d\t%d\n", p.Step, orDash(caps), net, orDash(strings.Join(p.FS.Paths, ",")),
					orDash(strings.Join(p.Env, ",")), p.Determinism.Time, p.Determinism.Random, p.MaxTimeMS, p.Retry)
			}
			if err := w.Flush(); err != nil {
				return err
			}
			for _, p := range adm.Profiles {
				for _, d := range p.Derived {
					fmt.Fprintf(cmd.OutOrStdout(), "%s: step %q: %s from :%s's %s %q\n", d.Where, p.Step, d.Effect, d.Capability, d.Arg, d.Value)
				}
			}
			return nil
		},
	}
	af.register(check)
	check.Flags().BoolVar(&asJSON, "json", false, "print the admission as one JSON document")

	hash := &cobra.Command{
		Use:   "hash PLAN",
		Short: "Print the hash approvals of PLAN sign",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := readPlanFile(args[0])
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), governance.PlanHash(p))
			return nil
		},
	}
	var keyPath string
	approve := &cobra.Command{
		Use:   "approve PLAN --key KEY.pem",
		Short: "Sign an approval of PLAN with an Ed25519 private key (PKCS #8 PEM) and print it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := readPlanFile(args[0])
			if err != nil {
				return err
			}
			pemText, err := input.ReadFile(keyPath, input.MaxSmall)
			if err != nil {
				return rejected("ccos plan approve: " + err.Error())
			}
			key, err := governance.ParsePrivateKey(pemText)
			if err != nil {
				return rejected(fmt.Sprintf("ccos plan approve: %s: %v", keyPath, err))
			}
			fmt.Fprint(cmd.OutOrStdout(), governance.Approve(governance.PlanHash(p), key))
			return nil
		},
	}
	approve.Flags().StringVar(&keyPath, "key", "", "Ed25519 private key, PKCS #8 PEM")
	approve.MarkFlagRequired("key")
	cmd.AddCommand(check, hash, approve)
	rootCmd.AddCommand(cmd)
}

func readPlanFile(path string) (*plan.Plan, error) {
	src, name, err := readInput(path)
	if err != nil {
		return nil, rejected(err.Error())
	}
	p, err := plan.Read(src, name)
	if err != nil {
		return nil, rejected(err.Error())
	}
	return p, nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// checkPlan admits a plan without running it: the engine's admission, with
// no sandbox, chain or archive opened.
func checkPlan(stderr io.Writer, planPath string, af admitFlags) (*governance.Admission, error) {
	eng, err := engine.New(engine.Options{Logger: cliLogger()})
	if err != nil {
		return nil, rejected("ccos: " + err.Error())
	}
	defer eng.Close()
	a, err := openAgent(eng, stderr, af, agentFlags{})
	if err != nil {
		return nil, err
	}
	in, err := planInput(planPath, af.approvals)
	if err != nil {
		return nil, err
	}
	ad, err := a.Admit(in)
	if err != nil {
		return nil, admissionError(err)
	}
	return ad.Admission, nil
}
