package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/ccos-project/ccos/sandbox"
	"github.com/spf13/cobra"
)

func init() {
	var asJSON bool
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
	rootCmd.AddCommand(cmd)
}
