package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/ccos-project/ccos/engine"
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
			eng, err := engine.New(engine.Options{Logger: cliLogger()})
			if err != nil {
				return rejected("ccos doctor: " + err.Error())
			}
			defer eng.Close()
			a, err := openAgent(eng, cmd.ErrOrStderr(), admitFlags{cfgPath: cfgPath, level: "controlled"}, agentFlags{})
			if err != nil {
				return err
			}
			entries := a.Providers()
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
