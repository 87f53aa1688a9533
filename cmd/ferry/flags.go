package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"runtime/debug"
	"strconv"
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

// sizeValue is a byte count flag that takes a plain number or one with a
// unit: 10K, 10M, 1G (powers of 1024, as nginx's sizes), or KiB, MiB, GiB,
// KB, MB, GB (powers of 1000 for the SI spellings).
type sizeValue int64

func newSize(fs *pflag.FlagSet, name string, def int64, usage string) *int64 {
	v := sizeValue(def)
	fs.Var(&v, name, usage)
	return (*int64)(&v)
}

// String prints the size in the largest unit that divides it.
func (s *sizeValue) String() string {
	n := int64(*s)
	for _, u := range []struct {
		suffix string
		size   int64
	}{{"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if n != 0 && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

// Set parses a size.
func (s *sizeValue) Set(v string) error {
	n, err := parseSize(v)
	if err != nil {
		return err
	}
	*s = sizeValue(n)
	return nil
}

// Type names the value in help texts.
func (s *sizeValue) Type() string { return "size" }

// parseSize parses "1048576", "10M", "1GiB", "512k".
func parseSize(v string) (int64, error) {
	num := strings.TrimRightFunc(v, func(r rune) bool { return r < '0' || r > '9' })
	unit := strings.ToUpper(strings.TrimSpace(v[len(num):]))
	mult := map[string]int64{"": 1, "B": 1, "K": 1 << 10, "KIB": 1 << 10, "KB": 1e3,
		"M": 1 << 20, "MIB": 1 << 20, "MB": 1e6, "G": 1 << 30, "GIB": 1 << 30, "GB": 1e9}[unit]
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || mult == 0 || n < 0 || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("want a size such as 1048576, 512K, 10M or 1GiB")
	}
	return n * mult, nil
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
