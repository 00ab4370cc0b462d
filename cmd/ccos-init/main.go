// Command ccos-init is the microVM guest's /init.
//
// This is a placeholder so that `go generate ./image/initbin` has something
// to build; the lead replaces it with the real init.
package main

// placeholder; the lead replaces it
func main() {}
