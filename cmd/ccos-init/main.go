//go:build linux

// Command ccos-init is /init of a ccos microVM guest: it sets the machine
// up (package guest/vminit), serves the control protocol with the guest
// agent and powers the machine off. `go generate ./image/initbin` builds it
// static for the initramfs.
package main

import (
	"github.com/ccos-project/ccos/guest"
	"github.com/ccos-project/ccos/guest/vminit"
)

func main() { vminit.Main(guest.Run) }
