package main

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestServeStaticSendfile: a static file goes out with sendfile, as
// nginx's does, through the access log's response writer: ferry's read
// system calls (/proc/PID/io's syscr, which counts a sendfile once)
// stay far below the 128 reads of 32 KiB a copy of 4 MiB takes. The
// body, whole and as a range, is byte-exact.
func TestServeStaticSendfile(t *testing.T) {
	root := t.TempDir()
	data := make([]byte, 4<<20)
	rand.Read(data)
	if err := os.WriteFile(filepath.Join(root, "big.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	p := startFerry(t, "--root", root)
	pid := p.cmd.Process.Pid
	before := syscalls(t, pid)
	resp, err := http.Get(p.URL + "/big.bin")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	after := syscalls(t, pid)
	if resp.StatusCode != 200 || resp.ContentLength != int64(len(data)) || !bytes.Equal(body, data) {
		t.Fatalf("GET /big.bin = %d, Content-Length %d, %d bytes, equal %v; want 200 and the file's %d bytes",
			resp.StatusCode, resp.ContentLength, len(body), bytes.Equal(body, data), len(data))
	}
	reads := after["syscr"] - before["syscr"]
	t.Logf("4 MiB sent with %d read and %d write system calls", reads, after["syscw"]-before["syscw"])
	if reads >= 64 {
		t.Errorf("4 MiB sent with %d read system calls; want fewer than 64 (sendfile, not a copy)", reads)
	}

	req, _ := http.NewRequest("GET", p.URL+"/big.bin", nil)
	req.Header.Set("Range", "bytes=1000000-2999999")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 206 || resp.Header.Get("Content-Range") != fmt.Sprintf("bytes 1000000-2999999/%d", len(data)) || !bytes.Equal(body, data[1000000:3000000]) {
		t.Errorf("GET /big.bin, bytes=1000000-2999999: %d, %q, %d bytes; want 206 and those 2,000,000 bytes",
			resp.StatusCode, resp.Header.Get("Content-Range"), len(body))
	}
}

// syscalls returns the counts of /proc/PID/io (syscr, syscw, ...).
func syscalls(t *testing.T, pid int) map[string]int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]int64{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ": "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				t.Fatalf("/proc/%d/io: %q", pid, l)
			}
			m[k] = n
		}
	}
	return m
}
