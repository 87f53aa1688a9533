package migrate

import (
	"bytes"
	"fmt"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// ParseNginx parses one nginx configuration file, data read from name,
// into its directives; blocks hold their children. include directives
// stay as they are.
func ParseNginx(name string, data []byte, lim Limits) ([]*Directive, error) {
	if int64(len(data)) > lim.fileSize() {
		return nil, &ParseError{File: name, Err: ErrFileTooLarge, Msg: fmt.Sprintf("%d bytes, more than %d", len(data), lim.fileSize())}
	}
	if err := checkNUL(name, data); err != nil {
		return nil, err
	}
	p := &nginxParser{name: name, data: data, line: 1, lim: lim}
	ds, closed, err := p.block(0)
	if err != nil {
		return nil, err
	}
	if closed {
		return nil, p.fail("unexpected }")
	}
	return ds, nil
}

type nginxParser struct {
	name      string
	data      []byte
	pos, line int
	lineStart int
	lim       Limits
}

func (p *nginxParser) fail(msg string) error {
	return &ParseError{File: p.name, Line: p.line, Err: ErrSyntax, Msg: msg}
}

// token returns the next word, or one of ";", "{", "}", or "" at the end.
// quoted is true for a quoted word (so "}" in quotes is a word).
func (p *nginxParser) token() (tok string, quoted bool, err error) {
	for p.pos < len(p.data) {
		c := p.data[p.pos]
		switch {
		case c == '\n':
			p.line++
			p.pos++
			if p.pos-p.lineStart > p.lim.line() {
				return "", false, &ParseError{File: p.name, Line: p.line - 1, Err: ErrLineTooLong, Msg: fmt.Sprintf("more than %d bytes", p.lim.line())}
			}
			p.lineStart = p.pos
		case c == ' ' || c == '\t' || c == '\r':
			p.pos++
		case c == '#':
			for p.pos < len(p.data) && p.data[p.pos] != '\n' {
				p.pos++
			}
		default:
			goto word
		}
	}
	return "", false, nil
word:
	c := p.data[p.pos]
	if c == ';' || c == '{' || c == '}' {
		p.pos++
		return string(c), false, nil
	}
	var b strings.Builder
	if c == '"' || c == '\'' {
		p.pos++
		for p.pos < len(p.data) && p.data[p.pos] != c {
			if p.data[p.pos] == '\\' && p.pos+1 < len(p.data) {
				p.pos++
			}
			if p.data[p.pos] == '\n' {
				p.line++
			}
			b.WriteByte(p.data[p.pos])
			p.pos++
		}
		if p.pos >= len(p.data) {
			return "", false, p.fail("unterminated quote")
		}
		p.pos++
		return b.String(), true, nil
	}
	for p.pos < len(p.data) {
		c := p.data[p.pos]
		if c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == ';' || c == '{' || c == '}' {
			break
		}
		b.WriteByte(c) // nginx keeps backslashes of unquoted words (regexes)
		p.pos++
	}
	return b.String(), false, nil
}

// block reads directives up to a "}" (closed) or the end.
func (p *nginxParser) block(depth int) (ds []*Directive, closed bool, err error) {
	if depth > p.lim.depth() {
		return nil, false, &ParseError{File: p.name, Line: p.line, Err: ErrTooDeep, Msg: fmt.Sprintf("more than %d blocks", p.lim.depth())}
	}
	ds = []*Directive{}
	var cur *Directive
	for {
		tok, quoted, err := p.token()
		if err != nil {
			return nil, false, err
		}
		switch {
		case tok == "" && !quoted:
			if cur != nil {
				return nil, false, p.fail(fmt.Sprintf("%q has no ; or {", cur.Name))
			}
			return ds, false, nil
		case tok == ";" && !quoted:
			if cur == nil {
				return nil, false, p.fail("unexpected ;")
			}
			ds, cur = append(ds, cur), nil
		case tok == "{" && !quoted:
			if cur == nil {
				return nil, false, p.fail("unexpected {")
			}
			cur.Section = true
			if cur.Block, closed, err = p.block(depth + 1); err != nil {
				return nil, false, err
			}
			if !closed {
				return nil, false, p.fail(fmt.Sprintf("%s block at line %d is never closed", cur.Name, cur.Line))
			}
			ds, cur = append(ds, cur), nil
		case tok == "}" && !quoted:
			if cur != nil {
				return nil, false, p.fail(fmt.Sprintf("%q has no ;", cur.Name))
			}
			return ds, true, nil
		case cur == nil:
			cur = &Directive{File: p.name, Line: p.line, Name: tok}
		default:
			cur.Args = append(cur.Args, tok)
		}
	}
}

// dumpMarker starts each file in the output of nginx -T.
const dumpMarker = "# configuration file "

// splitDump splits nginx -T output into its files, in order; ok is false
// if data is not such output.
func splitDump(data []byte) (names []string, files map[string][]byte, ok bool) {
	files = map[string][]byte{}
	var cur string
	var buf bytes.Buffer
	flush := func() {
		if cur != "" {
			files[cur] = append([]byte(nil), buf.Bytes()...)
		}
		buf.Reset()
	}
	for _, line := range bytes.SplitAfter(data, []byte("\n")) {
		s := strings.TrimRight(string(line), "\r\n")
		if strings.HasPrefix(s, dumpMarker) && strings.HasSuffix(s, ":") {
			flush()
			cur = strings.TrimSuffix(strings.TrimPrefix(s, dumpMarker), ":")
			names = append(names, cur)
			continue
		}
		if cur == "" {
			if strings.TrimSpace(s) == "" || strings.HasPrefix(s, "nginx: ") {
				continue
			}
			return nil, nil, false
		}
		buf.Write(line)
	}
	flush()
	return names, files, cur != ""
}

// nginxLoader resolves includes against an nginx -T dump's files, then the
// disk (under the chroot first).
type nginxLoader struct {
	r      *reader
	dumped map[string][]byte
	prefix string       // the directory relative includes are resolved in
	trail  includeTrail // the includes being followed
}

// loadNginx reads the files named on the command line (configuration files
// or nginx -T output) with their includes expanded in place.
func loadNginx(r *reader, files []string) ([]*Directive, []string, error) {
	var all []*Directive
	var missing []string
	for _, f := range files {
		data, err := r.read(f)
		if err != nil {
			return nil, nil, err
		}
		l := &nginxLoader{r: r, prefix: "/etc/nginx"}
		name := f
		if names, dumped, ok := splitDump(data); ok {
			l.dumped, name, data = dumped, names[0], dumped[names[0]]
			l.prefix = path.Dir(name)
		}
		ds, err := ParseNginx(name, data, r.lim)
		if err != nil {
			return nil, nil, err
		}
		l.trail = includeTrail{files: []string{name}}
		ds, err = l.expand(ds, &missing)
		if err != nil {
			return nil, nil, err
		}
		all = append(all, ds...)
	}
	return all, missing, nil
}

// expand replaces include directives with the directives of the files
// they name; an include that names nothing found is kept, and noted. A
// file that includes itself, directly or not, is an error naming each
// step, as are includes nested more than Limits.MaxDepth deep: nginx
// follows either until its stack overflows (nginx -t dies of SIGSEGV,
// saying nothing).
func (l *nginxLoader) expand(ds []*Directive, missing *[]string) ([]*Directive, error) {
	var out []*Directive
	for _, d := range ds {
		if d.Section {
			b, err := l.expand(d.Block, missing)
			if err != nil {
				return nil, err
			}
			d.Block = b
		}
		if d.Name != "include" || len(d.Args) != 1 {
			out = append(out, d)
			continue
		}
		names := l.resolve(d.Args[0])
		if len(names) == 0 {
			*missing = append(*missing, d.Where())
			out = append(out, d)
			continue
		}
		out = append(out, &Directive{File: d.File, Line: d.Line, Name: "#resolved include", Args: d.Args})
		for _, n := range names {
			inc, err := l.include(d, n, missing)
			if err != nil {
				return nil, err
			}
			out = append(out, inc...)
		}
	}
	return out, nil
}

// include reads the file name that the include d names, with its own
// includes expanded.
func (l *nginxLoader) include(d *Directive, name string, missing *[]string) ([]*Directive, error) {
	leave, err := l.trail.enter(d, name, l.r.lim.depth())
	if err != nil {
		return nil, err
	}
	defer leave()
	data, ok := l.dumped[name]
	if !ok {
		if data, err = l.r.read(name); err != nil {
			return nil, err
		}
	}
	inc, err := ParseNginx(name, data, l.r.lim)
	if err != nil {
		return nil, err
	}
	return l.expand(inc, missing)
}

// resolve returns the files an include pattern names.
func (l *nginxLoader) resolve(pattern string) []string {
	if !path.IsAbs(pattern) {
		pattern = path.Join(l.prefix, pattern)
	}
	var names []string
	for n := range l.dumped {
		if ok, _ := path.Match(pattern, n); ok {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		for _, dir := range []string{l.r.chroot, ""} {
			if dir == "" && l.r.chroot != "" && len(names) > 0 {
				break
			}
			matches, _ := filepath.Glob(filepath.Join(dir, pattern))
			for _, m := range matches {
				names = append(names, strings.TrimPrefix(m, dir))
			}
			if len(names) > 0 {
				break
			}
		}
	}
	sort.Strings(names)
	return names
}
