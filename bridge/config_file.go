package bridge

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// maxConfigFile bounds a configuration file's size.
const maxConfigFile = 1 << 20

// ConfigFile is a configuration file read by [LoadConfig] or
// [ParseConfig]:
//
//	listen = ["http://127.0.0.1:8080"]
//	root = "/var/www/html"
//
//	[defaults]
//	cgi_timeout = "30s"
//	env = { GITWEB_CONFIG = "/etc/gitweb.conf" }
//
//	[mount."/cgi-bin/"]
//	backend = "cgi:/usr/lib/cgi-bin"
//	cgi_timeout = "10s"
//
//	[mount."/"]
//	backend = "fastcgi+unix:///run/php/php8.2-fpm.sock"
//	max_conns = 5
//
// The top level and the [log] and [defaults] tables take the keys [Keys]
// declares; a [mount."PREFIX"] table takes backend (the address), the
// options its kind of back declares ([Backends]), and the settings that
// kind uses, which override [defaults] for that mount.
type ConfigFile struct {
	// Name is the file's name, as error messages give it.
	Name string
	// Config is what the file says, over [DefaultConfig].
	Config Config

	lines  map[string]int // key path (parts joined by "\x00") -> line
	values []keyValue     // every key = value, in the file's order
}

// keyValue is where a key = value starts in a file, and its key path.
type keyValue struct {
	line, column int
	path         []string
}

// ConfigError is a mistake in a configuration file. Its message names the
// file, the line and the key, and says what was expected:
//
//	ferry.toml:12: mount."/".max_con: unknown key (did you mean max_conns?)
type ConfigError struct {
	// File is the file's name.
	File string
	// Line is the line, counted from 1, or 0 when the mistake has none
	// (a file that cannot be read).
	Line int
	// Key is the key, spelt as in TOML: mount."/".max_conns. It may be
	// empty.
	Key string
	// Msg says what is wrong and what was expected.
	Msg string
}

// Error spells the mistake "FILE:LINE: KEY: MSG".
func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
	}
	if e.Key != "" {
		b.WriteString(": " + e.Key)
	}
	b.WriteString(": " + e.Msg)
	return b.String()
}

// LoadConfig reads the configuration file name. Every mistake in it is a
// [*ConfigError]; several are joined (errors.Join), one per line.
func LoadConfig(name string) (*ConfigFile, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, &ConfigError{File: name, Msg: fileError(err)}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigFile+1))
	if err != nil {
		return nil, &ConfigError{File: name, Msg: fileError(err)}
	}
	return ParseConfig(name, data)
}

// fileError says why a file cannot be read, without repeating its name.
func fileError(err error) string {
	var pe *fs.PathError
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "no such file"
	case errors.As(err, &pe):
		return pe.Err.Error()
	}
	return err.Error()
}

// ParseConfig reads a configuration file's text; name is the file's name
// in error messages.
func ParseConfig(name string, data []byte) (*ConfigFile, error) {
	if len(data) > maxConfigFile {
		return nil, &ConfigError{File: name, Msg: fmt.Sprintf("larger than %s; a configuration file is smaller", FormatSize(maxConfigFile))}
	}
	f := &ConfigFile{Name: name, Config: DefaultConfig(), lines: map[string]int{}}
	f.index(data)
	var doc map[string]any
	if err := toml.Unmarshal(data, &doc); err != nil {
		ce := &ConfigError{File: name, Msg: "TOML: " + strings.TrimPrefix(err.Error(), "toml: ")}
		var de *toml.DecodeError
		if errors.As(err, &de) {
			var column int
			ce.Line, column = de.Position()
			ce.Key = keyPath(de.Key())
			if ce.Key == "" {
				// A value the parser accepted but could not convert, such
				// as an integer beyond 64 bits: go-toml names no key.
				ce.Key = keyPath(f.keyAt(ce.Line, column))
			}
		}
		return nil, ce
	}
	l := &loader{f: f}
	l.top(doc)
	if len(l.errs) > 0 {
		slices.SortStableFunc(l.errs, func(a, b *ConfigError) int { return a.Line - b.Line })
		errs := make([]error, len(l.errs))
		for i, e := range l.errs {
			errs[i] = e
		}
		return nil, errors.Join(errs...)
	}
	return f, nil
}

