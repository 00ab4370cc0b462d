package archive_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/ccos-project/ccos/archive"
)

// Store an admitted plan and the chain checkpoint that covers its run, then
// read both back.
func Example() {
	tmp, err := os.MkdirTemp("", "archive-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)

	a, err := archive.Open(filepath.Join(tmp, "archive"))
	if err != nil {
		log.Fatal(err)
	}
	defer a.Close()

	ph, err := a.PutPlan(archive.Plan{
		Name:   "greet",
		Source: `(plan "greet" :body (step "hello" (println "hi")))`,
		Steps:  []string{"hello"},
	})
	if err != nil {
		log.Fatal(err)
	}
	ch, err := a.PutCheckpoint(archive.Checkpoint{Note: "ccos.chain/1\n1\nq2t9...=\n\n— host AbCd...\n", Plan: ph})
	if err != nil {
		log.Fatal(err)
	}
	p, _ := a.GetPlan(ph)
	c, _ := a.GetCheckpoint(ch)
	ms, _ := a.Verify()
	fmt.Println(p.Name, p.Steps, c.Plan == ph, len(ms))
	// Output: greet [hello] true 0
}

// Canonical JSON: sorted keys, no white space, RFC 8785 numbers.
func ExampleCanonicalize() {
	c, err := archive.Canonicalize([]byte(`{ "b": 1.0, "a": [1e21, 0.5, "\u00e9"] }`))
	fmt.Println(string(c), err)
	// Output: {"a":[1e+21,0.5,"é"],"b":1} <nil>
}
