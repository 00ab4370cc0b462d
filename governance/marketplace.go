package governance

import (
	"fmt"
	"path/filepath"

	"github.com/ccos-project/ccos/capability"
	"github.com/ccos-project/ccos/config"
	"github.com/ccos-project/ccos/rtfs"
)

// Capabilities returns the registry the kernel admits plans against and
// the host runs capabilities from: base (the built-ins), the contracts of
// the config's :marketplace :registry_paths (relative to configDir, the
// config file's directory), narrowed by the config's :capabilities
// :entries. A contract that broadens a built-in, or an entry that
// broadens its contract, is an error naming where it is written and what
// it broadens (capability.BroadeningError).
func Capabilities(cfg *config.Config, configDir string, base *capability.Registry) (*capability.Registry, error) {
	listings, err := capability.LoadRegistry(cfg.Marketplace.RegistryPaths, configDir)
	if err != nil {
		return nil, err
	}
	entries := make([]capability.Entry, 0, len(cfg.Capabilities.Entries))
	for i, e := range cfg.Capabilities.Entries {
		ce, err := entryOf(cfg, configDir, i, e)
		if err != nil {
			return nil, err
		}
		entries = append(entries, ce)
	}
	if err := base.Install(listings, entries); err != nil {
		return nil, err
	}
	return base, nil
}

// entryOf converts the config's entry i for the marketplace: only what
// the config wrote narrows the contract, not the schema's defaults.
func entryOf(cfg *config.Config, configDir string, i int, e config.CapabilityEntry) (capability.Entry, error) {
	path := fmt.Sprintf("capabilities.entries.%d", i)
	contract := e.Contract
	if !filepath.IsAbs(contract) {
		contract = filepath.Join(configDir, contract)
	}
	ce := capability.Entry{Capability: e.Capability, Contract: contract, Resources: e.Resources,
		Span: func(field string) rtfs.Span {
			if field == "" {
				return cfg.Span(path)
			}
			return cfg.Span(path + "." + field)
		}}
	for j, eff := range e.Effects {
		kind := rtfs.Keyword{Name: eff.Kind, S: cfg.Span(fmt.Sprintf("%s.effects.%d.0", path, j))}
		ef, err := capability.ParseEffect(kind, eff.Scope)
		if err != nil {
			return ce, fmt.Errorf("capability entry :%s: %w", e.Capability, err)
		}
		ce.Effects = append(ce.Effects, ef)
	}
	if cfg.Written(path + ".runtime.sandbox") {
		ce.Sandbox = string(e.Runtime.Sandbox)
	}
	return ce, nil
}

// ConfigDir is the directory registry paths are relative to: the config
// file's, or the working directory for a config that is not a file.
func ConfigDir(file string) string {
	if file == "" || file[0] == '<' {
		return "."
	}
	return filepath.Dir(file)
}
