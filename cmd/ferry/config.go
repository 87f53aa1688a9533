package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/ferrygw/ferry/bridge"
	"github.com/spf13/pflag"
)

// flagLayout places the flags of serve, check and explain in the groups
// of the help text, in order. Every key with a flag ([bridge.Keys]) is
// here; "config" and "mount" are not keys.
var flagLayout = []struct {
	title string
	flags []string
}{
	{"Configuration", []string{"config", "admin", "pid-file", "cpus"}},
	{"Listening", []string{"listen", "client-header-timeout", "client-body-timeout", "send-timeout", "keepalive-timeout", "max-conns"}},
	{"Routing", []string{"mount", "root", "root-symlinks", "env", "pass-env"}},
	{"Scripts and limits", []string{"cgi-pass-auth", "cgi-timeout", "cgi-kill-grace", "cgi-max-concurrent", "cgi-max-queue",
		"cgi-queue-timeout", "max-request-body", "max-header-line"}},
	{"Script processes", []string{"cgi-user", "cgi-group", "cgi-keep-background", "cgi-rlimit-cpu", "cgi-rlimit-as",
		"cgi-rlimit-nproc", "cgi-rlimit-nofile", "cgi-max-output"}},
	{"Logging and shutdown", []string{"shutdown-timeout", "access-log", "access-log-format", "request-id-header", "log-format", "log-level"}},
}

// serveFlags are the flags serve, check and explain share: the
// configuration file, the mounts, and a flag per configuration key that
// has one.
type serveFlags struct {
	fs     *pflag.FlagSet
	groups []flagGroup
	config *string
	mounts *[]string
	cfg    bridge.Config       // what the flags say, over the defaults
	byFlag map[string]*keyFlag // the flags of keys, by name
}

func newServeFlags() *serveFlags {
	f := &serveFlags{fs: pflag.NewFlagSet("serve", pflag.ContinueOnError), cfg: bridge.DefaultConfig(), byFlag: map[string]*keyFlag{}}
	keys := map[string][]bridge.Key{} // by flag; two keys may share one (bridge.Key.Flag)
	for _, k := range bridge.Keys() {
		if k.Flag != "" {
			keys[k.Flag] = append(keys[k.Flag], k)
		}
	}
	for _, layout := range flagLayout {
		g := newGroup(layout.title)
		for _, name := range layout.flags {
			switch name {
			case "config":
				f.config = g.fs.String("config", "", "configuration file (TOML); the flags given override it")
			case "mount":
				f.mounts = g.fs.StringArray("mount", nil, "route PREFIX=BACKEND, e.g. /cgi-bin/=cgi:/usr/lib/cgi-bin (repeatable; replaces the file's mount at PREFIX)")
			default:
				ks, ok := keys[name]
				if !ok {
					panic("ferry: flag layout names " + name + ", which no key has")
				}
				delete(keys, name)
				k := ks[0]
				usage := k.Doc
				switch {
				case len(ks) == 2 && k.Type == bridge.Bool:
					usage += " (true or false), or " + ks[1].Doc
				case len(ks) > 1:
					panic("ferry: flag " + name + " is shared by keys other than a Bool and one more")
				case k.Type == bridge.AddressList:
					usage += " (repeatable; default " + k.Default + ")"
				case isList(k.Type):
					usage += " (repeatable)"
				}
				kf := &keyFlag{keys: ks, cfg: &f.cfg, set: map[string]bool{}}
				f.byFlag[name] = kf
				g.fs.Var(kf, name, usage)
				if k.Type == bridge.Bool && len(ks) == 1 {
					g.fs.Lookup(name).NoOptDefVal = "true"
				}
			}
		}
		f.groups = append(f.groups, g)
		f.fs.AddFlagSet(g.fs)
	}
	if len(keys) > 0 {
		panic(fmt.Sprintf("ferry: flags %v are in no group of the help", keys))
	}
	return f
}

