//go:build !race

package h1

// raceEnabled reports whether the race detector is on: allocation counts
// are not this package's then.
const raceEnabled = false
