package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/ccos-project/ccos/rtfs"
	"github.com/spf13/cobra"
)

func init() {
	var expr string
	var lim rtfs.Limits
	cmd := &cobra.Command{
		Use:   "eval FILE | -e EXPR",
		Short: "Evaluate an RTFS file or expression and print the value of the last form",
		Long: "eval evaluates every form of FILE (- for standard input) or of EXPR and\n" +
			"prints the canonical value of the last one. Output of println/print/log\n" +
			"is printed before it. Errors go to standard error as\n" +
			"file:line:col: Type: message followed by the RTFS call stack, with exit\n" +
			"code 1. Steps (step ...) and capability calls (call ...) are refused:\n" +
			"they need the host of ccos run.",
		Args: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("expr") {
				return cobra.NoArgs(cmd, args)
			}
			return cobra.ExactArgs(1)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			var src []byte
			name := "<expr>"
			if cmd.Flags().Changed("expr") {
				src = []byte(expr)
			} else {
				var err error
				if src, name, err = readInput(args[0]); err != nil {
					return rejected(err.Error())
				}
			}
			in := rtfs.New(rtfs.Options{Limits: lim})
			return evalAndPrint(cmd.Context(), in, src, name, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVarP(&expr, "expr", "e", "", "evaluate `EXPR` instead of a file")
	addLimitFlags(cmd, &lim)
	rootCmd.AddCommand(cmd)
}

// addLimitFlags exposes the evaluation limits; zero keeps the defaults.
func addLimitFlags(cmd *cobra.Command, lim *rtfs.Limits) {
	d := rtfs.DefaultLimits()
	cmd.Flags().DurationVar(&lim.Timeout, "timeout", d.Timeout, "wall-clock limit of one evaluation")
	cmd.Flags().Int64Var(&lim.MaxSteps, "max-steps", d.MaxSteps, "evaluation step budget")
	cmd.Flags().IntVar(&lim.MaxDepth, "max-depth", d.MaxDepth, "maximum call depth")
}

// evalAndPrint evaluates src and prints captured output and the value to
// out, or the error with its RTFS stack to errw (returning exit code 1).
func evalAndPrint(ctx context.Context, in *rtfs.Interp, src []byte, name string, out, errw io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	s, err := rtfs.Read(src, name, rtfs.ReadOptions{})
	if err != nil {
		return rejected(err.Error())
	}
	v, err := in.EvalForms(ctx, s.Forms)
	if o := in.TakeOutput(); o != "" {
		fmt.Fprint(out, o)
	}
	if err != nil {
		return rejected(describeEvalError(err))
	}
	fmt.Fprintln(out, rtfs.Print(v))
	return nil
}

// describeEvalError formats an evaluation error with its call stack.
func describeEvalError(err error) string {
	var e *rtfs.Error
	if errors.As(err, &e) {
		return e.Detail()
	}
	return err.Error()
}
