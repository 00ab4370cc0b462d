package main

import (
	"encoding/json"
	"errors"
	"io"
	"os"

	"github.com/ccos-project/ccos/internal/input"
	"github.com/ccos-project/ccos/rtfs"
	"github.com/spf13/cobra"
)

func init() {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "parse FILE",
		Short: "Read an RTFS file and report every syntax error (exit 1 if any)",
		Long: "parse reads FILE (or - for standard input) as RTFS. It exits 0 when the\n" +
			"whole file reads, and 1 with one file:line:col: message line per problem\n" +
			"otherwise. With --json it prints the syntax tree with source spans.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			src, name, err := readInput(args[0])
			if err != nil {
				return rejected(err.Error())
			}
			s, rerr := rtfs.Read(src, name, rtfs.ReadOptions{})
			if asJSON {
				doc := map[string]any{"file": name, "forms": rtfs.TreeJSON(s.Forms), "errors": errorsJSON(rerr)}
				if err := writeJSON(cmd.OutOrStdout(), doc); err != nil {
					return err
				}
			}
			if rerr != nil {
				return rejected(rerr.Error())
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the syntax tree with spans as JSON")
	rootCmd.AddCommand(cmd)
}

// readInput reads an RTFS source: a regular file, or standard input for
// "-", bounded (internal/input).
func readInput(path string) ([]byte, string, error) {
	return input.ReadArg(path, os.Stdin, input.MaxSource)
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// errorsJSON lists reader errors as JSON objects (an empty list for none).
func errorsJSON(err error) []map[string]any {
	out := []map[string]any{}
	var list rtfs.ErrorList
	if errors.As(err, &list) {
		for _, e := range list {
			item := map[string]any{"file": e.File, "line": e.Pos.Line, "col": e.Pos.Col, "message": e.Msg}
			if e.Hint != "" {
				item["hint"] = e.Hint
			}
			out = append(out, item)
		}
	}
	return out
}
