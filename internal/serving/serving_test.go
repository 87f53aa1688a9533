package serving

import (
	"net"
	"os"
	"syscall"
	"testing"
)

func TestListenerFromFD(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "plain")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fd, err := syscall.Dup(int(f.Fd())) // ListenerFromFD closes the descriptor it is given
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ListenerFromFD(fd); err == nil {
		t.Error("a plain file was taken for a listening socket")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lf, _ := ln.(*net.TCPListener).File()
	ln.Close()
	fd, err = syscall.Dup(int(lf.Fd()))
	lf.Close()
	if err != nil {
		t.Fatal(err)
	}
	l, err := ListenerFromFD(fd)
	if err != nil {
		t.Fatalf("a listening socket: %v", err)
	}
	l.Close()
}
