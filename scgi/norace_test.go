//go:build !race

package scgi

const raceEnabled = false
