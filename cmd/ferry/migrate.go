package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/ferrygw/ferry/internal/migrate"
	"github.com/spf13/pflag"
)

const migrateUsage = `Usage: ferry migrate apache|nginx FILE... --out DIR [--format text|json] [--server-root DIR]

Read Apache httpd configuration files, following their Include lines as httpd
does (or the output of apache2ctl -t -D DUMP_INCLUDES), or nginx ones (or the
output of nginx -T), and write into DIR: ferry.toml (the dynamic part: CGI, FastCGI, SCGI, mod_php,
mod_fcgid, mod_wsgi), front.conf (the web-server snippet that hands those paths to ferry),
report.txt and report.json (every directive, file:line -> ferry key or why not,
and security findings). --format json also prints the JSON report.

Exit status: 0 everything translated, 1 something needs a person (listed in
the report), 2 unreadable input or bad usage.
`

func migrateCmd(args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("migrate", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, migrateUsage); fs.PrintDefaults() }
	out := fs.String("out", "", "directory to write ferry.toml, front.conf, report.txt and report.json into")
	format := fs.String("format", "text", "report on standard output: text or json")
	serverRoot := fs.String("server-root", migrate.DefaultServerRoot, "apache: the ServerRoot until the input sets one (httpd's -d): relative Include and DocumentRoot paths are under it")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		return 2
	}
	rest := fs.Args()
	if len(rest) < 2 || *out == "" || (*format != "text" && *format != "json") {
		fs.Usage()
		return 2
	}
	var res *migrate.Result
	var err error
	switch rest[0] {
	case "apache":
		res, err = migrate.Apache(rest[1:], migrate.Options{ServerRoot: *serverRoot})
	case "nginx":
		res, err = migrate.Nginx(rest[1:], migrate.Options{})
	default:
		fmt.Fprintf(stderr, "ferry migrate: unknown server %q: want apache or nginx\n", rest[0])
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "ferry migrate: %v\n", err)
		return 2
	}
	if err := res.WriteDir(*out); err != nil {
		fmt.Fprintf(stderr, "ferry migrate: %v\n", err)
		return 2
	}
	if *format == "json" {
		err = res.Report.WriteJSON(stdout)
	} else {
		err = res.Report.WriteText(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "ferry migrate: %v\n", err)
		return 2
	}
	if res.Report.NeedsPerson() {
		return 1
	}
	return 0
}
