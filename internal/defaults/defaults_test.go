package defaults

import (
	"testing"
	"time"
)

func TestOr(t *testing.T) {
	for _, tt := range []struct{ v, def, want int }{{0, 5, 5}, {-1, 5, 5}, {3, 5, 3}} {
		if got := Or(tt.v, tt.def); got != tt.want {
			t.Errorf("Or(%d, %d) = %d; want %d", tt.v, tt.def, got, tt.want)
		}
	}
	if got := Or(-time.Second, time.Minute); got != time.Minute {
		t.Errorf("Or(-1s, 1m) = %v; want 1m0s", got)
	}
	if got := Or(int64(7), 1); got != 7 {
		t.Errorf("Or(7, 1) = %d; want 7", got)
	}
}
