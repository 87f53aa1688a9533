package migrate

import (
	"fmt"
	"path"
	"path/filepath"
	"strings"
)

// includeTrail is the chain of includes a configuration reader follows
// (migrate apache's Include, migrate nginx's include): what it refuses, a
// cycle or includes nested too deep, and the steps its errors name.
type includeTrail struct {
	// stack holds the include directives being followed, outermost
	// first, and files the files being read: files[0] is the input file,
	// files[i+1] the one stack[i] brought in.
	stack []*Directive
	files []string
}

// enter starts reading name, which d includes, and returns the function
// that ends it. A file already being read (a cycle), or an include nested
// more than depth deep, is an error naming each step.
func (t *includeTrail) enter(d *Directive, name string, depth int) (leave func(), err error) {
	for i, f := range t.files {
		if sameFile(f, name) {
			return nil, &ParseError{File: d.File, Line: d.Line, Err: ErrIncludeCycle, Msg: t.chain(i, d, name)}
		}
	}
	if len(t.stack) >= depth {
		return nil, &ParseError{File: d.File, Line: d.Line, Err: ErrTooDeep,
			Msg: fmt.Sprintf("includes nest more than %d deep: %s", depth, t.chain(0, d, name))}
	}
	t.stack, t.files = append(t.stack, d), append(t.files, name)
	return func() { t.stack, t.files = t.stack[:len(t.stack)-1], t.files[:len(t.files)-1] }, nil
}

// chain spells the includes from t.files[i] on, ending with d including
// name: "a.conf:2 includes b.conf, b.conf:3 includes a.conf".
func (t *includeTrail) chain(i int, d *Directive, name string) string {
	var steps []string
	for j := i; j < len(t.stack); j++ {
		steps = append(steps, t.stack[j].Where()+" includes "+t.files[j+1])
	}
	return strings.Join(append(steps, d.Where()+" includes "+name), ", ")
}

// sameFile reports whether the names a and b, as the input and includes
// spell them, are one file: a relative name is the working directory's.
func sameFile(a, b string) bool {
	abs := func(n string) string {
		if p, err := filepath.Abs(n); err == nil {
			return p
		}
		return path.Clean(n)
	}
	return a == b || abs(a) == abs(b)
}
