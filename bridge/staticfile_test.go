package bridge

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestStaticFileReadSeek: a staticFile reads and seeks as an *os.File
// over the same file does, through a table of steps, sendfile between
// them included (a loopback TCPConn's ReadFrom reaches it through
// SyscallConn, as h1's does).
func TestStaticFileReadSeek(t *testing.T) {
	data := make([]byte, 300<<10)
	rand.Read(data)
	file := filepath.Join(t.TempDir(), "f.bin")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	type step struct {
		op     string // read, seek, send
		n      int64  // bytes to read or send; the offset to seek to
		whence int
	}
	for _, tt := range []struct {
		name  string
		steps []step
	}{
		{"ServeContent's size, then the whole", []step{{"seek", 0, io.SeekEnd}, {"seek", 0, io.SeekStart}, {"read", 512, 0}, {"send", 1 << 20, 0}}},
		{"sniffed, sent from the start", []step{{"read", 512, 0}, {"seek", 0, io.SeekStart}, {"send", 1 << 20, 0}}},
		{"a range", []step{{"seek", 100000, io.SeekStart}, {"read", 512, 0}, {"send", 50000, 0}}},
		{"reads after a send", []step{{"send", 70000, 0}, {"read", 1000, 0}, {"seek", -10, io.SeekCurrent}, {"read", 20, 0}, {"send", 3000, 0}, {"read", 5, 0}}},
		{"ranges, read", []step{{"seek", 5000, io.SeekStart}, {"read", 100, 0}, {"seek", 200000, io.SeekStart}, {"read", 4096, 0}, {"seek", 1, io.SeekStart}, {"read", 10, 0}}},
		{"to the end and past", []step{{"seek", -100, io.SeekEnd}, {"read", 4096, 0}, {"read", 10, 0}, {"seek", 10, io.SeekEnd}, {"read", 10, 0}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sf, err := openStatic(file, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer sf.Close()
			of, err := os.Open(file)
			if err != nil {
				t.Fatal(err)
			}
			defer of.Close()
			for i, s := range tt.steps {
				switch s.op {
				case "seek":
					got, gerr := sf.Seek(s.n, s.whence)
					want, werr := of.Seek(s.n, s.whence)
					if got != want || (gerr == nil) != (werr == nil) {
						t.Fatalf("step %d, Seek(%d, %d) = %d, %v; *os.File: %d, %v", i, s.n, s.whence, got, gerr, want, werr)
					}
				case "read":
					got, gerr := io.ReadAll(io.LimitReader(sf, s.n))
					want, werr := io.ReadAll(io.LimitReader(of, s.n))
					if !bytes.Equal(got, want) || gerr != nil || werr != nil {
						t.Fatalf("step %d, read %d: %d bytes, %v; *os.File: %d bytes, %v; equal %v", i, s.n, len(got), gerr, len(want), werr, bytes.Equal(got, want))
					}
				case "send":
					got := sendThrough(t, sf, s.n)
					want, _ := io.ReadAll(io.LimitReader(of, s.n))
					if !bytes.Equal(got, want) {
						t.Fatalf("step %d, send %d: %d bytes, *os.File %d, equal %v", i, s.n, len(got), len(want), bytes.Equal(got, want))
					}
				}
			}
		})
	}
}

// sendThrough sends n bytes of f (fewer at its end) over a loopback TCP
// connection with the connection's ReadFrom, which uses sendfile for a
// source with SyscallConn, and returns what arrived.
func sendThrough(t *testing.T, f *staticFile, n int64) []byte {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(c)
		got <- b
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.(*net.TCPConn).ReadFrom(&io.LimitedReader{R: f, N: n}); err != nil {
		t.Fatal(err)
	}
	if f.off != -1 {
		t.Fatal("the connection's ReadFrom did not take the descriptor (sendfile) through SyscallConn")
	}
	c.Close()
	return <-got
}

// TestStaticFileRefusals: openStatic refuses what is not a regular file,
// a FIFO without waiting for a writer, and Seek a bad whence or a
// negative position.
func TestStaticFileRefusals(t *testing.T) {
	dir := t.TempDir()
	if _, err := openStatic(dir, 0); !errors.Is(err, errIsDir) {
		t.Errorf("openStatic of a directory: %v; want %v", err, errIsDir)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	opened := make(chan error, 1)
	go func() {
		_, err := openStatic(fifo, 0)
		opened <- err
	}()
	select {
	case err := <-opened:
		if !errors.Is(err, errNotRegular) {
			t.Errorf("openStatic of a FIFO: %v; want %v", err, errNotRegular)
		}
	case <-time.After(5 * time.Second):
		// The goroutine stays blocked in open; a writer frees it.
		if w, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
			w.Close()
		}
		t.Fatal("openStatic of a FIFO with no writer: still waiting after 5s")
	}
	if _, err := openStatic(filepath.Join(dir, "none"), 0); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("openStatic of nothing: %v; want ENOENT", err)
	}
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, []byte("abc"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := openStatic(file, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, s := range []struct {
		off    int64
		whence int
	}{{-1, io.SeekStart}, {-4, io.SeekEnd}, {0, 3}} {
		if _, err := f.Seek(s.off, s.whence); err == nil {
			t.Errorf("Seek(%d, %d): no error", s.off, s.whence)
		}
	}
	if b, err := io.ReadAll(f); string(b) != "abc" || err != nil {
		t.Errorf("read after refused seeks: %q, %v", b, err)
	}
}
