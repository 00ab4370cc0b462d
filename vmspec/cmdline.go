package vmspec

import (
	"fmt"
	"strings"
)

// reservedBootArgs are kernel parameters ccos sets itself (or Firecracker
// sets from the drive list); a :kernel :cmdline that sets one is refused,
// because it could make the root writable, change what runs as init, or
// keep a panicked guest alive.
var reservedBootArgs = map[string]bool{
	"root": true, "rootfstype": true, "rootflags": true, "ro": true, "rw": true,
	"init": true, "rdinit": true, "panic": true, "reboot": true,
}

// userBootArgs splits :kernel :cmdline into parameters and refuses the ones
// ccos owns.
func userBootArgs(cmdline string) ([]string, error) {
	args := strings.Fields(cmdline)
	for _, a := range args {
		key, _, _ := strings.Cut(a, "=")
		if reservedBootArgs[key] || strings.HasPrefix(key, "ccos.") || a == "--" {
			return nil, fmt.Errorf("%w: :microvm :kernel :cmdline sets %q; ccos sets root, init, panic and reboot itself (remove it)", ErrReservedBootArg, a)
		}
		if strings.ContainsAny(a, "\"'") {
			return nil, fmt.Errorf("%w: :microvm :kernel :cmdline parameter %q is quoted; write parameters without quotes", ErrReservedBootArg, a)
		}
	}
	return args, nil
}

func hasParam(args []string, key string) bool {
	for _, a := range args {
		if k, _, _ := strings.Cut(a, "="); k == key {
			return true
		}
	}
	return false
}
