//go:build !linux

package serving

// canPollListener says whether readable works here: not on this system,
// where an accept loop accepts as soon as its Gate lets it.
const canPollListener = false

func readable(uintptr) bool { return false }
