package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/ccos-project/ccos/engine"
	"github.com/ccos-project/ccos/governance"
	"github.com/spf13/cobra"
)

func init() {
	var af admitFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "capabilities",
		Short: "List every capability the agent config makes callable, with arguments, effects, risk and an example",
		Long: "capabilities loads the agent config (--config, default " + defaultConfig + ")\n" +
			"and lists what its plans may call at the security level: each capability's\n" +
			"arguments, value, effects, risk tier, where it runs (in the guest, inside\n" +
			"the sandbox, or on the host) and an example call; then the capabilities\n" +
			"admission would refuse, each with every rule that refuses it.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			eng, err := engine.New(engine.Options{Logger: cliLogger()})
			if err != nil {
				return rejected("ccos: " + err.Error())
			}
			defer eng.Close()
			a, err := openAgent(eng, cmd.ErrOrStderr(), af, agentFlags{})
			if err != nil {
				return err
			}
			cat := a.Catalog()
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), cat)
			}
			printCatalog(cmd.OutOrStdout(), cat)
			return nil
		},
	}
	cmd.Flags().StringVar(&af.cfgPath, "config", "", "agent config file (default: "+defaultConfig+")")
	cmd.Flags().StringVar(&af.level, "security-level", "controlled", "pure, controlled or full: the level plans are admitted at")
	cmd.Flags().StringArrayVar(&af.allow, "allow", nil, "at the controlled level, also allow capabilities matching this pattern (repeatable)")
	cmd.Flags().StringArrayVar(&af.deny, "deny", nil, "deny capabilities matching this pattern, at any level (repeatable)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the catalog as one JSON document")
	rootCmd.AddCommand(cmd)
}

// printCatalog writes the catalog for people.
func printCatalog(w io.Writer, cat *governance.Catalog) {
	fmt.Fprintf(w, "agent %s, security level %s, isolation :%s: %d callable, %d refused\n",
		cat.Agent, cat.Level, cat.Isolation, len(cat.Capabilities), len(cat.Unavailable))
	for _, e := range cat.Capabilities {
		fmt.Fprintf(w, "\n:%s  (%s, runs in the %s, risk %s", e.ID, e.Class, e.RunsIn, e.Risk)
		if e.InStepOnly {
			fmt.Fprint(w, ", inside a step only")
		}
		if e.Mutates {
			fmt.Fprint(w, ", side effects")
		}
		fmt.Fprintln(w, ")")
		fmt.Fprintf(w, "  %s\n", e.Doc)
		for _, a := range e.Args {
			fmt.Fprintf(w, "  arg %s\n", argLine(a.Name, a.Type, a.Doc, a.Optional, a.Variadic))
			for _, k := range a.Keys {
				fmt.Fprintf(w, "      :%s\n", argLine(k.Name, k.Type, k.Doc, k.Optional, false))
			}
		}
		if e.Returns != "" {
			fmt.Fprintf(w, "  returns %s\n", e.Returns)
		}
		for _, ef := range e.Effects {
			fmt.Fprintf(w, "  effect :%s%s\n", ef.Kind, scopeText(ef.Domains, ef.Methods, ef.Paths, ef.Models, ef.Vars))
		}
		if al := e.Allowed; al != nil {
			fmt.Fprintf(w, "  the config allows%s\n", scopeText(al.Domains, nil, al.Paths, al.Models, al.Vars))
		}
		if e.Contract != "" {
			fmt.Fprintf(w, "  contract %s\n", e.Contract)
		}
		if e.Example != "" {
			fmt.Fprintf(w, "  example %s\n", e.Example)
		}
	}
	if len(cat.Unavailable) > 0 {
		fmt.Fprintln(w, "\nrefused:")
	}
	for _, u := range cat.Unavailable {
		for _, r := range u.Reasons {
			line := fmt.Sprintf("  :%s: %s: %s", u.ID, r.Rule, r.Msg)
			if r.Hint != "" {
				line += " (hint: " + r.Hint + ")"
			}
			fmt.Fprintln(w, line)
		}
	}
}

func argLine(name, typ, doc string, optional, variadic bool) string {
	s := name + " (" + typ
	if optional {
		s += ", optional"
	}
	if variadic {
		s += ", repeated"
	}
	return s + "): " + doc
}

func scopeText(domains, methods, paths, models, vars []string) string {
	var parts []string
	for _, p := range []struct {
		name string
		xs   []string
	}{{"domains", domains}, {"methods", methods}, {"paths", paths}, {"models", models}, {"vars", vars}} {
		if len(p.xs) > 0 {
			parts = append(parts, " "+p.name+" "+strings.Join(p.xs, ","))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return strings.Join(parts, "")
}
