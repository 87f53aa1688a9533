package main

import (
	"fmt"
	"io"
	"net/http"

	"github.com/ferrygw/ferry/bridge"
)

const explainUsage = `Usage: ferry explain [serve flags] [--method M] URL

Say which mount URL reaches and what the script or application would get:
SCRIPT_NAME, PATH_INFO, SCRIPT_FILENAME, PATH_TRANSLATED, DOCUMENT_ROOT and the
other meta-variables, as for a client at 127.0.0.1; or why ferry would answer
404, 403 or 400 itself. It is the answer to php-fpm's "Primary script unknown".
Nothing runs. URL is a path (/cgi-bin/env.pl/x?y=1), asked of the first http(s)
front or else of localhost on port 80, or a whole URL. The exit
status is 0 when a script, an application or a static file would answer, 1 when
ferry would refuse the request, 2 for a bad configuration.
`

func explain(args []string, stdout, stderr io.Writer) int {
	f := newServeFlags()
	g := newGroup("Explain")
	method := g.fs.String("method", "GET", "the request's method")
	cfg, _, code, ok := f.parse("explain", explainUsage, &g, "URL", args, stdout, stderr)
	if !ok {
		return code
	}
	cfg.Version = getVersion()
	srv, err := bridge.New(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "ferry explain: %v\n", err)
		return 2
	}
	r, err := srv.ExplainRequest(*method, f.fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "ferry explain: %v\n", err)
		return 2
	}
	e := srv.Explain(r)
	fmt.Fprintf(stdout, "%s %s\n", r.Method, r.URL)
	switch {
	case e.Mount != "":
		fmt.Fprintf(stdout, "mount:   %s = %s\n", e.Mount, e.Backend)
	case e.Backend != "":
		fmt.Fprintf(stdout, "mount:   none: %s\n", e.Backend)
	default:
		fmt.Fprintf(stdout, "mount:   none\n")
	}
	if e.Kind != "" {
		fmt.Fprintf(stdout, "serves:  %s\n", e.Kind)
	}
	if e.Status != 0 {
		fmt.Fprintf(stdout, "answer:  %d %s: %s\n", e.Status, http.StatusText(e.Status), e.Reason)
	} else if e.Reason != "" {
		fmt.Fprintf(stdout, "note:    %s\n", e.Reason)
	}
	for _, n := range e.Notes {
		fmt.Fprintf(stdout, "note:    %s\n", n)
	}
	if e.Script.Filename != "" {
		fmt.Fprintf(stdout, "script:  %s\n", e.Script.Filename)
	}
	if len(e.Vars) > 0 {
		fmt.Fprintf(stdout, "\nwhat the application gets:\n")
		for _, v := range e.Vars {
			fmt.Fprintf(stdout, "  %s\n", v)
		}
	}
	if len(e.Extra) > 0 {
		fmt.Fprintf(stdout, "\nand besides (env, and what a CGI script inherits):\n")
		for _, v := range e.Extra {
			fmt.Fprintf(stdout, "  %s\n", v)
		}
	}
	if e.Status >= 400 || (e.Status == 0 && e.Reason != "" && len(e.Vars) == 0) {
		return 1
	}
	return 0
}
