package mcpserver

import (
	"path/filepath"

	"github.com/ccos-project/ccos/config"
)

// CodeClientConfig is the code of a client config this server refuses.
const CodeClientConfig = "OPERATOR_ONLY"

// OperatorOnly checks a config a client sends: it may not name what only
// the operator may grant on the host — host file paths, environment
// variables, secrets, marketplace directories, a chain file, microVM
// images other than the server config's. Each field that does is an
// error naming it. (The chain of a client config's runs is always the
// server's.)
func OperatorOnly(cfg, server *config.Config) config.Diagnostics {
	var ds config.Diagnostics
	refuse := func(path, what string) {
		ds = append(ds, config.Diagnostic{Code: CodeClientConfig, Severity: config.SeverityError, Path: path, Span: cfg.Span(path),
			Message: what + " is granted by the operator, not by a config sent over MCP",
			Hint:    "remove it; the operator sets it in the config ccos mcp is started with (--config)"})
	}
	if c := cfg.Capabilities; c.FS.Enabled || len(c.FS.Paths) > 0 {
		refuse("capabilities.fs", "access to host files (:capabilities :fs)")
	}
	if c := cfg.Capabilities; c.Env.Enabled || len(c.Env.Vars) > 0 {
		refuse("capabilities.env", "reading host environment variables (:capabilities :env)")
	}
	if len(cfg.Secrets) > 0 {
		// A client's config would otherwise send the host's credentials
		// to a domain of its choosing.
		refuse("secrets", "credentials read from the host (:secrets)")
	}
	if len(cfg.Marketplace.RegistryPaths) > 0 {
		refuse("marketplace.registry_paths", "reading contract directories on the host (:marketplace :registry_paths)")
	}
	if cfg.CausalChain.Storage.Path != "" {
		refuse("causal_chain.storage.path", "a chain file on the host (:causal_chain :storage :path)")
	}
	if vm := cfg.MicroVM; vm != nil {
		// Relative image paths would resolve against another directory
		// than the server config's: only the same absolute paths pass.
		if server.MicroVM == nil || !filepath.IsAbs(vm.Kernel.Image) || vm.Kernel.Image != server.MicroVM.Kernel.Image {
			refuse("microvm.kernel.image", "a kernel image on the host other than the server config's (by absolute path)")
		}
		if server.MicroVM == nil || !filepath.IsAbs(vm.Rootfs.Image) || vm.Rootfs.Image != server.MicroVM.Rootfs.Image {
			refuse("microvm.rootfs.image", "a root file system image on the host other than the server config's (by absolute path)")
		}
	}
	return ds
}
