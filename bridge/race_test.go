//go:build race

package bridge

// raceEnabled: the race detector allows 8128 goroutines at once, fewer
// than a flood of 10,000 connections needs.
const raceEnabled = true
