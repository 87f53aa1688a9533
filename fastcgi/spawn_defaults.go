package fastcgi

import (
	"time"

	"github.com/ferrygw/ferry/internal/defaults"
)

// orInt and dur are the names spawn.go uses for [defaults.Or]; they go
// with spawn.go when the worker pool moves to a package of its own.

func orInt(v, def int) int { return defaults.Or(v, def) }

func dur(d, def time.Duration) time.Duration { return defaults.Or(d, def) }
