package config_test

import (
	"fmt"

	"github.com/ccos-project/ccos/config"
)

func ExampleLoader_Load() {
	src := `(agent.config
  :version "0.1"
  :agent-id "agent.vm"
  :orchestrator {:isolation {:mode :microvm}}
  :microvm {:kernel {:image "kernels/vmlinuz-min"}
            :rootfs {:image "images/agent-rootfs.img"}
            :resources {:vcpu 2}})`
	res := (&config.Loader{}).Load([]byte(src), "agent.config.rtfs")
	for _, d := range res.Diags {
		fmt.Println(d)
	}
	fmt.Println("valid:", res.Err() == nil)
	// Output:
	// agent.config.rtfs:7:25: UNKNOWN_KEY: unknown key :vcpu in :microvm :resources (hint: did you mean :vcpus?)
	// valid: false
}
