package cgi_test

import (
	"bufio"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"slices"
	"strings"

	"github.com/ferrygw/ferry/cgi"
)

func ExampleAppendEnv() {
	r := httptest.NewRequest("GET", "/cgi-bin/wiki.pl/Main/Page?action=edit", nil)
	r.RemoteAddr = "192.0.2.10:51000"
	r.Header.Set("Proxy", "http://attacker.example") // httpoxy: never HTTP_PROXY
	r.Header.Add("Cookie", "a=1")
	r.Header.Add("Cookie", "b=2")

	env, err := cgi.AppendEnv(nil, r, cgi.Script{
		Name:     "/cgi-bin/wiki.pl",
		PathInfo: "/Main/Page",
		Filename: "/srv/cgi-bin/wiki.pl",
		Root:     "/srv/www",
	}, "ferry")
	if err != nil {
		log.Fatal(err)
	}
	slices.Sort(env)
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "PATH_INFO", "PATH_TRANSLATED", "QUERY_STRING", "REMOTE_ADDR", "REQUEST_METHOD",
			"SCRIPT_NAME", "SERVER_NAME", "SERVER_PORT", "HTTP_COOKIE", "HTTP_PROXY":
			fmt.Println(kv)
		}
	}
	// Output:
	// HTTP_COOKIE=a=1; b=2
	// PATH_INFO=/Main/Page
	// PATH_TRANSLATED=/srv/www/Main/Page
	// QUERY_STRING=action=edit
	// REMOTE_ADDR=192.0.2.10
	// REQUEST_METHOD=GET
	// SCRIPT_NAME=/cgi-bin/wiki.pl
	// SERVER_NAME=example.com
	// SERVER_PORT=80
}

func ExampleReadResponse() {
	// What a script wrote to its standard output.
	out := "Status: 404 Not Found\r\n" +
		"Content-Type: text/plain\r\n" +
		"Set-Cookie: a=1\r\n" +
		"Set-Cookie: b=2\r\n" +
		"\r\n" +
		"no such page\n"
	br := bufio.NewReader(strings.NewReader(out))
	resp, err := cgi.ReadResponse(br, false, cgi.HeaderLimits{})
	if err != nil {
		log.Fatal(err) // a gateway answers 502 Bad Gateway
	}
	body, _ := io.ReadAll(br)
	fmt.Println(resp.Kind, resp.Status, resp.Reason)
	fmt.Println(resp.Header["Content-Type"], resp.Header["Set-Cookie"])
	fmt.Printf("%q\n", body)

	// A Location with a local path and no Status: the gateway serves it itself.
	resp, _ = cgi.ReadResponse(bufio.NewReader(strings.NewReader("Location: /index.html\n\n")), false, cgi.HeaderLimits{})
	fmt.Println(resp.Kind, resp.Location)
	// Output:
	// document 404 Not Found
	// [text/plain] [a=1 b=2]
	// "no such page\n"
	// local-redirect /index.html
}
