package fastcgi_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"time"

	"github.com/ferrygw/ferry/cgi"
	"github.com/ferrygw/ferry/fastcgi"
)

// ExampleServe serves a handler to a web server that spawned the
// application with its listening socket as file descriptor 0 (spawn-fcgi,
// mod_fcgid), as net/http/fcgi.Serve does.
func ExampleServe() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "Hello from %s, role %s\n", r.URL.Path, fastcgi.RoleOf(r))
	})
	if err := fastcgi.Serve(nil, nil); err != nil {
		log.Fatal(err)
	}
}

// ExampleServer listens on a Unix socket for nginx ("fastcgi_pass
// unix:/run/app.sock;") and shuts down gracefully on an interrupt.
func ExampleServer() {
	l, err := net.Listen("unix", "/run/app.sock")
	if err != nil {
		log.Fatal(err)
	}
	srv := &fastcgi.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			fmt.Fprintf(w, "Hello, %s\n", r.RemoteAddr)
		}),
		MaxRequestBody: 10 << 20,
		IdleTimeout:    time.Minute,
	}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt)
		<-sig
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	if err := srv.Serve(l); err != fastcgi.ErrServerClosed {
		log.Fatal(err)
	}
}

// This example plays the web server against a Server on an in-memory
// connection: one Responder request, record by record.
func ExampleServer_ServeConn() {
	srv := &fastcgi.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "%s %s", r.Method, r.URL)
	})}
	app, web := net.Pipe()
	go srv.ServeConn(app)

	var req []byte
	req = fastcgi.AppendBeginRequest(req, 1, fastcgi.RoleResponder, 0)
	var params []byte
	params = fastcgi.AppendPair(params, "REQUEST_METHOD", "GET")
	params = fastcgi.AppendPair(params, "REQUEST_URI", "/hello?x=1")
	req = fastcgi.AppendRecord(req, fastcgi.TypeParams, 1, params)
	req = fastcgi.AppendRecord(req, fastcgi.TypeParams, 1, nil)
	req = fastcgi.AppendRecord(req, fastcgi.TypeStdin, 1, nil)
	go web.Write(req)

	rd := fastcgi.NewReader(web)
	for {
		rec, err := rd.Next()
		if err != nil {
			break // the application closes the connection: no FCGI_KEEP_CONN
		}
		switch rec.Type {
		case fastcgi.TypeStdout:
			fmt.Printf("STDOUT %q\n", rec.Content)
		case fastcgi.TypeEndRequest:
			end, _ := fastcgi.ParseEndRequest(rec.Content)
			fmt.Println("END_REQUEST", end.ProtocolStatus)
		}
	}
	// Output:
	// STDOUT "Status: 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nGET /hello?x=1"
	// STDOUT ""
	// END_REQUEST REQUEST_COMPLETE
}

// NewHandler puts a FastCGI application (here a Server on loopback) behind
// an HTTP server, mounted at /app: SCRIPT_NAME is /app and the rest of the
// path PATH_INFO.
func ExampleNewHandler() {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	app := &fastcgi.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		env := cgi.Origin(r.Context()) // the PARAMS the gateway sent
		fmt.Fprintf(w, "SCRIPT_NAME=%s PATH_INFO=%s\n", env["SCRIPT_NAME"], env["PATH_INFO"])
	})}
	go app.Serve(l)
	defer app.Close()

	c := &fastcgi.Client{Network: "tcp", Address: l.Addr().String(), MaxConns: 4}
	defer c.CloseIdle()
	h := fastcgi.NewHandler(c, cgi.Mount{Prefix: "/app/"}, cgi.Settings{})

	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/app/users/7", nil))
	fmt.Printf("%d: %s", w.Code, w.Body)
	// Output:
	// 200: SCRIPT_NAME=/app PATH_INFO=/users/7
}