// parse parses args as the flags of command (its own group, if any, and
// serve's), with one argument named arg after them, or none if arg is
// empty, and loads the configuration. Help and mistakes are written as
// parseFlags does; ok false means the command ends with code.
func (f *serveFlags) parse(command, usage string, own *flagGroup, arg string, args []string, stdout, stderr io.Writer) (cfg bridge.Config, file *bridge.ConfigFile, code int, ok bool) {
	groups := f.groups
	if own != nil {
		f.fs.AddFlagSet(own.fs)
		groups = append([]flagGroup{*own}, groups...)
	}
	help := func(w io.Writer) {
		fmt.Fprint(w, usage)
		printGroups(w, groups)
	}
	if code, ok := parseFlags(f.fs, args, command, stdout, stderr, help); !ok {
		return cfg, nil, code, false
	}
	switch {
	case arg == "" && f.fs.NArg() > 0:
		fmt.Fprintf(stderr, "ferry %s: unexpected argument %q (flags only; see ferry %s --help)\n", command, f.fs.Arg(0), command)
		return cfg, nil, 2, false
	case arg != "" && f.fs.NArg() != 1:
		fmt.Fprintf(stderr, "ferry %s: want one %s after the flags (see ferry %s --help)\n", command, arg, command)
		return cfg, nil, 2, false
	}
	cfg, file, err := f.load()
	if err != nil {
		printErrors(stderr, command, err)
		return cfg, nil, 2, false
	}
	return cfg, file, 0, true
}

// isList reports whether a key of type t takes one flag per item.
func isList(t bridge.OptionType) bool {
	return t == bridge.List || t == bridge.Env || t == bridge.AddressList
}

// load builds the configuration: the defaults, then the file given with
// --config, then the flags given. --env and --pass-env add to the file's,
// --mount adds a mount or replaces the file's at the same prefix, and any
// other flag replaces the file's value.
func (f *serveFlags) load() (bridge.Config, *bridge.ConfigFile, error) {
	cfg := bridge.DefaultConfig()
	var file *bridge.ConfigFile
	if *f.config != "" {
		var err error
		if file, err = bridge.LoadConfig(*f.config); err != nil {
			return bridge.Config{}, nil, err
		}
		cfg = file.Config
	}
	for _, k := range bridge.Keys() {
		if !f.gave(k) {
			continue
		}
		vals := k.Get(&f.cfg)
		if k.Type == bridge.Env || k.Type == bridge.List {
			vals = append(k.Get(&cfg), vals...)
			if k.Type == bridge.List {
				slices.Sort(vals)
				vals = slices.Compact(vals)
			}
		}
		if err := k.Set(&cfg, vals...); err != nil {
			return bridge.Config{}, nil, fmt.Errorf("--%s: %w", k.Flag, err)
		}
	}
	for _, s := range *f.mounts {
		m, err := bridge.ParseMount(s)
		if err != nil {
			return bridge.Config{}, nil, fmt.Errorf("--mount: %w", err)
		}
		if i := slices.IndexFunc(cfg.Mounts, func(o bridge.Mount) bool { return o.Prefix == m.Prefix }); i >= 0 {
			cfg.Mounts[i] = m
		} else {
			cfg.Mounts = append(cfg.Mounts, m)
		}
	}
	return cfg, file, nil
}

// where names where a key of the configuration was given: its flag, or
// its line in the file; "" when neither gave it.
func (f *serveFlags) where(file *bridge.ConfigFile, path []string) string {
	if len(path) == 2 && path[0] != "mount" {
		table := path[0]
		if table == "log" || table == "defaults" {
			for _, k := range bridge.Keys() {
				if k.Table == table && k.Name == path[1] && f.gave(k) {
					return "--" + k.Flag
				}
			}
		}
	}
	if len(path) == 1 {
		for _, k := range bridge.Keys() {
			if k.Table == "" && k.Name == path[0] && f.gave(k) {
				return "--" + k.Flag
			}
		}
	}
	if len(path) >= 2 && path[0] == "mount" {
		for _, s := range *f.mounts {
			if strings.HasPrefix(s, path[1]+"=") {
				return "--mount " + s
			}
		}
	}
	for ; len(path) > 0; path = path[:len(path)-1] {
		if line := file.Line(path...); line > 0 {
			return fmt.Sprintf("%s:%d", file.Name, line)
		}
	}
	return ""
}

