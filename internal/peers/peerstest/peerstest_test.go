package peerstest

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// stopTB records Skipf and Fatalf instead of ending the test.
type stopTB struct {
	testing.TB
	skipped, failed string
}

func (tb *stopTB) Skipf(format string, args ...any) { tb.skipped = format }

func (tb *stopTB) Fatalf(format string, args ...any) {
	tb.failed = fmt.Sprintf(format, args...)
}

func TestNeed(t *testing.T) {
	if testing.Short() {
		t.Skip("Need skips every test with -short")
	}
	for _, tt := range []struct {
		ci       string
		wantFail bool
	}{
		{"", false},
		{"false", false},
		{"true", true},
	} {
		t.Run("CI="+tt.ci, func(t *testing.T) {
			t.Setenv("CI", tt.ci)
			tb := &stopTB{TB: t}
			if got := Need(tb, "sh", "ferry-no-such-program"); got != nil {
				t.Errorf("Need = %v; want nil", got)
			}
			if (tb.failed != "") != tt.wantFail || (tb.skipped != "") == tt.wantFail {
				t.Errorf("failed %q, skipped %q; want failure %v", tb.failed, tb.skipped, tt.wantFail)
			}
			if tt.wantFail && !strings.Contains(tb.failed, "peers: ferry-no-such-program not installed; .ci/run installs it") {
				t.Errorf("message %q", tb.failed)
			}
		})
	}
	got := Need(t, "sh")
	if p := got["sh"]; !filepath.IsAbs(p) {
		t.Errorf(`Need(t, "sh")["sh"] = %q; want an absolute path`, p)
	}
}
