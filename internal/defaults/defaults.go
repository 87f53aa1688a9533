// Package defaults holds the one rule ferry's configuration structs follow
// for sizes, counts and durations: zero or negative means the default.
// (Strings use cmp.Or: empty means the default.) A field that gives a
// negative value its own meaning, such as "negative means none", says so in
// its comment and does not go through Or.
package defaults

import "time"

// Or returns v if it is positive, else def.
func Or[T int | int64 | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}
