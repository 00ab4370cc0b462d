package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/ccos-project/ccos/engine"
	"github.com/ccos-project/ccos/internal/input"
	"github.com/ccos-project/ccos/supervisor"
	"github.com/ccos-project/ccos/supervisor/client"
	"github.com/spf13/cobra"
)

// clientFlags say how to reach a supervisor: its Unix socket, or its
// HTTPS listener with a client certificate.
type clientFlags struct {
	socket, addr, cert, key, ca string
	asJSON                      bool
}

func (f *clientFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.socket, "socket", defaultSupervisorSocket, "the supervisor's Unix socket")
	fl.StringVar(&f.addr, "addr", "", "the supervisor's HTTPS address instead of the socket (with --cert, --key, --ca)")
	fl.StringVar(&f.cert, "cert", "", "client certificate naming the agent (subject CN)")
	fl.StringVar(&f.key, "key", "", "its key")
	fl.StringVar(&f.ca, "ca", "", "CA certificate of the supervisor's HTTPS listener")
	fl.BoolVar(&f.asJSON, "json", false, "print JSON")
}

func (f clientFlags) client() (*client.Client, error) {
	if f.addr == "" {
		return client.Unix(f.socket), nil
	}
	cert, err := tls.LoadX509KeyPair(f.cert, f.key)
	if err != nil {
		return nil, usageErr("--cert/--key: %v", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}
	if f.ca != "" {
		pem, err := input.ReadFile(f.ca, input.MaxSmall)
		if err != nil {
			return nil, usageErr("--ca: %v", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		cfg.RootCAs.AppendCertsFromPEM(pem)
	}
	return client.TLS(f.addr, cfg), nil
}

// apiError turns a client error into the CLI's exit.
func apiError(err error) error {
	var ae *client.APIError
	if errors.As(err, &ae) {
		msg := "ccos supervisor: " + ae.ErrorBody.Error
		return rejected(msg)
	}
	return rejected("ccos supervisor: " + err.Error())
}

func supervisorClientCmds() []*cobra.Command {
	var sf clientFlags
	var agent, isolation string
	var approvals []string
	var wait bool
	submit := &cobra.Command{
		Use:   "submit PLAN",
		Short: "Submit a plan to an agent of a running supervisor; print the run (with --wait, once it is over)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := sf.client()
			if err != nil {
				return err
			}
			in, err := planInput(args[0], approvals)
			if err != nil {
				return err
			}
			ctx := context.Background()
			if agent == "" {
				agents, err := c.Agents(ctx)
				if err != nil {
					return apiError(err)
				}
				if len(agents) != 1 {
					return usageErr("--agent is needed: the supervisor serves %d agents", len(agents))
				}
				agent = agents[0].Agent
			}
			run, err := c.Submit(ctx, agent, supervisor.Submission{Plan: string(in.Source), File: in.File, Approvals: in.Approvals, Isolation: isolation})
			if err != nil {
				return apiError(err)
			}
			if wait {
				if run, err = c.Wait(ctx, run.ID); err != nil {
					return apiError(err)
				}
			}
			return printRun(cmd.OutOrStdout(), cmd.ErrOrStderr(), run, sf.asJSON)
		},
	}
	sf.register(submit)
	submit.Flags().StringVar(&agent, "agent", "", "the agent to run the plan (may be left out when the supervisor serves one)")
	submit.Flags().StringArrayVar(&approvals, "approval", nil, "an approval file from `ccos plan approve` (repeatable)")
	submit.Flags().StringVar(&isolation, "isolation", "", "ask for at least this isolation: wasm, container or microvm")
	submit.Flags().BoolVar(&wait, "wait", false, "wait until the run is over")

	var lf clientFlags
	var lagent, lstatus, before string
	var limit int
	runs := &cobra.Command{
		Use:   "runs",
		Short: "List runs, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := lf.client()
			if err != nil {
				return err
			}
			f := supervisor.Filter{Agent: lagent, Limit: limit, Before: before}
			if lstatus != "" {
				if f.Status, err = supervisor.ParseStatus(lstatus); err != nil {
					return usageErr("--status: %v", err)
				}
			}
			l, err := c.List(context.Background(), f)
			if err != nil {
				return apiError(err)
			}
			if lf.asJSON {
				return writeJSON(cmd.OutOrStdout(), l)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "RUN\tAGENT\tSTATUS\tPLAN\tPROVIDER\tSUBMITTED")
			for _, r := range l.Runs {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Agent, r.Status, safeText(r.Plan), r.Provider, r.Submitted.Local().Format(time.DateTime))
			}
			if l.Next != "" {
				fmt.Fprintf(w, "(more: --before %s)\n", l.Next)
			}
			return w.Flush()
		},
	}
	lf.register(runs)
	runs.Flags().StringVar(&lagent, "agent", "", "only this agent's runs")
	runs.Flags().StringVar(&lstatus, "status", "", "only runs in this state")
	runs.Flags().IntVar(&limit, "limit", 50, "runs per page")
	runs.Flags().StringVar(&before, "before", "", "the page after this cursor")

	var gf clientFlags
	get := &cobra.Command{
		Use:   "get RUN",
		Short: "Print one run",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := gf.client()
			if err != nil {
				return err
			}
			run, err := c.Get(context.Background(), args[0])
			if err != nil {
				return apiError(err)
			}
			return printRun(cmd.OutOrStdout(), cmd.ErrOrStderr(), run, gf.asJSON)
		},
	}
	gf.register(get)

	var ef clientFlags
	events := &cobra.Command{
		Use:   "events RUN",
		Short: "Follow a run's events until it is over",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := ef.client()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			status, err := c.Events(context.Background(), args[0], 0, func(e engine.Event) error {
				if ef.asJSON {
					return writeJSONLine(out, e)
				}
				detail := string(e.Data)
				if e.Type == engine.EventOutput {
					detail = e.Text
				}
				_, err := fmt.Fprintf(out, "%5d %s %-18s %-12s %s\n", e.Seq, e.Time.Local().Format("15:04:05.000"), e.Type, safeText(e.Step), safeText(detail))
				return err
			})
			if err != nil {
				return apiError(err)
			}
			if !ef.asJSON {
				fmt.Fprintln(out, "run", args[0], "is", status)
			}
			return nil
		},
	}
	ef.register(events)

	var cf clientFlags
	cancel := &cobra.Command{
		Use:   "cancel RUN",
		Short: "Cancel a queued or running run",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			run, err := c.Cancel(context.Background(), args[0])
			if err != nil {
				return apiError(err)
			}
			return printRun(cmd.OutOrStdout(), cmd.ErrOrStderr(), run, cf.asJSON)
		},
	}
	cf.register(cancel)

	var hf clientFlags
	health := &cobra.Command{
		Use:   "health",
		Short: "Print a running supervisor's health; exit 1 unless it is ok",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := hf.client()
			if err != nil {
				return err
			}
			h, err := c.Health(context.Background())
			if err != nil {
				return apiError(err)
			}
			if err := writeJSON(cmd.OutOrStdout(), h); err != nil {
				return err
			}
			if h.Status != "ok" {
				return rejected("")
			}
			return nil
		},
	}
	hf.register(health)
	return []*cobra.Command{submit, runs, get, events, cancel, health}
}

