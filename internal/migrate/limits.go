package migrate

import (
	"errors"
	"fmt"
)

// Limits bound what the parsers read. A zero field means its default.
type Limits struct {
	// MaxFileSize bounds one configuration file. If zero, 4 MiB.
	MaxFileSize int64
	// MaxDepth bounds the nesting of sections, blocks and includes. If
	// zero, 32.
	MaxDepth int
	// MaxLine bounds one line (after Apache's continuations). If zero,
	// 64 KiB.
	MaxLine int
	// MaxFiles bounds the files read, includes and .htaccess files
	// included. If zero, 4096.
	MaxFiles int
}

// Named errors of the parsers; a [ParseError] wraps them.
var (
	ErrFileTooLarge = errors.New("migrate: file too large")
	ErrTooDeep      = errors.New("migrate: nesting too deep")
	ErrLineTooLong  = errors.New("migrate: line too long")
	ErrTooManyFiles = errors.New("migrate: too many files")
	ErrSyntax       = errors.New("migrate: syntax error")
	// ErrIncludeCycle: an Apache file includes itself, directly or not.
	ErrIncludeCycle = errors.New("migrate: include cycle")
	// ErrNoMatch: an Apache Include wildcard matches no file, which httpd
	// refuses (IncludeOptional allows it).
	ErrNoMatch = errors.New("migrate: wildcard matches no file")
)

func (l Limits) fileSize() int64 {
	if l.MaxFileSize <= 0 {
		return 4 << 20
	}
	return l.MaxFileSize
}

func (l Limits) depth() int {
	if l.MaxDepth <= 0 {
		return 32
	}
	return l.MaxDepth
}

func (l Limits) line() int {
	if l.MaxLine <= 0 {
		return 64 << 10
	}
	return l.MaxLine
}

func (l Limits) files() int {
	if l.MaxFiles <= 0 {
		return 4096
	}
	return l.MaxFiles
}

// ParseError is an input migrate cannot read, with where.
type ParseError struct {
	File string
	Line int
	Err  error // one of the named errors, or the file's open/read error
	Msg  string
}

func (e *ParseError) Error() string {
	where := e.File
	if e.Line > 0 {
		where = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	if e.Msg != "" {
		return fmt.Sprintf("%s: %v: %s", where, e.Err, e.Msg)
	}
	return fmt.Sprintf("%s: %v", where, e.Err)
}

func (e *ParseError) Unwrap() error { return e.Err }

// Directive is one directive of either syntax: a name, its arguments, and
// for a section or block its children.
type Directive struct {
	File  string
	Line  int
	Name  string
	Args  []string
	Block []*Directive // nil for a simple directive
	// Section is true for an Apache <Section> or an nginx block.
	Section bool
	// included holds, for an Apache Include the loader followed, the
	// files it read, in order (none: an IncludeOptional that matched
	// nothing).
	included []string
	// followed is true for an Apache Include the loader followed.
	followed bool
}

// Where is FILE:LINE.
func (d *Directive) Where() string { return fmt.Sprintf("%s:%d", d.File, d.Line) }

// Text is the directive as one line, as the report shows it.
func (d *Directive) Text() string {
	s := d.Name
	for _, a := range d.Args {
		s += " " + quoteArg(a)
	}
	return s
}

func quoteArg(a string) string {
	if a == "" {
		return `""`
	}
	for _, r := range a {
		if r == ' ' || r == '\t' || r == '"' || r == ';' || r == '{' || r == '}' || r == '#' {
			return fmt.Sprintf("%q", a)
		}
	}
	return a
}
