package cgi_test

import (
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"

	"github.com/ferrygw/ferry/cgi"
	"github.com/ferrygw/ferry/scgi"
	"github.com/rs/zerolog"
)

// get prints the status and body of a GET of url.
func get(url string) {
	resp, err := http.Get(url)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s: %s", resp.Status, body)
}

// writeScript writes a shell script into dir.
func writeScript(dir, name, text string, mode os.FileMode) string {
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+text), mode); err != nil {
		log.Fatal(err)
	}
	return path
}

// A Handler runs one script per request; here one script, mounted at
// /hello: the rest of the path is PATH_INFO.
func ExampleHandler() {
	dir, err := os.MkdirTemp("", "ferry-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil { // scripts run as www-data when ferry is root
		log.Fatal(err)
	}
	script := writeScript(dir, "hello.sh", `printf 'Content-Type: text/plain\n\nhello from %s, PATH_INFO %s\n' "$SCRIPT_NAME" "$PATH_INFO"`, 0o755)

	quiet := zerolog.Nop()
	srv := httptest.NewServer(&cgi.Handler{Path: script, ScriptName: "/hello", Settings: cgi.Settings{Logger: &quiet}})
	defer srv.Close()

	get(srv.URL + "/hello/world")
	// Output:
	// 200 OK: hello from /hello, PATH_INFO /world
}

// A Dir gives a Handler a directory of scripts with ScriptAlias semantics:
// the first executable file on the path runs, and nothing else is shown.
func ExampleDir() {
	dir, err := os.MkdirTemp("", "ferry-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil { // scripts run as www-data when ferry is root
		log.Fatal(err)
	}
	writeScript(dir, "wiki.sh", `printf 'Content-Type: text/plain\n\npage %s\n' "$PATH_INFO"`, 0o755)
	writeScript(dir, "notes.txt", "not a script\n", 0o644)

	quiet := zerolog.Nop()
	srv := httptest.NewServer(&cgi.Handler{
		Resolver: &cgi.Dir{Path: dir, Prefix: "/cgi-bin/"},
		Settings: cgi.Settings{Logger: &quiet},
	})
	defer srv.Close()

	get(srv.URL + "/cgi-bin/wiki.sh/Main/Page")
	get(srv.URL + "/cgi-bin/notes.txt")
	get(srv.URL + "/cgi-bin/missing.sh")
	// Output:
	// 200 OK: page /Main/Page
	// 403 Forbidden: 403 Forbidden
	// 404 Not Found: 404 Not Found
}

// A Forwarder passes requests to a long-lived application through a
// Transport: here an SCGI application on loopback, mounted at /app.
func ExampleForwarder() {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	app := &scgi.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		env := cgi.Origin(r.Context()) // the meta-variables the gateway sent
		fmt.Fprintf(w, "SCRIPT_NAME=%s PATH_INFO=%s APP_ENV=%s\n", env["SCRIPT_NAME"], env["PATH_INFO"], env["APP_ENV"])
	})}
	go app.Serve(l)
	defer app.Close()

	f := &cgi.Forwarder{
		Transport: &scgi.Client{Network: "tcp", Address: l.Addr().String()},
		Resolver:  cgi.Mount{Prefix: "/app/"},
		Settings:  cgi.Settings{Env: []string{"APP_ENV=production"}},
		Name:      "scgi",
	}
	srv := httptest.NewServer(f)
	defer srv.Close()

	get(srv.URL + "/app/hello")
	// Output:
	// 200 OK: SCRIPT_NAME=/app PATH_INFO=/hello APP_ENV=production
}
