package migrate

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
)

// DefaultServerRoot is the ServerRoot migrate takes when neither the input
// (a ServerRoot directive) nor [Options.ServerRoot] sets one: Debian's and
// Ubuntu's compiled-in HTTPD_ROOT (apache2ctl -V), the directory of
// /etc/apache2/apache2.conf, which sets none. Red Hat's httpd.conf and a
// source build's set theirs.
const DefaultServerRoot = "/etc/apache2"

// serverRootRelative resolves name against root as httpd's
// ap_server_root_relative does: an absolute name stays.
func serverRootRelative(root, name string) string {
	if name == "" || path.IsAbs(name) {
		return name
	}
	return path.Join(root, name)
}

// includer follows Include and IncludeOptional as httpd's configuration
// reader does (server/config.c, ap_process_fnmatch_configs): in file
// order, relative to the ServerRoot of the moment, with wildcards, and
// without reading what a section that does not hold (<IfModule>,
// <IfDefine>, as far as the lines read so far say) includes.
type includer struct {
	r     *reader
	c     *conds       // Define and LoadModule read so far
	root  string       // ServerRoot so far
	trail includeTrail // the Includes being followed
}

func newIncluder(r *reader, root string) *includer {
	return &includer{r: r, root: root, c: &conds{defines: map[string]string{}, named: map[string]bool{}, modules: map[string]bool{}}}
}

// file reads one file and what its includes bring in. from is the Include
// that names it.
func (in *includer) file(name string, from *Directive) ([]*Directive, error) {
	leave, err := in.trail.enter(from, name, in.r.lim.depth())
	if err != nil {
		return nil, err
	}
	defer leave()
	data, err := in.r.read(name)
	if err != nil {
		return nil, in.at(from, name, err)
	}
	ds, err := ParseApache(name, data, in.r.lim)
	if err != nil {
		return nil, err
	}
	return in.block(ds)
}

// at places a read error of an included file at the Include that names
// it; an input file's error stays as it is.
func (in *includer) at(from *Directive, name string, err error) error {
	var pe *ParseError
	if from == nil || !errors.As(err, &pe) || pe.Line > 0 {
		return err
	}
	msg := pe.Msg
	var perr *fs.PathError
	if !errors.As(pe.Err, &perr) {
		msg = strings.TrimSuffix(name+": "+msg, ": ")
	}
	return &ParseError{File: from.File, Line: from.Line, Err: pe.Err, Msg: msg}
}

// block follows the includes of ds in order and returns ds with what each
// included after it.
func (in *includer) block(ds []*Directive) ([]*Directive, error) {
	out := make([]*Directive, 0, len(ds))
	for _, d := range ds {
		out = append(out, d)
		name := strings.ToLower(d.Name)
		if d.Section {
			if name == "ifmodule" || name == "ifdefine" {
				if holds, known := in.c.holds(d); known && !holds {
					continue
				}
			}
			b, err := in.block(d.Block)
			if err != nil {
				return nil, err
			}
			d.Block = b
			continue
		}
		if in.c.expand(d) != "" {
			continue // walk reports the ${NAME} the input does not define
		}
		switch name {
		case "define":
			if len(d.Args) > 0 {
				in.c.named[d.Args[0]] = true
			}
		case "loadmodule":
			in.c.loads = true
		case "serverroot":
			if len(d.Args) == 1 {
				in.root = serverRootRelative(in.root, d.Args[0])
			}
		}
		in.c.read(d)
		if !isInclude(name) {
			continue
		}
		files, err := in.match(d)
		if err != nil {
			return nil, err
		}
		d.included, d.followed = files, true
		for _, f := range files {
			cs, err := in.file(f, d)
			if err != nil {
				return nil, err
			}
			out = append(out, cs...)
		}
	}
	return out, nil
}

