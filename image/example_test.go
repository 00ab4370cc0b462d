package image_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/ccos-project/ccos/image"
)

// An image for the installed Debian cloud kernel, built into a cache
// directory only when one built from the same bytes is not there yet.
func ExampleCached() {
	initBin, err := os.ReadFile("ccos-init") // the static guest /init
	if err != nil {
		log.Fatal(err)
	}
	epoch, err := image.EpochFromEnv()
	if err != nil {
		log.Fatal(err)
	}
	img, err := image.Cached(context.Background(), image.Inputs{
		Init:            initBin,
		ConfigFile:      "agent.config.rtfs",
		CapabilitiesDir: "capabilities",
		Epoch:           epoch,
	}, "/var/cache/ccos/images")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("kernel   ", img.Kernel, img.Measurements.Kernel)
	fmt.Println("initramfs", img.Initramfs, img.Measurements.Initramfs)
	fmt.Println("rootfs   ", img.Rootfs, img.Measurements.Rootfs)
}
