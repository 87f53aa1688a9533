package cgi

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"testing/iotest"
)

func TestSpoolBody(t *testing.T) {
	tests := []struct {
		name         string
		memMax, max  int64
		size         int
		wantFile     bool
		wantTooLarge bool
	}{
		{name: "empty", memMax: 10, max: 100, size: 0},
		{name: "under memMax", memMax: 10, max: 100, size: 9},
		{name: "at memMax", memMax: 10, max: 100, size: 10},
		{name: "memMax+1 goes to a file", memMax: 10, max: 100, size: 11, wantFile: true},
		{name: "at max in a file", memMax: 10, max: 100, size: 100, wantFile: true},
		{name: "max+1 above memMax", memMax: 10, max: 100, size: 101, wantTooLarge: true},
		{name: "far over max above memMax", memMax: 10, max: 100, size: 10000, wantTooLarge: true},
		{name: "at max below memMax", memMax: 100, max: 10, size: 10},
		{name: "max+1 below memMax", memMax: 100, max: 10, size: 11, wantTooLarge: true},
		{name: "max equals memMax, at it", memMax: 10, max: 10, size: 10},
		{name: "max equals memMax, over", memMax: 10, max: 10, size: 11, wantTooLarge: true},
		{name: "memMax 0, empty", memMax: 0, max: 100, size: 0},
		{name: "memMax 0, one byte", memMax: 0, max: 100, size: 1, wantFile: true},
		{name: "max 0, one byte", memMax: 10, max: 0, size: 1, wantTooLarge: true},
		{name: "larger than a copy buffer", memMax: 1000, max: 1 << 20, size: 200 << 10, wantFile: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			body := make([]byte, tt.size)
			for i := range body {
				body[i] = byte(i * 7)
			}
			// HalfReader: short reads must not change the outcome.
			sp, err := SpoolBody(iotest.HalfReader(bytes.NewReader(body)), tt.memMax, tt.max, dir)
			if tt.wantTooLarge {
				if !errors.Is(err, ErrBodyTooLarge) {
					t.Errorf("SpoolBody(%d bytes, mem %d, max %d) error = %v; want ErrBodyTooLarge", tt.size, tt.memMax, tt.max, err)
				}
				if sp != nil {
					sp.Close()
				}
				assertDirEmpty(t, dir)
				return
			}
			if err != nil {
				t.Fatalf("SpoolBody(%d bytes, mem %d, max %d): %v", tt.size, tt.memMax, tt.max, err)
			}
			defer sp.Close()
			if sp.Size() != int64(tt.size) {
				t.Errorf("Size() = %d; want %d", sp.Size(), tt.size)
			}
			f := sp.File()
			if got := f != nil; got != tt.wantFile {
				t.Errorf("SpoolBody(%d bytes, mem %d): in a file = %v; want %v", tt.size, tt.memMax, got, tt.wantFile)
			}
			if f != nil {
				if _, err := os.Stat(f.Name()); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("spool file %s: Stat error = %v; want it unlinked", f.Name(), err)
				}
				if !strings.HasPrefix(f.Name(), dir) {
					t.Errorf("spool file %s; want it in %s", f.Name(), dir)
				}
			}
			assertDirEmpty(t, dir)
			got, err := io.ReadAll(sp.Reader())
			if err != nil {
				t.Fatalf("reading the spool: %v", err)
			}
			if !bytes.Equal(got, body) {
				t.Errorf("spooled body: %d bytes, differing from the %d sent", len(got), len(body))
			}
			if err := sp.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
}

func assertDirEmpty(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		t.Errorf("left behind in the spool directory: %s", e.Name())
	}
}

func TestSpoolBodyReadError(t *testing.T) {
	boom := errors.New("client went away")
	for _, tt := range []struct {
		name   string
		before int // bytes before the error
	}{
		{"in memory", 5},
		{"in the file", 50},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			r := io.MultiReader(bytes.NewReader(make([]byte, tt.before)), iotest.ErrReader(boom))
			sp, err := SpoolBody(r, 10, 100, dir)
			if !errors.Is(err, boom) {
				t.Errorf("SpoolBody on a failing reader: error = %v; want it to wrap %v", err, boom)
			}
			if sp != nil {
				t.Errorf("SpoolBody on a failing reader returned a Spool")
				sp.Close()
			}
			assertDirEmpty(t, dir)
		})
	}
}

func TestSpoolBodyBadDir(t *testing.T) {
	dir := t.TempDir() + "/does-not-exist"
	_, err := SpoolBody(strings.NewReader(strings.Repeat("x", 20)), 10, 100, dir)
	if err == nil || errors.Is(err, ErrBodyTooLarge) {
		t.Errorf("SpoolBody into %s: error = %v; want a spooling error", dir, err)
	}
	// In memory needs no directory.
	sp, err := SpoolBody(strings.NewReader("small"), 10, 100, dir)
	if err != nil {
		t.Fatalf("SpoolBody small body into %s: %v", dir, err)
	}
	sp.Close()
}
