package engine

import (
	"github.com/ccos-project/ccos/config"
	"github.com/ccos-project/ccos/rtfs"
)

// GuestConfig is the guest's copy of the agent config, as a guest image
// carries it: expanded, without :microvm :attestation :expect_rootfs_hash
// (a rootfs cannot hold its own hash, and pinning it must not change the
// image).
func GuestConfig(res *config.Result) []byte {
	m := res.Expanded
	if vm, ok := m.GetKeyword("microvm"); ok {
		if vmm, ok := vm.(*rtfs.Map); ok {
			if att, ok := vmm.GetKeyword("attestation"); ok {
				if am, ok := att.(*rtfs.Map); ok {
					am = am.Dissoc(rtfs.Keyword{Name: "expect_rootfs_hash"})
					m = m.Assoc(rtfs.Keyword{Name: "microvm"}, vmm.Assoc(rtfs.Keyword{Name: "attestation"}, am))
				}
			}
		}
	}
	return []byte(";; The guest's copy of the agent config (expanded; the rootfs hash the host\n;; expects is left out, as a rootfs cannot hold its own hash).\n" + config.Canonical(m) + "\n")
}
