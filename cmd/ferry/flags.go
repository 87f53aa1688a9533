package main

import (
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"strings"

	"github.com/spf13/pflag"
)

// parseFlags parses args into fs. Help asked for (--help, -h) goes to
// stdout; a flag error is one line on stderr naming the flag and pointing at
// the help. It returns the exit code and whether the command should go on.
func parseFlags(fs *pflag.FlagSet, args []string, command string, stdout, stderr io.Writer, help func(io.Writer)) (int, bool) {
	fs.SetOutput(io.Discard) // errors are reported here, once
	fs.Usage = func() {}
	err := fs.Parse(args)
	switch {
	case errors.Is(err, pflag.ErrHelp):
		help(stdout)
		return 0, false
	case err != nil:
		fmt.Fprintf(stderr, "ferry %s: %s (see ferry %s --help)\n", command, flagError(err), command)
		return 2, false
	}
	return 0, true
}

// flagError rewords pflag's errors: "invalid argument "abc" for "--cgi-timeout"
// flag: time: invalid duration "abc"" becomes one clause per fact.
func flagError(err error) string {
	msg := err.Error()
	if rest, ok := strings.CutPrefix(msg, "invalid argument "); ok {
		// invalid argument "V" for "--name" flag: cause
		val, rest, _ := strings.Cut(rest, " for ")
		name, cause, _ := strings.Cut(rest, " flag: ")
		name = strings.Trim(name, `"`)
		if i := strings.Index(name, ", "); i >= 0 { // "-x, --name"
			name = name[i+2:]
		}
		return fmt.Sprintf("%s %s: %s", name, val, cause)
	}
	return msg
}

// getVersion returns the version: set at build time with -ldflags
// "-X main.version=...", else the module version, else "devel" with the
// VCS revision the binary was built from.
func getVersion() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	var rev string
	modified := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if rev == "" {
		return "devel"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	v := "devel-" + rev
	if modified {
		v += "-dirty"
	}
	return v
}

// versionLine is what "ferry version" prints: the version, when the source
// was committed, and the Go release it was built with.
func versionLine() string {
	line := "ferry " + getVersion()
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.time" {
				line += " (committed " + s.Value + ")"
			}
		}
		line += " " + bi.GoVersion
	}
	return line
}

// flagGroup is a titled group of flags in a help text.
type flagGroup struct {
	title string
	fs    *pflag.FlagSet
}

// newGroup returns an empty group of flags titled title.
func newGroup(title string) flagGroup {
	fs := pflag.NewFlagSet(title, pflag.ContinueOnError)
	fs.SortFlags = false
	return flagGroup{title: title, fs: fs}
}

// printGroups writes each group's flags under its title.
func printGroups(w io.Writer, groups []flagGroup) {
	for _, g := range groups {
		fmt.Fprintf(w, "\n%s:\n%s", g.title, g.fs.FlagUsages())
	}
}
