package engine

import (
	"fmt"
	"log/slog"

	"github.com/ccos-project/ccos/chain"
	"github.com/ccos-project/ccos/config"
	"golang.org/x/mod/sumdb/note"
)

// openChain opens the causal chain an agent records into: path (an
// append_file chain, or sqlite for .db/.sqlite), else the config's
// :causal_chain :storage. vsock_stream is the guest-side mode: on the
// host the events land in memory unless a path is given. A config that
// turns the anchor on without a signer is warned about, never silently.
func openChain(cfg *config.Config, path string, signer note.Signer, log *slog.Logger) (*chain.Recorder, error) {
	mode, p := chain.Mode(cfg.CausalChain.Storage.Mode), cfg.CausalChain.Storage.Path
	if path != "" {
		mode, p = chain.ModeForPath(path), path
	}
	var store chain.Store
	var err error
	switch mode {
	case chain.StorageAppendFile, chain.StorageSQLite:
		if store, err = chain.Open(mode, p); err != nil {
			return nil, fmt.Errorf("opening the causal chain %s: %w", p, err)
		}
	default:
		store = chain.NewMemoryStore()
	}
	if signer == nil && cfg.CausalChain.Anchor.Enabled {
		log.Warn(":causal_chain :anchor is enabled but no chain key was given: runs get no signed checkpoint")
	}
	rec, err := chain.NewRecorder(store, signer, chain.Options{})
	if err != nil {
		store.Close()
		return nil, err
	}
	if r := rec.Recovered(); r.DroppedBytes > 0 {
		log.Warn("the causal chain had a torn tail; it was truncated", "chain", p, "dropped_bytes", r.DroppedBytes,
			"from_offset", r.TruncatedFrom, "records_kept", r.Records)
	}
	return rec, nil
}
