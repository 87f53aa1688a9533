package migrate

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// ParseApache parses one Apache httpd configuration file (or .htaccess
// file), data read from name, into its directives. Include directives stay
// as they are. Sections (<Directory ...>) hold their children.
func ParseApache(name string, data []byte, lim Limits) ([]*Directive, error) {
	if int64(len(data)) > lim.fileSize() {
		return nil, &ParseError{File: name, Err: ErrFileTooLarge, Msg: fmt.Sprintf("%d bytes, more than %d", len(data), lim.fileSize())}
	}
	if err := checkNUL(name, data); err != nil {
		return nil, err
	}
	root := &Directive{}
	stack := []*Directive{root}
	lines := bytes.Split(data, []byte("\n"))
	for i := 0; i < len(lines); i++ {
		start := i + 1
		line := strings.TrimRight(string(lines[i]), "\r")
		for strings.HasSuffix(line, "\\") && i+1 < len(lines) {
			i++
			line = line[:len(line)-1] + strings.TrimRight(string(lines[i]), "\r")
			if len(line) > lim.line() {
				break
			}
		}
		if len(line) > lim.line() {
			return nil, &ParseError{File: name, Line: start, Err: ErrLineTooLong, Msg: fmt.Sprintf("more than %d bytes", lim.line())}
		}
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		top := stack[len(stack)-1]
		if strings.HasPrefix(line, "</") {
			closing := strings.TrimSuffix(strings.TrimSpace(line[2:]), ">")
			if len(stack) == 1 || !strings.EqualFold(closing, top.Name) {
				return nil, &ParseError{File: name, Line: start, Err: ErrSyntax, Msg: fmt.Sprintf("</%s> closes nothing open", closing)}
			}
			stack = stack[:len(stack)-1]
			continue
		}
		d := &Directive{File: name, Line: start}
		if line[0] == '<' {
			if !strings.HasSuffix(line, ">") {
				return nil, &ParseError{File: name, Line: start, Err: ErrSyntax, Msg: "section without >"}
			}
			line = line[1 : len(line)-1]
			d.Section = true
			d.Block = []*Directive{}
		}
		words, err := apacheWords(line)
		if err != nil || len(words) == 0 {
			return nil, &ParseError{File: name, Line: start, Err: ErrSyntax, Msg: "unbalanced quotes"}
		}
		d.Name, d.Args = words[0], words[1:]
		top.Block = append(top.Block, d)
		if d.Section {
			if len(stack) > lim.depth() {
				return nil, &ParseError{File: name, Line: start, Err: ErrTooDeep, Msg: fmt.Sprintf("more than %d sections", lim.depth())}
			}
			stack = append(stack, d)
		}
	}
	if len(stack) > 1 {
		top := stack[len(stack)-1]
		return nil, &ParseError{File: name, Line: top.Line, Err: ErrSyntax, Msg: fmt.Sprintf("<%s> is never closed", top.Name)}
	}
	return root.Block, nil
}

// checkNUL refuses a NUL byte anywhere in a configuration file: httpd and
// nginx read their files as C strings, so what follows one is not what the
// server saw, and no path, name or value ferry writes may hold one.
func checkNUL(name string, data []byte) error {
	i := bytes.IndexByte(data, 0)
	if i < 0 {
		return nil
	}
	return &ParseError{File: name, Line: bytes.Count(data[:i], []byte("\n")) + 1, Err: ErrSyntax, Msg: "a NUL byte"}
}

// apacheWords splits a line into words as httpd's ap_getword_conf does:
// on spaces, with "..." and '...' quoting and \" inside quotes.
func apacheWords(line string) ([]string, error) {
	var words []string
	for line = strings.TrimLeft(line, " \t"); line != ""; line = strings.TrimLeft(line, " \t") {
		q := line[0]
		if q != '"' && q != '\'' {
			end := strings.IndexAny(line, " \t")
			if end < 0 {
				end = len(line)
			}
			words = append(words, line[:end])
			line = line[end:]
			continue
		}
		var b strings.Builder
		i := 1
		for ; i < len(line) && line[i] != q; i++ {
			if line[i] == '\\' && i+1 < len(line) && (line[i+1] == q || line[i+1] == '\\') {
				i++
			}
			b.WriteByte(line[i])
		}
		if i >= len(line) {
			return nil, ErrSyntax
		}
		words = append(words, b.String())
		line = line[i+1:]
	}
	return words, nil
}

// includeList is the output of apache2ctl -t -D DUMP_INCLUDES: each file,
// and under it the files each of its Include lines brought in.
type includeList struct {
	top      []string
	children map[string]map[int][]string // file -> Include line -> files
}

// httpdMessage is a line httpd writes to standard error, which
// apache2ctl -t -D DUMP_INCLUDES 2>&1 mixes into the list: a logged
// message (AH00558: no global ServerName) or -t's verdict.
var httpdMessage = regexp.MustCompile(`^(AH[0-9]{5}: |Syntax OK$)`)

