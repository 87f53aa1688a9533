package fastcgi

import (
	"errors"
	"io"
	"os"
	"testing"
	"testing/synctest"

	"github.com/ferrygw/ferry/internal/leakcheck"
)

func TestBodyBufferMemory(t *testing.T) {
	dir := t.TempDir()
	b := newBodyBuffer(1<<10, 1<<20, dir)
	defer b.Close()
	b.write([]byte("hello, "))
	p := []byte("world")
	b.write(p)
	copy(p, "XXXXX") // write copied p
	b.end()
	got, err := io.ReadAll(b)
	if err != nil || string(got) != "hello, world" {
		t.Errorf("ReadAll = %q, %v; want \"hello, world\", nil", got, err)
	}
	if b.file != nil {
		t.Errorf("a body under maxMem went to a file")
	}
}

func TestBodyBufferSpill(t *testing.T) {
	leakcheck.Check(t)
	dir := t.TempDir()
	b := newBodyBuffer(8, 1<<20, dir)
	b.write([]byte("0123"))
	b.write([]byte("4567")) // exactly maxMem: still memory
	if b.file != nil {
		t.Fatalf("spilled at exactly maxMem")
	}
	// Read part of the memory, then cross into the file.
	buf := make([]byte, 3)
	if n, err := b.Read(buf); err != nil || string(buf[:n]) != "012" {
		t.Fatalf("Read = %q, %v; want \"012\"", buf[:n], err)
	}
	b.write([]byte("89abcdef")) // 5 + 8 > 8: spill
	if b.file == nil {
		t.Fatalf("did not spill past maxMem")
	}
	b.write([]byte("gh"))
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 0 {
		t.Errorf("temp dir holds %d entries, want 0: the spill file must be unlinked", len(ents))
	}
	b.end()
	got, err := io.ReadAll(b)
	if err != nil || string(got) != "3456789abcdefgh" {
		t.Errorf("ReadAll = %q, %v; want \"3456789abcdefgh\"", got, err)
	}
	b.Close()
	if b.file != nil {
		t.Errorf("Close left the spill file open")
	}
}

// TestBodyBufferInterleaved reads while writing, across several spills.
func TestBodyBufferInterleaved(t *testing.T) {
	b := newBodyBuffer(16, 1<<20, t.TempDir())
	defer b.Close()
	var want, got []byte
	buf := make([]byte, 5)
	for i := range 200 {
		chunk := []byte{byte(i), byte(i >> 8), 'x', byte(i * 7)}
		want = append(want, chunk...)
		b.write(chunk)
		if i%3 == 0 {
			n, err := b.Read(buf)
			if err != nil {
				t.Fatalf("Read error = %v", err)
			}
			got = append(got, buf[:n]...)
		}
	}
	b.end()
	rest, err := io.ReadAll(b)
	if err != nil {
		t.Fatalf("ReadAll error = %v", err)
	}
	got = append(got, rest...)
	if string(got) != string(want) {
		t.Errorf("read %d bytes differing from the %d written", len(got), len(want))
	}
}

func TestBodyBufferTooLarge(t *testing.T) {
	b := newBodyBuffer(4, 10, t.TempDir())
	defer b.Close()
	b.write([]byte("0123456789")) // exactly maxTotal: fine
	if b.err != nil {
		t.Fatalf("failed at exactly maxTotal: %v", b.err)
	}
	b.write([]byte("x"))
	b.end()
	_, err := io.ReadAll(b)
	if !errors.Is(err, ErrBodyTooLarge) {
		t.Errorf("ReadAll error = %v; want ErrBodyTooLarge", err)
	}
	// Later writes change nothing.
	b.write([]byte("y"))
	if _, err := b.Read(make([]byte, 1)); !errors.Is(err, ErrBodyTooLarge) {
		t.Errorf("Read after more writes error = %v; want ErrBodyTooLarge", err)
	}
}

func TestBodyBufferAbortBlockedReader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBodyBuffer(1<<10, 1<<20, t.TempDir())
		defer b.Close()
		type result struct {
			data []byte
			err  error
		}
		done := make(chan result)
		go func() {
			data, err := io.ReadAll(b)
			done <- result{data, err}
		}()
		b.write([]byte("partial"))
		synctest.Wait() // the reader consumed "partial" and waits for more
		select {
		case r := <-done:
			t.Fatalf("reader returned %q, %v before the stream ended", r.data, r.err)
		default:
		}
		b.abort(ErrRequestAborted)
		r := <-done
		if !errors.Is(r.err, ErrRequestAborted) {
			t.Errorf("blocked reader got %q, %v; want ErrRequestAborted", r.data, r.err)
		}
	})
}

func TestBodyBufferEndWakesReader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBodyBuffer(1<<10, 1<<20, t.TempDir())
		defer b.Close()
		done := make(chan error)
		go func() {
			_, err := b.Read(make([]byte, 10))
			done <- err
		}()
		synctest.Wait()
		b.end()
		if err := <-done; err != io.EOF {
			t.Errorf("blocked Read after end = %v; want io.EOF", err)
		}
	})
}

func TestBodyBufferCloseDropsWrites(t *testing.T) {
	leakcheck.Check(t)
	dir := t.TempDir()
	b := newBodyBuffer(2, 1<<20, dir)
	b.write([]byte("abcd")) // spilled
	b.Close()
	b.write([]byte("more"))
	if len(b.chunks) != 0 || b.file != nil || b.mem != 0 {
		t.Errorf("write after Close kept data: %d chunks, file %v, mem %d", len(b.chunks), b.file, b.mem)
	}
	if n, err := b.Read(make([]byte, 4)); err == nil || n != 0 {
		t.Errorf("Read after Close = %d, %v; want 0 and an error", n, err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("temp dir holds %d entries after Close", len(ents))
	}
}

func TestBodyBufferSpillFailure(t *testing.T) {
	b := newBodyBuffer(2, 1<<20, "/nonexistent/dir/for/ferry/test")
	defer b.Close()
	b.write([]byte("abcd"))
	b.end()
	_, err := io.ReadAll(b)
	if err == nil || errors.Is(err, ErrBodyTooLarge) {
		t.Errorf("ReadAll with an unusable TempDir error = %v; want a spooling error", err)
	}
}