// Line returns the line of the key path (such as "mount", "/cgi-bin/",
// "backend") in the file, or 0 if the file does not give it.
func (f *ConfigFile) Line(path ...string) int {
	if f == nil {
		return 0
	}
	return f.lines[strings.Join(path, "\x00")]
}

// index records the line of every key the file gives, tables included.
func (f *ConfigFile) index(data []byte) {
	var p unstable.Parser
	p.Reset(data)
	var table []string
	arrays := map[string]int{} // tables so far of each array of tables
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table:
			table = f.noteKey(&p, nil, e.Key())
		case unstable.ArrayTable:
			// The Nth table of the array is the path element "[N]".
			table = f.noteKey(&p, nil, e.Key())
			k := strings.Join(table, "\x00")
			arrays[k]++
			table = append(table, fmt.Sprintf("[%d]", arrays[k]))
			for it := e.Key(); it.Next(); {
				f.lines[k+"\x00"+table[len(table)-1]] = p.Shape(it.Node().Raw).Start.Line
			}
		case unstable.KeyValue:
			f.noteValue(&p, f.noteKeyValue(&p, table, e), e.Value())
		}
	}
}

// noteKeyValue records the key of the key = value kv under base, and where
// it starts; it returns the key's whole path.
func (f *ConfigFile) noteKeyValue(p *unstable.Parser, base []string, kv *unstable.Node) []string {
	path := f.noteKey(p, base, kv.Key())
	if it := kv.Key(); it.Next() {
		start := p.Shape(it.Node().Raw).Start
		f.values = append(f.values, keyValue{line: start.Line, column: start.Column, path: path})
	}
	return path
}

// keyAt returns the path of the key = value that holds the position (line
// and column, from 1) in the file: the last one starting before it. It
// returns nil if none does.
func (f *ConfigFile) keyAt(line, column int) []string {
	var path []string
	for _, v := range f.values {
		if v.line > line || v.line == line && v.column > column {
			break
		}
		path = v.path
	}
	return path
}

// noteKey records the line of each part of a (dotted) key under base, and
// returns the whole path.
func (f *ConfigFile) noteKey(p *unstable.Parser, base []string, it unstable.Iterator) []string {
	path := slices.Clone(base)
	for it.Next() {
		n := it.Node()
		path = append(path, string(n.Data))
		k := strings.Join(path, "\x00")
		if _, seen := f.lines[k]; !seen {
			f.lines[k] = p.Shape(n.Raw).Start.Line
		}
	}
	return path
}

// noteValue records the keys of an inline table.
func (f *ConfigFile) noteValue(p *unstable.Parser, path []string, v *unstable.Node) {
	if v == nil || v.Kind != unstable.InlineTable {
		return
	}
	for c := v.Children(); c.Next(); {
		if kv := c.Node(); kv.Kind == unstable.KeyValue {
			f.noteValue(p, f.noteKeyValue(p, path, kv), kv.Value())
		}
	}
}

// loader checks a decoded file against the declarations and fills the
// ConfigFile's Config.
type loader struct {
	f    *ConfigFile
	errs []*ConfigError
}

// fail records a mistake about the key path.
func (l *loader) fail(path []string, format string, args ...any) {
	l.errs = append(l.errs, &ConfigError{File: l.f.Name, Line: l.f.Line(path...), Key: keyPath(path), Msg: fmt.Sprintf(format, args...)})
}

// byLine returns the keys of t in the order the file gives them.
func (l *loader) byLine(base []string, t map[string]any) []string {
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if d := l.f.Line(append(slices.Clone(base), a)...) - l.f.Line(append(slices.Clone(base), b)...); d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
	return keys
}