// parseIncludeList reads DUMP_INCLUDES output, or returns false if data is
// not that.
func parseIncludeList(data []byte) (*includeList, bool) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	first := true
	l := &includeList{children: map[string]map[int][]string{}}
	type level struct {
		indent int
		file   string
	}
	var stack []level
	for sc.Scan() {
		text := sc.Text()
		if strings.TrimSpace(text) == "" || httpdMessage.MatchString(text) {
			continue
		}
		if first {
			if strings.TrimSpace(text) != "Included configuration files:" {
				return nil, false
			}
			first = false
			continue
		}
		trimmed := strings.TrimLeft(text, " ")
		indent := len(text) - len(trimmed)
		num, file, ok := strings.Cut(trimmed, " ")
		if !ok || !strings.HasPrefix(num, "(") || !strings.HasSuffix(num, ")") {
			return nil, false
		}
		for len(stack) > 0 && stack[len(stack)-1].indent >= indent {
			stack = stack[:len(stack)-1]
		}
		n, err := strconv.Atoi(num[1 : len(num)-1])
		if len(stack) == 0 || err != nil {
			l.top = append(l.top, file)
		} else {
			parent := stack[len(stack)-1].file
			if l.children[parent] == nil {
				l.children[parent] = map[int][]string{}
			}
			l.children[parent][n] = append(l.children[parent][n], file)
		}
		stack = append(stack, level{indent, file})
	}
	return l, !first
}

// reader reads input files, under a chroot if set, counting them.
type reader struct {
	chroot string
	lim    Limits
	n      int
}

// read reads name; an absolute name is looked for under the chroot first.
func (r *reader) read(name string) ([]byte, error) {
	r.n++
	if r.n > r.lim.files() {
		return nil, &ParseError{File: name, Err: ErrTooManyFiles, Msg: fmt.Sprintf("more than %d", r.lim.files())}
	}
	p := r.path(name)
	fi, err := os.Stat(p)
	if err != nil {
		return nil, &ParseError{File: name, Err: err}
	}
	if fi.Size() > r.lim.fileSize() {
		return nil, &ParseError{File: name, Err: ErrFileTooLarge, Msg: fmt.Sprintf("%d bytes, more than %d", fi.Size(), r.lim.fileSize())}
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, &ParseError{File: name, Err: err}
	}
	return data, nil
}

// path is where name is on this machine: under the chroot if it exists
// there.
func (r *reader) path(name string) string {
	if r.chroot != "" && filepath.IsAbs(name) {
		p := filepath.Join(r.chroot, name)
		if _, err := os.Lstat(p); err == nil {
			return p
		}
	}
	return name
}

// loadApache reads the files named on the command line: configuration
// files, whose includes are followed as httpd follows them from ServerRoot
// root, or DUMP_INCLUDES output, whose files are read with their Include
// lines replaced by what httpd included.
func loadApache(r *reader, files []string, root string) ([]*Directive, error) {
	var all []*Directive
	in := newIncluder(r, root)
	for _, f := range files {
		data, err := r.read(f)
		if err != nil {
			return nil, err
		}
		if l, ok := parseIncludeList(data); ok {
			for _, top := range l.top {
				ds, err := loadIncluded(r, l, top, 0)
				if err != nil {
					return nil, err
				}
				all = append(all, ds...)
			}
			continue
		}
		ds, err := ParseApache(f, data, r.lim)
		if err != nil {
			return nil, err
		}
		in.trail = includeTrail{files: []string{f}}
		ds, err = in.block(ds)
		if err != nil {
			return nil, err
		}
		all = append(all, ds...)
	}
	return all, nil
}

func loadIncluded(r *reader, l *includeList, file string, depth int) ([]*Directive, error) {
	if depth > r.lim.depth() {
		return nil, &ParseError{File: file, Err: ErrTooDeep, Msg: "includes nest too deep"}
	}
	data, err := r.read(file)
	if err != nil {
		return nil, err
	}
	ds, err := ParseApache(file, data, r.lim)
	if err != nil {
		return nil, err
	}
	var splice func([]*Directive) ([]*Directive, error)
	splice = func(ds []*Directive) ([]*Directive, error) {
		var out []*Directive
		for _, d := range ds {
			if d.Section {
				b, err := splice(d.Block)
				if err != nil {
					return nil, err
				}
				d.Block = b
			}
			out = append(out, d)
			if isInclude(d.Name) {
				for _, child := range l.children[file][d.Line] {
					cs, err := loadIncluded(r, l, child, depth+1)
					if err != nil {
						return nil, err
					}
					out = append(out, cs...)
				}
				d.Name = "#resolved " + d.Name
			}
		}
		return out, nil
	}
	return splice(ds)
}

func isInclude(name string) bool {
	return strings.EqualFold(name, "Include") || strings.EqualFold(name, "IncludeOptional")
}
