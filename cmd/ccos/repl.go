package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/ccos-project/ccos/rtfs"
	"github.com/spf13/cobra"
)

func init() {
	var lim rtfs.Limits
	cmd := &cobra.Command{
		Use:   "repl",
		Short: "Read RTFS forms from standard input and print their values",
		Long: "repl reads standard input line by line. A form may span several lines:\n" +
			"it is evaluated once its brackets balance. Each value is printed in\n" +
			"canonical form; errors are printed to standard error and the session\n" +
			"goes on, keeping earlier definitions. The session ends at end of input.\n" +
			"A prompt is shown only when standard input is a terminal.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			in := rtfs.New(rtfs.Options{Limits: lim})
			return runREPL(cmd.Context(), in, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr(), isTerminal(os.Stdin))
		},
	}
	addLimitFlags(cmd, &lim)
	rootCmd.AddCommand(cmd)
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// runREPL evaluates the forms read from r until its end. Every input chunk
// is evaluated under its own budget.
func runREPL(ctx context.Context, in *rtfs.Interp, r io.Reader, out, errw io.Writer, prompt bool) error {
	if ctx == nil {
		ctx = context.Background()
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 16<<20)
	var buf strings.Builder
	line, startLine := 0, 1
	show := func() {
		if !prompt {
			return
		}
		if buf.Len() == 0 {
			fmt.Fprint(out, "rtfs> ")
		} else {
			fmt.Fprint(out, "  ... ")
		}
	}
	show()
	for sc.Scan() {
		line++
		if buf.Len() == 0 {
			startLine = line
		}
		buf.WriteString(sc.Text())
		buf.WriteByte('\n')
		if !complete(buf.String()) {
			show()
			continue
		}
		src := strings.Repeat("\n", startLine-1) + buf.String()
		buf.Reset()
		if strings.TrimSpace(src) != "" {
			if err := evalAndPrint(ctx, in, []byte(src), "<repl>", out, errw); err != nil {
				fmt.Fprintln(errw, err.Error())
			}
		}
		show()
	}
	if err := sc.Err(); err != nil {
		return rejected("repl: reading input: " + err.Error())
	}
	if strings.TrimSpace(buf.String()) != "" {
		// Unbalanced input at the end: evaluate it to report the reader error.
		src := strings.Repeat("\n", startLine-1) + buf.String()
		if err := evalAndPrint(ctx, in, []byte(src), "<repl>", out, errw); err != nil {
			fmt.Fprintln(errw, err.Error())
		}
	}
	if prompt {
		fmt.Fprintln(out)
	}
	return nil
}

// complete reports whether src has no open bracket, string or block
// comment, so that it can be read. Closers in excess count as complete:
// the reader reports them.
func complete(src string) bool {
	depth := 0
	inStr, inBlock := false, false
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch {
		case inBlock:
			if c == '|' && i+1 < len(src) && src[i+1] == '#' {
				inBlock = false
				i++
			}
		case inStr:
			if c == '\\' {
				i++
			} else if c == '"' {
				inStr = false
			}
		case c == '"':
			inStr = true
		case c == ';':
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case c == '#' && i+1 < len(src) && src[i+1] == '|':
			inBlock = true
			i++
		case c == '(' || c == '[' || c == '{':
			depth++
		case c == ')' || c == ']' || c == '}':
			depth--
		}
	}
	return depth <= 0 && !inStr && !inBlock
}
