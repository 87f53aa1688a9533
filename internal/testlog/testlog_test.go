package testlog

import (
	"fmt"
	"slices"
	"sync"
	"testing"
)

func TestBuffer(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() { defer wg.Done(); fmt.Fprintf(&b, "line %d ok\n", i) }()
	}
	wg.Wait()
	if got := len(b.Lines("line", "ok")); got != 50 {
		t.Errorf("%d lines with both words; want 50", got)
	}
	if got := b.Lines("line 7 "); !slices.Equal(got, []string{"line 7 ok"}) {
		t.Errorf("Lines(line 7) = %q", got)
	}
	if !b.Contains("line 49 ok") || b.Contains("line 50") {
		t.Error("Contains is wrong")
	}
}
