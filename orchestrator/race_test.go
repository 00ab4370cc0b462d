//go:build race

package orchestrator

// raceDetector is set when the tests run under the race detector, which
// makes the guest and the host several times slower: floods are smaller.
const raceDetector = true