// top checks the top level.
func (l *loader) top(doc map[string]any) {
	c := &l.f.Config
	for _, name := range l.byLine(nil, doc) {
		v, path := doc[name], []string{name}
		switch name {
		case "log", "defaults":
			t, ok := v.(map[string]any)
			if !ok {
				l.fail(path, "want a table ([%s]), not %s", name, describe(v))
				continue
			}
			for _, kname := range l.byLine(path, t) {
				kpath := []string{name, kname}
				k, ok := lookupKey(name, kname)
				if !ok {
					l.fail(kpath, "unknown key%s", l.hint(kname, tableKeys(name), "["+name+"]"))
					continue
				}
				l.set(kpath, k.Option, k.field(c), t[kname])
			}
		case "mount":
			t, ok := v.(map[string]any)
			if !ok {
				l.fail(path, `want tables such as [mount."/cgi-bin/"], not %s`, describe(v))
				continue
			}
			for _, prefix := range l.byLine(path, t) {
				if m, ok := l.mount(prefix, t[prefix]); ok {
					c.Mounts = append(c.Mounts, m)
				}
			}
		default:
			k, ok := lookupKey("", name)
			if !ok {
				l.fail(path, "unknown key%s", l.hint(name, append(tableKeys(""), "log", "defaults", "mount"), "the top level"))
				continue
			}
			l.set(path, k.Option, k.field(c), v)
		}
	}
}

// mount checks a [mount."PREFIX"] table.
func (l *loader) mount(prefix string, v any) (Mount, bool) {
	path := []string{"mount", prefix}
	t, ok := v.(map[string]any)
	if !ok {
		l.fail(path, "want a table with backend = \"ADDRESS\", not %s", describe(v))
		return Mount{}, false
	}
	if !strings.HasPrefix(prefix, "/") {
		l.fail(path, "a mount prefix starts with /")
		return Mount{}, false
	}
	m := Mount{Prefix: prefix}
	raw, ok := t["backend"]
	if !ok {
		l.fail(path, `no backend; want backend = "ADDRESS", such as "cgi:/usr/lib/cgi-bin" or "fastcgi://127.0.0.1:9000"`)
		return Mount{}, false
	}
	bpath := append(slices.Clone(path), "backend")
	var a Address
	var err error
	switch raw := raw.(type) {
	case string:
		a, m.More, err = parseBackends(raw)
	case []any:
		if a, m.More, m.FirstOptions, ok = l.backendTables(bpath, raw); !ok {
			return Mount{}, false
		}
	default:
		l.fail(bpath, "want an address, not %s", describe(raw))
		return Mount{}, false
	}
	var kind Backend
	if err == nil {
		kind, _, err = checkBackend(a)
	}
	if err == nil {
		err = checkGroup(Mount{Backend: a, More: m.More, FirstOptions: m.FirstOptions}, kind)
	}
	if err != nil {
		l.fail(bpath, "%s", err)
		return Mount{}, false
	}
	m.Backend = a
	what := schemeNames(func(sc *scheme) bool { return sc.name == a.Scheme }) + " mounts"
	good := true
	for _, name := range l.byLine(path, t) {
		if name == "backend" {
			continue
		}
		kpath := append(slices.Clone(path), name)
		if i := slices.IndexFunc(kind.allOptions(), func(o Option) bool { return o.Name == name }); i >= 0 {
			o := kind.allOptions()[i]
			if a.Query.Has(name) {
				l.fail(kpath, "given in the backend address too")
				good = false
				continue
			}
			vals, ok := tomlValues(o.Type, t[name])
			if ok {
				if err := o.check(vals[0]); err != nil {
					l.fail(kpath, "%s, not %s", err, describe(t[name]))
					good = false
					continue
				}
				m.Backend.Query.Set(name, vals[0])
				continue
			}
			l.fail(kpath, "want %s, not %s", o.Type, describe(t[name]))
			good = false
			continue
		}
		k, ok := lookupKey("defaults", name)
		if !ok {
			known := []string{"backend"}
			for _, o := range kind.Options {
				known = append(known, o.Name)
			}
			l.fail(kpath, "unknown key%s", l.hint(name, append(known, kind.Settings...), what))
			good = false
			continue
		}
		if !slices.Contains(kind.Settings, name) {
			l.fail(kpath, "not used by %s; they take %s", what, strings.Join(kind.Settings, ", "))
			good = false
			continue
		}
		if l.set(kpath, k.Option, k.st(&m.Settings), t[name]) {
			m.Own = append(m.Own, name)
		} else {
			good = false
		}
	}
	if name, err := checkNeeds(m.Backend.Query, kind.Options); good && err != nil {
		if _, key := t[name]; key {
			l.fail(append(slices.Clone(path), name), "%s", err)
		} else { // in the backend address
			l.fail(bpath, "option %s %s", name, err)
		}
		good = false
	}
	sortOwn(m.Own)
	return m, good
}

