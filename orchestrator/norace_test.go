//go:build !race

package orchestrator

const raceDetector = false
