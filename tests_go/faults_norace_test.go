//go:build !race

package engine_test

// raceEnabled is recorded in the fault suite's report: the figures of a run
// under the race detector are slower and larger.
const raceEnabled = false