// backendTables checks a mount's [[mount."PREFIX".backend]] tables: an
// upstream group's backends, each an address and its own options (weight,
// max_conns). It returns the first backend, whose Query the mount's table
// fills with the group's options, the others with their own options, and
// the first one's own.
func (l *loader) backendTables(path []string, list []any) (Address, []Address, url.Values, bool) {
	var all []Address
	var own []url.Values
	good := true
	for i, raw := range list {
		tpath := append(slices.Clone(path), fmt.Sprintf("[%d]", i+1))
		t, ok := raw.(map[string]any)
		if !ok {
			l.fail(tpath, "want a table with address = \"ADDRESS\", not %s", describe(raw))
			return Address{}, nil, nil, false
		}
		s, ok := t["address"].(string)
		if !ok {
			l.fail(tpath, `want address = "ADDRESS", such as "fastcgi://10.0.0.1:9000"`)
			good = false
			continue
		}
		apath := append(slices.Clone(tpath), "address")
		a, err := parseAddress(s)
		if err == nil && (strings.Contains(s, ",") || len(a.Query) > 0) {
			err = errors.New("one address without options: the group's go in the mount's table, weight and max_conns in this one")
		}
		if err != nil {
			l.fail(apath, "%s", err)
			good = false
			continue
		}
		a.Query = url.Values{}
		q := url.Values{}
		for _, name := range l.byLine(tpath, t) {
			if name == "address" {
				continue
			}
			kpath := append(slices.Clone(tpath), name)
			i := slices.IndexFunc(memberOptions(), func(o Option) bool { return o.Name == name })
			if i < 0 {
				l.fail(kpath, "unknown key%s", l.hint(name, []string{"address", "weight", "max_conns"}, "a group's backend"))
				good = false
				continue
			}
			o := memberOptions()[i]
			vals, ok := tomlValues(o.Type, t[name])
			if !ok || o.check(vals[0]) != nil {
				l.fail(kpath, "want %s, not %s", o.Type, describe(t[name]))
				good = false
				continue
			}
			q.Set(name, vals[0])
		}
		all, own = append(all, a), append(own, q)
	}
	if !good {
		return Address{}, nil, nil, false
	}
	if len(all) == 0 {
		l.fail(path, "an empty list of backends")
		return Address{}, nil, nil, false
	}
	for i := range all[1:] {
		all[i+1].Query = own[i+1]
	}
	return all[0], all[1:], own[0], true
}

// set checks the TOML value v for o and stores it in p; it reports
// whether it could.
func (l *loader) set(path []string, o Option, p any, v any) bool {
	vals, ok := tomlValues(o.Type, v)
	if !ok {
		l.fail(path, "want %s, not %s", o.Type, describe(v))
		return false
	}
	if err := setValue(o, p, vals); err != nil {
		msg := err.Error()
		var above aboveMax
		if errors.As(err, &above) {
			msg = fmt.Sprintf("%s, not %s", msg, describe(v))
		} else if len(vals) == 1 && (o.Type == Duration || o.Type == Timeout || o.Type == Size || o.Type == Count || o.Type == Bool) {
			msg = fmt.Sprintf("want %s, not %s", o.Type, describe(v))
			if o.Type == Duration {
				msg = fmt.Sprintf("want a duration above zero, such as 10s, not %s", describe(v))
			}
		} else if len(o.Values) > 0 {
			msg = fmt.Sprintf("want %s, not %s", orList(o.Values), describe(v))
		}
		l.fail(path, "%s", msg)
		return false
	}
	return true
}

