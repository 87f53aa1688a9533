//go:build race

package scgi

// raceEnabled: under the race detector allocation counts are its own
// (append and slices.Grow allocate differently), so the tests that count
// allocations skip their counts.
const raceEnabled = true
