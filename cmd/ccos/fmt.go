package main

import (
	"bytes"
	"fmt"
	"os"

	"github.com/ccos-project/ccos/internal/atomicfile"
	"github.com/ccos-project/ccos/rtfs"
	"github.com/spf13/cobra"
)

func init() {
	var check, write bool
	var width int
	cmd := &cobra.Command{
		Use:   "fmt FILE...",
		Short: "Format RTFS files canonically, keeping comments",
		Long: "fmt prints the pretty form of each FILE. With --check it prints nothing\n" +
			"and exits 1 if a file is not formatted; with -w it rewrites the files\n" +
			"in place (atomically). A file that does not read is left untouched and\n" +
			"its errors are printed.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if check && write {
				return &exitError{code: exitUsage, msg: "ccos fmt: --check and -w cannot be used together"}
			}
			failed := false
			for _, path := range args {
				src, name, err := readInput(path)
				if err != nil {
					fmt.Fprintln(cmd.ErrOrStderr(), err)
					failed = true
					continue
				}
				s, rerr := rtfs.Read(src, name, rtfs.ReadOptions{})
				if rerr != nil {
					fmt.Fprintln(cmd.ErrOrStderr(), rerr)
					failed = true
					continue
				}
				out := []byte(rtfs.Format(s, width))
				switch {
				case check:
					if !bytes.Equal(out, src) {
						fmt.Fprintf(cmd.ErrOrStderr(), "%s: not formatted\n", name)
						failed = true
					}
				case write && path != "-":
					if !bytes.Equal(out, src) {
						if err := writeFileAtomic(path, out); err != nil {
							fmt.Fprintln(cmd.ErrOrStderr(), err)
							failed = true
						}
					}
				default:
					if _, err := cmd.OutOrStdout().Write(out); err != nil {
						return err
					}
				}
			}
			if failed {
				return rejected("")
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&check, "check", false, "exit 1 if any file is not formatted; print nothing else")
	cmd.Flags().BoolVarP(&write, "write", "w", false, "rewrite the files in place")
	cmd.Flags().IntVar(&width, "width", rtfs.DefaultWidth, "line width to aim for")
	rootCmd.AddCommand(cmd)
}

// writeFileAtomic replaces path with data atomically (atomicfile), so that
// readers never see a partial file. A new file gets mode 0644, an existing
// one keeps its mode.
func writeFileAtomic(path string, data []byte) error {
	mode := os.FileMode(0o644)
	if info, err := os.Stat(path); err == nil {
		mode = info.Mode().Perm()
	} else if !os.IsNotExist(err) {
		return err
	}
	return atomicfile.Write(path, data, mode)
}