// match returns the files an Include names, in the order httpd reads
// them: a file; every file under a directory, sorted, subdirectories
// included; the matches of a wildcard, sorted, a wildcard in a directory
// component matching directories only. Include fails where a file is
// missing or a wildcard matches nothing; IncludeOptional reads nothing
// then (httpd 2.4.30 and later).
func (in *includer) match(d *Directive) ([]string, error) {
	if len(d.Args) != 1 {
		return nil, &ParseError{File: d.File, Line: d.Line, Err: ErrSyntax, Msg: d.Name + " takes one argument"}
	}
	optional := strings.EqualFold(d.Name, "IncludeOptional")
	pattern := serverRootRelative(in.root, d.Args[0])
	fail := func(err error, msg string) error {
		if !path.IsAbs(d.Args[0]) {
			msg = strings.TrimPrefix(msg+"; ", "; ") + "relative to ServerRoot " + in.root + " (a ServerRoot line, or ferry migrate --server-root, sets another)"
		}
		return &ParseError{File: d.File, Line: d.Line, Err: err, Msg: msg}
	}
	var matched []string
	var walk func(dir string, rest []string) error
	walk = func(dir string, rest []string) error {
		if len(rest) == 0 {
			matched = append(matched, dir)
			return nil
		}
		if !strings.ContainsAny(rest[0], "*?[") {
			return walk(path.Join(dir, rest[0]), rest[1:])
		}
		entries, err := os.ReadDir(in.r.path(dir))
		if err != nil {
			if optional {
				return nil
			}
			return fail(err, "")
		}
		n := len(matched)
		for _, e := range entries { // sorted by name, as httpd sorts them
			if !fnmatch(rest[0], e.Name()) || len(rest) > 1 && !in.isDir(path.Join(dir, e.Name())) {
				continue
			}
			if err := walk(path.Join(dir, e.Name()), rest[1:]); err != nil {
				return err
			}
		}
		if len(matched) == n && !optional {
			return fail(ErrNoMatch, fmt.Sprintf("%q in %s (IncludeOptional allows that)", rest[0], dir))
		}
		return nil
	}
	parts := strings.Split(strings.TrimPrefix(path.Clean(pattern), "/"), "/")
	if err := walk("/", parts); err != nil {
		return nil, err
	}
	var files []string
	for _, m := range matched {
		fi, err := os.Stat(in.r.path(m))
		switch {
		case err != nil && optional && errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return nil, fail(err, "")
		case fi.IsDir():
			sub, err := in.dirFiles(d, m)
			if err != nil {
				return nil, err
			}
			files = append(files, sub...)
		default:
			files = append(files, m)
		}
	}
	return files, nil
}

// dirFiles returns every file under dir, sorted, as httpd reads an
// Include of a directory (every name but . and ..).
func (in *includer) dirFiles(d *Directive, dir string) ([]string, error) {
	entries, err := os.ReadDir(in.r.path(dir))
	if err != nil {
		return nil, &ParseError{File: d.File, Line: d.Line, Err: err}
	}
	var files []string
	for _, e := range entries {
		p := path.Join(dir, e.Name())
		if !in.isDir(p) {
			files = append(files, p)
			continue
		}
		sub, err := in.dirFiles(d, p)
		if err != nil {
			return nil, err
		}
		files = append(files, sub...)
	}
	return files, nil
}

func (in *includer) isDir(name string) bool {
	fi, err := os.Stat(in.r.path(name))
	return err == nil && fi.IsDir()
}

// fnmatch matches a name against one component of an Include wildcard as
// httpd's apr_fnmatch(pattern, name, APR_FNM_PERIOD) does: *, ?, [...]
// and [!...], and a leading dot matched only by a dot.
func fnmatch(pattern, name string) bool {
	if strings.HasPrefix(name, ".") && !strings.HasPrefix(pattern, ".") {
		return false
	}
	ok, err := path.Match(strings.ReplaceAll(pattern, "[!", "[^"), name)
	return err == nil && ok
}
