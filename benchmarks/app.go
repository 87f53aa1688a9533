package benchmarks

import (
	"fmt"
	"html"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// goApp returns the bundled benchmark application in Go, the same as the
// scripts in testdata/bench: "GET /" answers "Hello, world", and
// "GET /?rows=N&name=S" renders an HTML page of N rows (the "realistic"
// variant, which does some work per request).
func goApp() http.Handler {
	return http.HandlerFunc(serveApp)
}

func serveApp(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	rows, err := strconv.Atoi(q.Get("rows"))
	if err != nil || rows < 0 || q.Get("rows") == "" {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "Hello, world\n")
		return
	}
	name := q.Get("name")
	if !q.Has("name") {
		name = "world"
	}
	name = html.EscapeString(name)
	var b strings.Builder
	fmt.Fprintf(&b, "<!DOCTYPE html>\n<html><head><title>Report for %s</title></head><body>\n"+
		"<h1>Report for %s</h1>\n<table>\n<tr><th>#</th><th>item</th><th>value</th><th>code</th></tr>\n", name, name)
	for i := 1; i <= rows; i++ {
		fmt.Fprintf(&b, "<tr><td>%d</td><td>%s item %d</td><td>%d</td><td>%x</td></tr>\n",
			i, name, i, (i*i)%997, (uint64(i)*2654435761)%4294967296)
	}
	fmt.Fprintf(&b, "</table>\n<p>%d rows</p>\n</body></html>\n", rows)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	io.WriteString(w, b.String())
}
