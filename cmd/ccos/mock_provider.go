//go:build ccos_mockprovider

package main

import (
	"github.com/ccos-project/ccos/guest"
	"github.com/ccos-project/ccos/sandbox"
	"github.com/ccos-project/ccos/sandbox/mock"
)

// The mock provider runs the guest as a goroutine of ccos itself: no
// isolation, and the guest's workdir capabilities (ccos.io.*) would act on
// the host's own files. It exists only in binaries built with the
// ccos_mockprovider tag, which the CLI tests build; a normal ccos cannot
// reach it, even with --allow-weaker (docs/SECURITY.md).
func init() { sandbox.Register(&mock.Provider{Guest: guest.Run}) }
