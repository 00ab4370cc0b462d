// Command badimport imports a socket function that WasmEdge adds to
// wasi_snapshot_preview1 and wazero does not provide; the wasm provider
// must refuse to run it.
package main

import "unsafe"

//go:wasmimport wasi_snapshot_preview1 sock_open
func sockOpen(family, kind int32, fd unsafe.Pointer) uint32

func main() {
	var fd int32
	sockOpen(2, 1, unsafe.Pointer(&fd))
}
