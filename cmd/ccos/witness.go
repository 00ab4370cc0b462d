package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ccos-project/ccos/chain"
	"github.com/ccos-project/ccos/internal/input"
	"github.com/ccos-project/ccos/witness"
	"github.com/spf13/cobra"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

func init() {
	var key, state, listen string
	var logKeys []string
	cmd := &cobra.Command{
		Use:   "witness --key FILE --log-key PUB... --state FILE [--listen ADDR]",
		Short: "Serve a C2SP tlog-witness that cosigns the checkpoints of known chains",
		Long: "witness cosigns a chain's checkpoint only when it extends the last one it\n" +
			"cosigned for that chain (consistency proof), and refuses forks: the same\n" +
			"size with another root, or a tree that is not an extension. --key is the\n" +
			"witness's signer key (from `ccos chain keygen`); each --log-key is a chain's\n" +
			"verifier key (or a file holding it); --state is the SQLite file where the\n" +
			"witness keeps what it cosigned (never lose it). It serves POST\n" +
			"/add-checkpoint on --listen (host:port, or unix:/path) and prints the key\n" +
			"clients pass to `ccos chain verify --witness`.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return serveWitness(cmd, key, logKeys, state, listen)
		},
	}
	cmd.Flags().StringVar(&key, "key", "", "file holding the witness's signer key (PRIVATE+KEY+...)")
	cmd.Flags().StringArrayVar(&logKeys, "log-key", nil, "a chain's verifier key, or a file holding it (repeatable)")
	cmd.Flags().StringVar(&state, "state", "", "SQLite file of the witness's state")
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:7380", "address to serve on: host:port or unix:/path")
	for _, f := range []string{"key", "log-key", "state"} {
		if err := cmd.MarkFlagRequired(f); err != nil {
			panic(err)
		}
	}
	rootCmd.AddCommand(cmd)
}

func serveWitness(cmd *cobra.Command, keyFile string, logKeys []string, state, listen string) error {
	skey, err := input.ReadFile(keyFile, input.MaxSmall)
	if err != nil {
		return rejected("ccos witness: --key: " + err.Error())
	}
	signer, err := witness.NewSigner(string(skey))
	if err != nil {
		return rejected("ccos witness: --key: " + err.Error())
	}
	vkey, err := chain.VerifierOf(string(skey))
	if err != nil {
		return rejected("ccos witness: --key: " + err.Error())
	}
	cosigKey, err := fnote.VKeyToCosignatureV1(vkey)
	if err != nil {
		return rejected("ccos witness: --key: " + err.Error())
	}
	var logs []note.Verifier
	for _, k := range logKeys {
		v, err := chainVerifier("", k)
		if err != nil {
			return rejected(fmt.Sprintf("ccos witness: --log-key %s: %v", k, err))
		}
		logs = append(logs, v)
	}
	logger := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
	w, err := witness.New(signer, logs, state, witness.Options{Logger: logger})
	if err != nil {
		return rejected("ccos witness: " + err.Error())
	}
	defer w.Close()
	l, err := listenAddr(listen)
	if err != nil {
		return rejected("ccos witness: --listen: " + err.Error())
	}
	srv := &http.Server{Handler: w, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	fmt.Fprintf(cmd.OutOrStdout(), "witness key: %s\n", cosigKey)
	logger.Info("ccos witness listening", "addr", l.Addr().String(), "logs", len(logs))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return rejected("ccos witness: " + err.Error())
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	return nil
}

// witnessedPath is where `ccos chain checkpoint --witness` keeps the
// latest cosigned checkpoint of a chain.
func witnessedPath(chainPath string) string { return chainPath + ".witnessed" }

// cosignCheckpoint asks each witness to cosign cp and returns the note with
// every cosignature line appended. last is the size of the chain's last
// cosigned checkpoint (the witnesses' likely state).
func cosignCheckpoint(ctx context.Context, tree *chain.Tree, cp *chain.Checkpoint, urls []string, last uint64) ([]byte, error) {
	out := append([]byte(nil), cp.Note...)
	for _, u := range urls {
		sigs, err := witness.Cosign(ctx, &witness.Client{URL: u}, tree, cp, last)
		if err != nil {
			return nil, fmt.Errorf("witness %s: %w", u, err)
		}
		out = append(out, sigs...)
	}
	return out, nil
}

// lastWitnessedSize is the size of the checkpoint kept in FILE.witnessed
// (0 when there is none).
func lastWitnessedSize(chainPath string) uint64 {
	b, err := input.ReadFile(witnessedPath(chainPath), input.MaxSmall)
	if err != nil {
		return 0
	}
	body, _, _ := bytes.Cut(b, []byte("\n\n"))
	c, err := witness.ParseBody(string(body) + "\n")
	if err != nil {
		return 0
	}
	return c.Size
}

// checkWitnessed requires the cosigned checkpoint kept beside the chain
// (or in external) to carry a valid cosignature of every witness key and
// to be a checkpoint of the chain's tree.
func checkWitnessed(tree *chain.Tree, chainPath, external string, v note.Verifier, keys []string) error {
	if v == nil {
		return fmt.Errorf("--witness: %w", chain.ErrNoVerifier)
	}
	var ws []note.Verifier
	for _, k := range keys {
		text := k
		if b, err := input.ReadFile(k, input.MaxSmall); err == nil {
			text = string(b)
		}
		w, err := witness.NewVerifier(text)
		if err != nil {
			return fmt.Errorf("--witness %s: %w", k, err)
		}
		ws = append(ws, w)
	}
	path := external
	if path == "" {
		path = witnessedPath(chainPath)
	}
	msg, err := input.ReadFile(path, input.MaxSmall)
	if err != nil {
		return fmt.Errorf("no cosigned checkpoint (run `ccos chain checkpoint --witness URL`): %w", err)
	}
	c, err := witness.OpenCosigned(msg, v, ws)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := chain.CheckCheckpoint(tree, c); err != nil {
		return fmt.Errorf("against the cosigned %s: %w", path, err)
	}
	return nil
}

// witnessCheckpoint has checkpoint c of the chain at path cosigned by the
// witnesses at urls and keeps the cosigned note in FILE.witnessed.
func witnessCheckpoint(path string, c *chain.Checkpoint, urls []string) ([]byte, error) {
	s, err := chain.OpenReadOnly(chain.ModeForPath(path), path)
	if err != nil {
		return nil, err
	}
	_, tree, _, err := chain.Load(s, nil)
	s.Close()
	if err != nil {
		return nil, err
	}
	if tree.Size() < c.Size {
		return nil, fmt.Errorf("the chain has %d events, the checkpoint signs %d", tree.Size(), c.Size)
	}
	cosigned, err := cosignCheckpoint(context.Background(), tree, c, urls, lastWitnessedSize(path))
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(witnessedPath(path), cosigned); err != nil {
		return nil, err
	}
	return cosigned, nil
}
