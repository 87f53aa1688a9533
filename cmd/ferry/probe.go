package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/ferrygw/ferry/bridge"
	"github.com/ferrygw/ferry/fastcgi"
	"github.com/rs/zerolog"
)

const probeUsage = `Usage: ferry probe URL [--path P] [--method M] [--data FILE] [--param K=V]...

Send one request to the backend URL, in ferry's address spelling (fastcgi://HOST:PORT,
fastcgi+unix:///run/php/php8.2-fpm.sock, scgi://, scgi+unix://, cgi:/path/script or a
cgi-bin directory, http://HOST:PORT), through the same handler a mount of it has, and
print the status, the header, the body and the timings; for FastCGI, the application's
answer to FCGI_GET_VALUES too. It replaces "cgi-fcgi -bind -connect": php-fpm's ping is

  ferry probe fastcgi://127.0.0.1:9000 --path /ping

(a FastCGI application gets the path as SCRIPT_NAME and SCRIPT_FILENAME, as php-fpm's
ping.path and pm.status_path need; an SCGI, CGI or HTTP one gets it as PATH_INFO).

Exit status, for monitoring: 0 for a 2xx or 3xx answer, 1 for another status, 2 when
the backend cannot be reached or the command is wrong.
`

func probe(args []string, stdout, stderr io.Writer) int {
	g := newGroup("Probe")
	path := g.fs.String("path", "/", "the request's path and query, such as /ping or /status?full")
	method := g.fs.String("method", "", "the request's method (default GET, or POST with --data)")
	data := g.fs.String("data", "", "send the content of FILE as the request body (- for standard input)")
	params := g.fs.StringArray("param", nil, "NAME=value: a meta-variable (HTTP_X_FOO as the X-Foo header, CONTENT_TYPE, SCRIPT_FILENAME, DOCUMENT_ROOT, REMOTE_ADDR, HTTPS, ...); repeatable")
	scriptName := g.fs.String("script-name", "", "the prefix the application is mounted at: SCRIPT_NAME, the rest of the path being PATH_INFO (/ for none; default: for FastCGI the whole path, else none)")
	timeout := g.fs.Duration("timeout", bridge.DefaultProbeTimeout, "give up after this long")
	quiet := g.fs.BoolP("quiet", "q", false, "print only the status line and the timings")
	help := func(w io.Writer) {
		fmt.Fprint(w, probeUsage)
		printGroups(w, []flagGroup{g})
	}
	if code, ok := parseFlags(g.fs, args, "probe", stdout, stderr, help); !ok {
		return code
	}
	if g.fs.NArg() != 1 {
		fmt.Fprintf(stderr, "ferry probe: want one backend URL after the flags (see ferry probe --help)\n")
		return 2
	}
	a, err := bridge.ParseAddress(g.fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "ferry probe: %v\n", err)
		return 2
	}
	req := bridge.ProbeRequest{Backend: a, Method: *method, Path: *path, ScriptName: *scriptName, Params: *params,
		Timeout: *timeout, Version: getVersion()}
	if *data != "" {
		var err error
		if *data == "-" {
			req.Body, err = io.ReadAll(os.Stdin)
		} else {
			req.Body, err = os.ReadFile(*data)
		}
		if err != nil {
			fmt.Fprintf(stderr, "ferry probe: --data: %v\n", err)
			return 2
		}
	}
	// What serving the request logs (why it failed, the application's
	// stderr) goes to stderr after the answer, for people; when the
	// backend cannot be reached, the one line that says so is enough.
	var logs bytes.Buffer
	logger := zerolog.New(bridge.NewConsoleWriter(&logs, false)).Level(zerolog.WarnLevel).With().Timestamp().Logger()
	req.Logger = &logger
	defer func() { stderr.Write(logs.Bytes()) }()

	res, err := bridge.Probe(context.Background(), req)
	if err != nil {
		if errors.Is(err, bridge.ErrUnreachable) {
			logs.Reset()
		}
		msg := strings.TrimPrefix(err.Error(), "bridge: ")
		msg = strings.TrimPrefix(strings.TrimPrefix(msg, "probe: "), "probe ")
		fmt.Fprintf(stderr, "ferry probe: %s\n", msg)
		return 2
	}
	if res.TimedOut {
		fmt.Fprintf(&logs, "ferry probe: no answer within %v\n", *timeout)
	}
	fmt.Fprintf(stdout, "%d %s\n", res.Status, http.StatusText(res.Status))
	if !*quiet {
		res.Header.Write(stdout) // a write error to stdout has no better place to go
		fmt.Fprintln(stdout)
		stdout.Write(res.Body)
		if len(res.Body) > 0 && res.Body[len(res.Body)-1] != '\n' {
			fmt.Fprintln(stdout)
		}
		if more := res.BodySize - int64(len(res.Body)); more > 0 {
			fmt.Fprintf(stdout, "[%d more bytes not shown]\n", more)
		}
		fmt.Fprintln(stdout)
	}
	ms := func(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d.Microseconds())/1000) }
	connect := "none (a CGI script)"
	if res.Connected {
		connect = ms(res.Connect)
	}
	fmt.Fprintf(stdout, "connect: %s, first byte: %s, total: %s, body: %d bytes\n", connect, ms(res.FirstByte), ms(res.Total), res.BodySize)
	if a.Protocol() == "fastcgi" {
		fmt.Fprintf(stdout, "FCGI_GET_VALUES: %s\n", getValuesLine(res))
	}
	if res.Status >= 400 || res.Status < 200 {
		return 1
	}
	return 0
}

// getValuesLine spells a FastCGI application's GET_VALUES answer.
func getValuesLine(res *bridge.ProbeResult) string {
	if res.ValuesErr != nil {
		if errors.Is(res.ValuesErr, fastcgi.ErrNoGetValues) {
			return "FCGI_UNKNOWN_TYPE (the application does not know the record: it gives no limits)"
		}
		if errors.Is(res.ValuesErr, context.DeadlineExceeded) || strings.Contains(res.ValuesErr.Error(), "timeout") {
			return "no answer"
		}
		return "no answer: " + strings.TrimPrefix(res.ValuesErr.Error(), "fastcgi: ")
	}
	var parts []string
	for _, k := range []string{"FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS"} {
		if v, ok := res.Values[k]; ok {
			parts = append(parts, k+"="+v)
		} else {
			parts = append(parts, k+" not given")
		}
	}
	for k, v := range res.Values {
		if !slices.Contains([]string{"FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS"}, k) {
			parts = append(parts, k+"="+v)
		}
	}
	return strings.Join(parts, ", ")
}
