package wasm

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// reserveMemory maps size bytes of private anonymous memory without
// reserving swap for it: the kernel commits a page when the guest first
// touches it, and every page reads zero until then, as WebAssembly
// requires of new memory.
func reserveMemory(size uint64) ([]byte, error) {
	return syscall.Mmap(-1, 0, int(size), syscall.PROT_READ|syscall.PROT_WRITE,
		syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS|syscall.MAP_NORESERVE)
}

func releaseMemory(region []byte) { syscall.Munmap(region) }

// checkOwner refuses a cache directory owned by another user.
func checkOwner(info fs.FileInfo) error {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("%s: cannot read its owner", info.Name())
	}
	if uid := os.Geteuid(); int(st.Uid) != uid {
		return fmt.Errorf("%s is owned by uid %d, not by this user (uid %d)", info.Name(), st.Uid, uid)
	}
	return nil
}
