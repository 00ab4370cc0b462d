package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/ccos-project/ccos/config"
	"github.com/ccos-project/ccos/internal/terminal"
	"github.com/spf13/cobra"
)

// configEvaluator evaluates configs written as expressions (profile calls).
var configEvaluator config.Evaluator = config.RTFSEvaluator{}

func init() {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Validate, expand and describe agent configurations",
	}
	cmd.AddCommand(configValidateCmd(), configExpandCmd(), configSchemaCmd())
	rootCmd.AddCommand(cmd)
}

// loadConfig loads the config at path, or from standard input for "-".
func loadConfig(path string) (*config.Result, error) {
	src, name, err := readInput(path)
	if err != nil {
		return nil, rejected("ccos config: " + err.Error())
	}
	return config.Load(src, name, configEvaluator), nil
}

func printDiags(w io.Writer, ds config.Diagnostics) {
	for _, d := range ds {
		// w may be os.Stderr itself (ccos proxy): escape here too.
		fmt.Fprintln(w, terminal.Escape(d.String()))
	}
}

// validateReport is the --json document of `ccos config validate`.
type validateReport struct {
	File        string             `json:"file"`
	Valid       bool               `json:"valid"`
	Errors      int                `json:"errors"`
	Warnings    int                `json:"warnings"`
	Diagnostics config.Diagnostics `json:"diagnostics"`
}

func configValidateCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "validate FILE",
		Short: "Check an agent config; exit 1 if it has errors (warnings never change the exit code)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := loadConfig(args[0])
			if err != nil {
				return err
			}
			printDiags(cmd.ErrOrStderr(), res.Diags)
			if asJSON {
				rep := validateReport{File: args[0], Valid: !res.Diags.HasErrors(),
					Errors: res.Diags.Count(config.SeverityError), Warnings: res.Diags.Count(config.SeverityWarning),
					Diagnostics: res.Diags}
				if rep.Diagnostics == nil {
					rep.Diagnostics = config.Diagnostics{}
				}
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if err := enc.Encode(rep); err != nil {
					return err
				}
			} else if !res.Diags.HasErrors() {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: valid (%d warning(s))\n", args[0], res.Diags.Count(config.SeverityWarning))
			}
			if res.Diags.HasErrors() {
				return rejected("")
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON document with all diagnostics on stdout")
	return cmd
}

func configExpandCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "expand FILE",
		Short: "Print the full canonical agent.config after profiles and defaults",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := loadConfig(args[0])
			if err != nil {
				return err
			}
			printDiags(cmd.ErrOrStderr(), res.Diags)
			if res.Diags.HasErrors() || res.Expanded == nil {
				return rejected("")
			}
			_, err = io.WriteString(cmd.OutOrStdout(), config.Canonical(res.Expanded))
			return err
		},
	}
}

func configSchemaCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "schema",
		Short: "Print the agent.config JSON Schema generated from the RTFS schema",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := config.JSONSchema()
			if err != nil {
				return rejected("ccos config schema: " + err.Error())
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s\n", b)
			return err
		},
	}
}
