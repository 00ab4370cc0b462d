package main

import (
	"fmt"
	"io"

	"github.com/ccos-project/ccos/chain"
	"github.com/ccos-project/ccos/config"
	"golang.org/x/mod/sumdb/note"
)

// openRunChain opens the causal chain a run records into: --chain FILE
// (an append_file chain, or sqlite for .db/.sqlite), else the config's
// :causal_chain :storage. vsock_stream is the guest-side mode: on the host
// the streamed events land in memory unless --chain names a file. Signed
// checkpoints need --chain-key (a key from `ccos chain keygen`); a config
// that turns the anchor on without one is told so, never silently.
func openRunChain(stderr io.Writer, cfg *config.Config, chainPath, keyPath string) (*chain.Recorder, error) {
	mode, path := chain.Mode(cfg.CausalChain.Storage.Mode), cfg.CausalChain.Storage.Path
	if chainPath != "" {
		mode, path = chain.ModeForPath(chainPath), chainPath
	}
	var store chain.Store
	var err error
	switch mode {
	case chain.StorageAppendFile, chain.StorageSQLite:
		if store, err = chain.Open(mode, path); err != nil {
			return nil, fmt.Errorf("opening the causal chain %s: %w", path, err)
		}
	default:
		store = chain.NewMemoryStore()
	}
	var signer note.Signer
	switch {
	case keyPath != "":
		if signer, err = chain.ReadSignerFile(keyPath); err != nil {
			store.Close()
			return nil, fmt.Errorf("reading the chain key %s: %w", keyPath, err)
		}
	case cfg.CausalChain.Anchor.Enabled:
		fmt.Fprintln(stderr, "ccos run: warning: :causal_chain :anchor is enabled but no --chain-key was given: the run's chain gets no signed checkpoint")
	}
	rec, err := chain.NewRecorder(store, signer, chain.Options{})
	if err != nil {
		store.Close()
		return nil, err
	}
	if r := rec.Recovered(); r.DroppedBytes > 0 {
		fmt.Fprintf(stderr, "ccos run: the causal chain %s had a torn tail: %d bytes from offset %d were dropped (%d records kept)\n",
			path, r.DroppedBytes, r.TruncatedFrom, r.Records)
	}
	return rec, nil
}
