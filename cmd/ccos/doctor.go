package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/ccos-project/ccos/sandbox"
	"github.com/spf13/cobra"
)

func init() {
	var asJSON bool
	var cfgPath string
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Report which sandbox providers can run on this host, and why not",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			type entry struct {
				Provider  string `json:"provider"`
				Available bool   `json:"available"`
				Reason    string `json:"reason"`
			}
			res, err := loadRunConfig(cfgPath)
			if err != nil {
				return err
			}
			if res.Diags.HasErrors() {
				printDiags(cmd.ErrOrStderr(), res.Diags)
				return rejected(fmt.Sprintf("ccos doctor: the agent config %s is invalid", res.File))
			}
			if err := prepareProviders(io.Discard, res, cfgPath, nil, vmOptions{}); err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "ccos doctor: %v\n", err)
			}
			var entries []entry
			for _, p := range sandbox.Providers() {
				ok, reason := p.Available()
				entries = append(entries, entry{p.Name(), ok, reason})
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), map[string]any{"providers": entries})
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "PROVIDER\tAVAILABLE\tDETAIL")
			for _, e := range entries {
				yes := "no"
				if e.Available {
					yes = "yes"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\n", e.Provider, yes, e.Reason)
			}
			return w.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON document")
	cmd.Flags().StringVar(&cfgPath, "config", "", "agent config the VM providers are prepared for (default: "+defaultConfig+")")
	rootCmd.AddCommand(cmd)
}
