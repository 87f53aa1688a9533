//go:build race

package benchmarks

// raceEnabled: the race detector makes the re-executed test binary too
// slow to start for per-request CGI rows in a short run.
const raceEnabled = true
