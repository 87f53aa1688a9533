package main

import (
	"context"
	"fmt"
	"io"
	"os/signal"
	"syscall"

	"github.com/ferrygw/ferry/bridge"
)

const checkUsage = `Usage: ferry check [serve flags] [--print] [--connect]

Load the configuration serve would (--config FILE and the flags given), and
check what can be checked without serving: directories, scripts and workers
exist and are executable, cgi-bins are not world-writable, unix sockets can be
created with the mode asked, the fronts' hosts and ports can be listened on (a
port taken now is a warning), the pid file's directory is writable; with
--connect, every backend ferry does not start answers (a connect, and
FCGI_GET_VALUES for FastCGI). Risky settings are warnings: a cgi-bin inside the
document root, cgi_pass_auth, no cgi_timeout. Every problem is listed; the exit
status is 1 if there is any, 2 for a file that cannot be loaded or a bad flag.

--print writes the effective configuration to standard output as a file
ferry serve --config reads.
`

func check(args []string, stdout, stderr io.Writer) int {
	f := newServeFlags()
	g := newGroup("Check")
	print := g.fs.Bool("print", false, "write the effective configuration as a TOML file to standard output")
	connect := g.fs.Bool("connect", false, "connect to every backend ferry does not start itself")
	cfg, file, code, ok := f.parse("check", checkUsage, &g, "", args, stdout, stderr)
	if !ok {
		return code
	}
	if *print {
		if err := bridge.WriteConfig(stdout, cfg); err != nil {
			fmt.Fprintf(stderr, "ferry check: %v\n", err)
			return 1
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	counts := map[bridge.Severity]int{}
	for _, fd := range bridge.Check(ctx, cfg, bridge.CheckOptions{Connect: *connect}) {
		counts[fd.Severity]++
		fmt.Fprintf(stderr, "%s: %s%s\n", fd.Severity, f.place(file, fd.Path), fd.Msg)
	}
	what := "the flags"
	if file != nil {
		what = file.Name
	}
	if counts[bridge.Problem] > 0 {
		fmt.Fprintf(stderr, "ferry check: %s: %d errors, %d warnings\n", what, counts[bridge.Problem], counts[bridge.Warning])
		return 1
	}
	fmt.Fprintf(stderr, "ferry check: %s: ok, %d warnings\n", what, counts[bridge.Warning])
	return 0
}
