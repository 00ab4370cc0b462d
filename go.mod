module github.com/ccos-project/ccos

go 1.26.8

require (
	github.com/elastic/go-seccomp-bpf v1.6.0
	github.com/spf13/cobra v1.10.1
	github.com/tetratelabs/wazero v1.12.0
	golang.org/x/net v0.47.0
	golang.org/x/sys v0.44.0
)

require (
	github.com/inconshreveable/mousetrap v1.1.0 // indirect
	github.com/spf13/pflag v1.0.9 // indirect
	golang.org/x/text v0.31.0 // indirect
)