// printRun prints a run: JSON, or its output and value like ccos run.
func printRun(stdout, stderr io.Writer, run *supervisor.Run, asJSON bool) error {
	if asJSON {
		if err := writeJSON(stdout, run); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(stderr, "run %s (agent %s): %s\n", run.ID, run.Agent, run.Status)
		io.WriteString(stdout, safeText(run.Output))
		if run.Value != nil {
			fmt.Fprintln(stdout, safeText(*run.Value))
		}
	}
	switch {
	case run.Status == supervisor.StatusFailed && run.Error != nil:
		return rejected(safeText(run.Error.Type + ": " + run.Error.Message))
	case run.Status == supervisor.StatusFailed, run.Status == supervisor.StatusCancelled:
		return rejected(safeText("run " + string(run.Status) + ": " + run.Failure))
	case run.Status == supervisor.StatusInDoubt:
		return rejected(fmt.Sprintf("run in doubt: side-effecting calls %v were started by an earlier attempt and never finished; they were not repeated", run.InDoubt))
	}
	return nil
}

// safeText escapes what a terminal would interpret (control characters
// other than newline and tab, and invalid UTF-8) in text from a plan or a
// guest, so that it cannot rewrite the operator's screen.
func safeText(s string) string {
	var b []byte
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = fmt.Appendf(b, "\\x%02x", s[i])
		case r == '\n' || r == '\t':
			b = append(b, byte(r))
		case unicode.IsControl(r):
			q := strconv.QuoteRune(r)
			b = append(b, q[1:len(q)-1]...)
		default:
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return string(b)
}

func writeJSONLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}
