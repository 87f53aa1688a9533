package scgi_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"

	"github.com/ferrygw/ferry/cgi"
	"github.com/ferrygw/ferry/scgi"
)

// startApp serves h over SCGI on a loopback port and returns its address
// and a function that stops it.
func startApp(h http.Handler) (string, func()) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv := &scgi.Server{Handler: h}
	go srv.Serve(l)
	return l.Addr().String(), func() { srv.Close() }
}

// A Server serves a Go handler as an SCGI application; a Client plays the
// web server against it over loopback, one request on one connection.
func ExampleServer() {
	addr, stop := startApp(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "%s %s from %s", r.Method, r.URL, r.RemoteAddr)
	}))
	defer stop()

	c := &scgi.Client{Network: "tcp", Address: addr}
	resp, err := c.RoundTrip(context.Background(), &cgi.AppRequest{Params: []string{
		"REQUEST_METHOD=GET", "REQUEST_URI=/hello?x=1", "QUERY_STRING=x=1",
		"SERVER_PROTOCOL=HTTP/1.1", "REMOTE_ADDR=192.0.2.7", "REMOTE_PORT=51000",
	}})
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%q\n", answer)
	// Output:
	// "Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nGET /hello?x=1 from 192.0.2.7:51000"
}

// NewHandler puts an SCGI application behind an HTTP server, mounted at
// /app: SCRIPT_NAME is /app and the rest of the path PATH_INFO.
func ExampleNewHandler() {
	addr, stop := startApp(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		env := cgi.Origin(r.Context())
		fmt.Fprintf(w, "SCRIPT_NAME=%s PATH_INFO=%s\n", env["SCRIPT_NAME"], env["PATH_INFO"])
	}))
	defer stop()

	h := scgi.NewHandler(&scgi.Client{Network: "tcp", Address: addr}, cgi.Mount{Prefix: "/app/"}, cgi.Settings{})

	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/app/users/7", nil))
	fmt.Printf("%d: %s", w.Code, w.Body)
	// Output:
	// 200: SCRIPT_NAME=/app PATH_INFO=/users/7
}