// hint suggests the known key closest to name, or lists the keys what
// takes when none is close.
func (l *loader) hint(name string, known []string, what string) string {
	best, bestDist := "", 3 // near misses only: two edits, and fewer than make a short name
	for _, k := range known {
		if d := editDistance(name, k); d < bestDist && d < len(name)-1 {
			best, bestDist = k, d
		}
	}
	if best != "" {
		return fmt.Sprintf(" (did you mean %s?)", best)
	}
	return fmt.Sprintf("; %s takes %s", what, strings.Join(known, ", "))
}

// tableKeys returns the names of the keys of table.
func tableKeys(table string) []string {
	var names []string
	for _, k := range Keys() {
		if k.Table == table {
			names = append(names, k.Name)
		}
	}
	return names
}

// tomlValues converts a decoded TOML value to the spelling flags take, if
// it is of the TOML type that t is written in.
func tomlValues(t OptionType, v any) ([]string, bool) {
	switch t {
	case String, Duration, Timeout, FileMode, AddressType, HeaderName:
		s, ok := v.(string)
		return []string{s}, ok
	case PositiveInt, Count:
		n, ok := v.(int64)
		return []string{strconv.FormatInt(n, 10)}, ok
	case Size:
		switch v := v.(type) {
		case int64:
			return []string{strconv.FormatInt(v, 10)}, true
		case string:
			return []string{v}, true
		}
	case Bool:
		b, ok := v.(bool)
		return []string{strconv.FormatBool(b)}, ok
	case List, AddressList:
		list, ok := v.([]any)
		if !ok {
			return nil, false
		}
		out := make([]string, len(list))
		for i, e := range list {
			if out[i], ok = e.(string); !ok {
				return nil, false
			}
		}
		return out, true
	case Env:
		t, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		out := make([]string, 0, len(t))
		for k, e := range t {
			s, ok := e.(string)
			if !ok || k == "" || strings.ContainsRune(k, '=') {
				return nil, false
			}
			out = append(out, k+"="+s)
		}
		slices.Sort(out)
		return out, true
	}
	return nil, false
}

// describe names a decoded TOML value in an error message.
func describe(v any) string {
	switch v := v.(type) {
	case string:
		return strconv.Quote(v)
	case int64:
		return "the number " + strconv.FormatInt(v, 10)
	case float64:
		return "the number " + strconv.FormatFloat(v, 'g', -1, 64)
	case bool:
		return strconv.FormatBool(v)
	case []any:
		// Which item is wrong: a list of text holding a number says
		// "not a list" otherwise, which reads as nonsense.
		for _, e := range v {
			if _, ok := e.(string); !ok {
				return "a list holding " + describe(e)
			}
		}
		return "a list"
	case map[string]any:
		names := make([]string, 0, len(v))
		for k := range v {
			names = append(names, k)
		}
		slices.Sort(names)
		for _, k := range names {
			if k == "" || strings.ContainsRune(k, '=') {
				return "a table with the name " + strconv.Quote(k)
			}
			if _, ok := v[k].(string); !ok {
				return "a table holding " + tomlKey(k) + " = " + describe(v[k])
			}
		}
		return "a table"
	case time.Time, toml.LocalDate, toml.LocalDateTime, toml.LocalTime:
		return "a date or time"
	}
	return fmt.Sprintf("%T", v)
}

// keyPath spells a key path as TOML does: mount."/cgi-bin/".backend.
func keyPath(path []string) string {
	var b strings.Builder
	for i, p := range path {
		switch {
		case strings.HasPrefix(p, "["):
			b.WriteString(p) // the Nth table of an array: backend[2]
			continue
		case i > 0:
			b.WriteByte('.')
		}
		b.WriteString(tomlKey(p))
	}
	return b.String()
}

// tomlKey spells a key bare when TOML allows, else quoted.
func tomlKey(k string) string {
	if k != "" && strings.Trim(k, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == "" {
		return k
	}
	return tomlString(k)
}

// tomlString spells s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
