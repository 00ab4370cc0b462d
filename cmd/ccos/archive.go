package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/ccos-project/ccos/archive"
	"github.com/spf13/cobra"
)

func init() {
	cmd := &cobra.Command{
		Use:   "archive",
		Short: "Verify the content-addressed archive; back up and restore its intent graph",
	}
	cmd.AddCommand(archiveVerifyCmd(), archiveBackupCmd(), archiveRestoreCmd())
	rootCmd.AddCommand(cmd)
}

// archiveVerifyReport is the --json output of ccos archive verify.
type archiveVerifyReport struct {
	Dir        string             `json:"dir"`
	OK         bool               `json:"ok"`
	Objects    int                `json:"objects"`
	Mismatches []archive.Mismatch `json:"mismatches"`
}

func archiveVerifyCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "verify DIR",
		Short: "Recompute every hash and check the archive layout; exit 1 listing every problem",
		Long: "verify reads index.json and every file of the archive in DIR without changing\n" +
			"anything, and lists every problem: objects missing, changed (hash mismatch),\n" +
			"unparsable or not canonical, files not in the index, temp files left by a\n" +
			"writer that died (the next write removes them), stray files, dangling refs.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := archive.OpenReadOnly(args[0])
			if err != nil {
				return rejected(err.Error())
			}
			defer a.Close()
			ms, err := a.Verify()
			if err != nil {
				return rejected(err.Error())
			}
			objects, _ := a.List()
			rep := archiveVerifyReport{Dir: args[0], OK: len(ms) == 0, Objects: len(objects), Mismatches: ms}
			if rep.Mismatches == nil {
				rep.Mismatches = []archive.Mismatch{}
			}
			out := cmd.OutOrStdout()
			if asJSON {
				if err := writeJSON(out, rep); err != nil {
					return err
				}
			} else {
				for _, m := range ms {
					fmt.Fprintln(out, m)
				}
				if rep.OK {
					fmt.Fprintf(out, "%s: ok, %d objects verified\n", args[0], rep.Objects)
				}
			}
			if !rep.OK {
				return rejected(fmt.Sprintf("%s: %d problem(s) found", args[0], len(ms)))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as one JSON document")
	return cmd
}

func archiveBackupCmd() *cobra.Command {
	var out, note string
	cmd := &cobra.Command{
		Use:   "backup DIR --out FILE",
		Short: "Write the intent graph of the archive in DIR as a backup (format 1.1)",
		Long: "backup writes the archive's intent graph (intents and edges) to FILE as JSON\n" +
			"in backup format 1.1, with an RTFS snapshot of the same graph in \"rtfs\".\n" +
			"FILE is written atomically and readable by its owner only.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := archive.OpenReadOnly(args[0])
			if err != nil {
				return rejected(err.Error())
			}
			defer a.Close()
			manifest := map[string]json.RawMessage{
				"created_by": json.RawMessage(`"ccos"`),
				"source":     json.RawMessage(`"file_archive"`),
			}
			if note != "" {
				raw, _ := json.Marshal(note)
				manifest["note"] = raw
			}
			b, err := a.Backup(time.Now().Unix(), manifest)
			if err != nil {
				return rejected(err.Error())
			}
			if err := archive.WriteBackupFile(out, b); err != nil {
				return rejected(err.Error())
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %d intents, %d edges (backup %s)\n", out, len(b.Intents), len(b.Edges), b.Version)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "the backup file to write (required)")
	cmd.Flags().StringVar(&note, "note", "", "a note for the backup's manifest")
	cmd.MarkFlagRequired("out")
	return cmd
}

func archiveRestoreCmd() *cobra.Command {
	var into string
	cmd := &cobra.Command{
		Use:   "restore FILE --into DIR",
		Short: "Make the intent graph of a backup (format 1.0 or 1.1) the graph of the archive in DIR",
		Long: "restore reads and checks the backup FILE (version 1.x; unknown fields are kept;\n" +
			"an \"rtfs\" snapshot must agree with the JSON), stores its intents in the archive\n" +
			"in DIR (created if needed) and makes its graph the current one. Objects of the\n" +
			"graph it replaces stay in the archive.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := archive.ReadBackupFile(args[0])
			if err != nil {
				return rejected(err.Error())
			}
			a, err := archive.Open(into)
			if err != nil {
				return rejected(err.Error())
			}
			defer a.Close()
			h, err := a.Restore(b)
			if err != nil {
				return rejected(err.Error())
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: restored %d intents, %d edges (graph %s)\n", into, len(b.Intents), len(b.Edges), h)
			return nil
		},
	}
	cmd.Flags().StringVar(&into, "into", "", "the archive directory to restore into (required)")
	cmd.MarkFlagRequired("into")
	return cmd
}
