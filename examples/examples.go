// Package examples holds the example configs and plans of the README; the
// plans are embedded so that the MCP server can offer them to models.
package examples

import (
	"embed"
	"io/fs"
)

//go:embed plans/*.rtfs
var plans embed.FS

// Plans returns the example plans by file name (hello.rtfs, ...).
func Plans() map[string]string {
	out := map[string]string{}
	names, _ := fs.Glob(plans, "plans/*.rtfs")
	for _, n := range names {
		b, err := plans.ReadFile(n)
		if err == nil {
			out[n[len("plans/"):]] = string(b)
		}
	}
	return out
}
