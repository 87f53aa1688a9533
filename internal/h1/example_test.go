package h1_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/ferrygw/ferry/internal/h1"
)

// A Server serves any http.Handler, as net/http's does.
func Example() {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	s := &h1.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "hello from %s %s\n", r.Method, r.URL.Path)
		}),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	go s.Serve(l)
	defer s.Close()

	resp, err := http.Get("http://" + l.Addr().String() + "/path")
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	fmt.Print(resp.Status, " ", string(b))
	// Output: 200 OK hello from GET /path
}