// place spells where a key of the configuration was given, as a
// message's start: "ferry.toml:12: mount."/".backend: ", "--root: ", or ""
// when neither the file nor a flag gave it.
func (f *serveFlags) place(file *bridge.ConfigFile, path []string) string {
	where := f.where(file, path)
	if where != "" {
		where += ": "
	}
	if key := (bridge.Finding{Path: path}).Key(); key != "" && !strings.HasPrefix(where, "--") {
		where += key + ": "
	}
	return where
}

// locate turns err, which building or starting cfg (from file and the
// flags) gave, into one error a line per mistake, each naming where it
// was given, as ferry check does: serve and a reload say what check
// says. It finds the mistakes again with [bridge.Check] (nothing is
// connected to), and names the front or admin listener that did not
// open. What it cannot place stays as err says it.
func (f *serveFlags) locate(file *bridge.ConfigFile, cfg bridge.Config, err error) error {
	var errs []error
	for _, fd := range bridge.Check(context.Background(), cfg, bridge.CheckOptions{}) {
		if fd.Severity == bridge.Problem && len(fd.Path) > 0 {
			errs = append(errs, errors.New(f.place(file, fd.Path)+fd.Msg))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	// A front that did not open (a port taken, an address not here)
	// shows only when ferry listens: the error names its address.
	msg := err.Error()
	for _, a := range cfg.Listen {
		if strings.Contains(msg, "listen "+a.String()+":") {
			return errors.New(f.place(file, []string{"listen"}) + strings.TrimPrefix(msg, "bridge: "))
		}
	}
	if a := cfg.Admin; a.Scheme != "" && strings.Contains(msg, "listen "+a.String()+":") {
		return errors.New(f.place(file, []string{"admin"}) + strings.TrimPrefix(msg, "bridge: "))
	}
	return err
}

// gave reports whether the flags given set key k.
func (f *serveFlags) gave(k bridge.Key) bool {
	kf := f.byFlag[k.Flag]
	return kf != nil && kf.set[k.Name]
}

// printErrors writes each of err's lines as "ferry COMMAND: LINE".
func printErrors(w io.Writer, command string, err error) {
	var lines []string
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			lines = append(lines, e.Error())
		}
	} else {
		lines = strings.Split(err.Error(), "\n")
	}
	for _, l := range lines {
		fmt.Fprintf(w, "ferry %s: %s\n", command, l)
	}
}

// keyFlag is the flag of a configuration key, or of two that share it (a
// Bool, then a key for the other values: bridge.Key.Flag): it parses its
// values as the file's loader does.
type keyFlag struct {
	keys []bridge.Key
	cfg  *bridge.Config
	vals []string
	set  map[string]bool // the keys the values given set, by name
}

// String spells the current value, as help texts show the default.
func (f *keyFlag) String() string { return strings.Join(f.keys[0].Get(f.cfg), ",") }

// Set parses one value; a list's values accumulate. A value the first of
// two keys refuses goes to the second, and turns the first on.
func (f *keyFlag) Set(v string) error {
	k := f.keys[0]
	var scratch bridge.Config
	err := k.Set(&scratch, v)
	if err != nil && len(f.keys) == 2 {
		k = f.keys[1]
		if err = k.Set(&scratch, v); err == nil {
			if err = f.keys[0].Set(f.cfg, "true"); err == nil {
				f.set[f.keys[0].Name] = true
			}
		}
	}
	if err != nil {
		return err
	}
	if isList(k.Type) {
		f.vals = append(f.vals, v)
	} else {
		f.vals = []string{v}
	}
	f.set[k.Name] = true
	return k.Set(f.cfg, f.vals...)
}

// Type names the value in help texts.
func (f *keyFlag) Type() string {
	if len(f.keys) > 1 {
		return "string"
	}
	switch f.keys[0].Type {
	case bridge.Bool:
		return "bool"
	case bridge.Duration, bridge.Timeout:
		return "duration"
	case bridge.Count, bridge.PositiveInt:
		return "int"
	case bridge.Size:
		return "size"
	case bridge.List, bridge.Env, bridge.AddressList:
		return "stringArray"
	case bridge.AddressType:
		return "address"
	}
	return "string"
}

var _ pflag.Value = (*keyFlag)(nil)
